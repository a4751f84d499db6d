using System.Runtime.ExceptionServices;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;
using Segmentation.Server.Mapping;
using Segmentation.Server.Security;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="ProfileIngestion"/>.</summary>
internal sealed class ProfileGrpcService(ProfileIngestion ingestion, IProfileStore store, RfmModelProvider rfm, CatalogProvider catalogs, TimeProvider time, StreamRateLimits rateLimits, IHostApplicationLifetime lifetime) : ProfileService.ProfileServiceBase
{
    public override async Task<TrackEventResponse> TrackEvent(TrackEventRequest request, ServerCallContext context)
    {
        rateLimits.Acquire(context.Caller().Name, 1);
        using var span = SegmentationTelemetry.Traces.StartActivity("TrackEvent");
        var result = await ingestion.TrackAsync(ProfileMapper.ToDomain(request.Event ?? new Event()));
        return new TrackEventResponse
        {
            UserId = result.Profile.UserId,
            ProfileVersion = result.Profile.Version,
            Duplicate = result.Duplicate,
        };
    }

    public override Task<TrackEventsResponse> TrackEvents(TrackEventsRequest request, ServerCallContext context)
    {
        // A call refused for its size spends none of the key's budget.
        InputLimits.CheckEventsPerCall(request.Events.Count);
        rateLimits.Acquire(context.Caller().Name, request.Events.Count);
        using var span = SegmentationTelemetry.Traces.StartActivity("TrackEvents");
        var response = new TrackEventsResponse();
        foreach (var result in ingestion.TrackMany(request.Events.Select(ProfileMapper.ToDomain).ToList()))
        {
            response.Results.Add(ProfileMapper.ToProto(result));
            switch (result.Status)
            {
                case Core.Application.Profiles.EventStatus.Accepted:
                    response.Accepted++;
                    break;
                case Core.Application.Profiles.EventStatus.Duplicate:
                    response.Duplicates++;
                    break;
                default:
                    response.Rejected++;
                    break;
            }
        }

        span?.SetTag("segmentation.events.accepted", response.Accepted).SetTag("segmentation.events.duplicates", response.Duplicates).SetTag("segmentation.events.rejected", response.Rejected);
        return Task.FromResult(response);
    }

    // Results waiting to be written, counted in events (a batch's results count as its events): a client that stops
    // reading holds at most this many in the server, then its stream is no longer read. At least one whole batch
    // (InputLimits.MaxEventsPerCall), or a batch could never get its room.
    internal const int MaxQueuedResults = 4096;

    public override async Task StreamEvents(IAsyncStreamReader<StreamEventsRequest> requestStream, IServerStreamWriter<StreamEventsResponse> responseStream, ServerCallContext context)
    {
        var caller = context.Caller().Name;
        using var span = SegmentationTelemetry.Traces.StartActivity("StreamEvents");
        var index = 0;
        // With durability on, the messages that have arrived are recorded together, so their events share a commit to the
        // change log (one, unless a profile another writer holds splits it); without it, each message is answered as soon
        // as it is read.
        await PipelinedStream.RunGroupedAsync(requestStream, responseStream, MaxQueuedResults, weigh: message =>
        {
            var events = message.Events.Count == 0 ? 1 : message.Events.Count + (message.Event is null ? 0 : 1);
            if (events > InputLimits.MaxEventsPerCall)
            {
                throw new ValidationException("events", $"at most {InputLimits.MaxEventsPerCall} events per message (got {events}); split the batch over more messages");
            }

            rateLimits.Acquire(caller, events); // the events without a result are the ones to send again
            return events;
        }, answer: (group, answers) => Answer(group, answers, ref index), ingestion.BatchesWrites ? MaxGroupedEvents : 1, context.CancellationToken, lifetime.ApplicationStopping);
        span?.SetTag("segmentation.events.received", index);
        if (ServerStopping.Ended(context, lifetime))
        {
            // Every event applied was answered (the answers were written); nothing after them was applied.
            throw ServerStopping.Error("the events without a result were not applied: send them again on a new stream");
        }
    }

    /// <summary>The most events of a stream's messages recorded together (with durability on: one commit for them).</summary>
    internal const int MaxGroupedEvents = 256;

    // A group of messages: their events in order (a single event beside a batch first), one answer per message.
    private void Answer(IReadOnlyList<(StreamEventsRequest Message, int Weight)> group, List<StreamEventsResponse> answers, ref int index)
    {
        if (group is [var (single, _)] && single.Events.Count == 0)
        {
            answers.Add(new StreamEventsResponse { Result = ProfileMapper.ToProto(ingestion.TrackOne(EventRecorder.NextStreamIndex(ref index), ProfileMapper.ToDomain(single.Event ?? new Event()))) });
            return;
        }

        // One client's events in stream order: after one whose write fails unexpectedly, the rest are not tried (the
        // stream ends at its message, so none of the messages after it is applied).
        var items = new List<EventRecorder.BatchItem>();
        void Add(Event e, string prefix, ref int index) =>
            items.Add(new EventRecorder.BatchItem(EventRecorder.NextStreamIndex(ref index), ProfileMapper.ToDomain(e), prefix) { FollowsPrevious = items.Count > 0 });
        foreach (var (message, _) in group)
        {
            if (message.Events.Count == 0)
            {
                Add(message.Event ?? new Event(), "event", ref index);
                continue;
            }

            if (message.Event is { } first)
            {
                Add(first, "event", ref index);
            }

            for (var i = 0; i < message.Events.Count; i++)
            {
                Add(message.Events[i], EventRecorder.BatchField(i), ref index);
            }
        }

        var refusals = new Exception?[items.Count];
        var results = ingestion.TrackAll(items, refusals);
        var failed = Array.FindIndex(refusals, static r => r is not null && !EventRecorder.RefusesAlone(r)); // a commit's failure
        var next = 0;
        foreach (var (message, weight) in group)
        {
            if (failed >= 0 && next + weight > failed)
            {
                // A commit, or one event's write, failed: the messages before it are answered (their events are applied);
                // this one and the rest are not, and the stream ends with the failure. None of their events is applied,
                // except in this message those before the failure (a commit another writer's profile split off, or the
                // events before the one whose write failed): sent again, they are duplicates.
                ExceptionDispatchInfo.Throw(refusals[failed]!);
            }

            if (message.Events.Count == 0)
            {
                answers.Add(new StreamEventsResponse { Result = ProfileMapper.ToProto(results[next++]) });
                continue;
            }

            var response = new StreamEventsResponse();
            for (var i = 0; i < weight; i++)
            {
                response.Results.Add(ProfileMapper.ToProto(results[next++]));
            }

            answers.Add(response);
        }
    }

    public override Task<IdentifyResponse> Identify(IdentifyRequest request, ServerCallContext context)
    {
        var result = ingestion.Identify(request.AnonymousId, request.UserId);
        return Task.FromResult(new IdentifyResponse
        {
            ProfileVersion = result.Profile.Version,
            MergedEvents = result.MergedEvents,
            DuplicateEvents = result.DuplicateEvents,
        });
    }

    public override Task<SetTraitsResponse> SetTraits(SetTraitsRequest request, ServerCallContext context)
    {
        var traits = request.Traits.ToDictionary(t => t.Key, t => ValueMapper.ToDomain(t.Value, $"traits[{t.Key}]"), StringComparer.Ordinal);
        var result = ingestion.SetTraits(request.UserId, traits, request.Source, ValueMapper.ToDomain(request.Layer, "layer"), ValueMapper.ToDomain(request.Timestamp, "timestamp"));
        return Task.FromResult(new SetTraitsResponse
        {
            ProfileVersion = result.Profile.Version,
            Applied = { result.Applied },
            Ignored = { result.Ignored },
        });
    }

    public override Task<GetProfileResponse> GetProfile(GetProfileRequest request, ServerCallContext context) =>
        Task.FromResult(new GetProfileResponse
        {
            Profile = ProfileMapper.ToProto(ingestion.Get(request.UserId), rfm.Current, catalogs.Current, time.GetUtcNow(), store.LinkedIds(request.UserId)),
        });
}
