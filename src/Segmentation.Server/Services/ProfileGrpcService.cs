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
        foreach (var result in ingestion.TrackMany(ProfileMapper.ToDomain(request.Events)))
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
        var stream = ingestion.OpenStream();
        // With durability on, the messages that have arrived are recorded together, so their events share a commit to the
        // change log (one, unless a profile another writer holds splits it); without it, each message is answered as soon
        // as it is read.
        await PipelinedStream.RunGroupedAsync(requestStream, responseStream, MaxQueuedResults, weigh: message =>
        {
            var events = StreamMessage.CountEvents(message.Event is not null, message.Events.Count);
            if (events > InputLimits.MaxEventsPerCall)
            {
                throw new ValidationException("events", $"at most {InputLimits.MaxEventsPerCall} events per message (got {events}); split the batch over more messages");
            }

            rateLimits.Acquire(caller, events); // the events without a result are the ones to send again
            return events;
        }, answer: (group, answers) => Answer(stream, group, answers), stream.GroupLimit, context.CancellationToken, lifetime.ApplicationStopping);
        span?.SetTag("segmentation.events.received", stream.Received);
        if (ServerStopping.Ended(context, lifetime))
        {
            // Every event applied was answered (the answers were written); nothing after them was applied.
            throw ServerStopping.Error("the events without a result were not applied: send them again on a new stream");
        }
    }

    // A group of messages: one answer per message answered; the stream ends with the failure that stopped the rest.
    private static void Answer(EventStream stream, IReadOnlyList<(StreamEventsRequest Message, int Weight)> group, List<StreamEventsResponse> answers)
    {
        if (group is [var (only, _)] && only.Events.Count == 0)
        {
            answers.Add(new StreamEventsResponse { Result = ProfileMapper.ToProto(stream.RecordOne(ProfileMapper.ToDomain(only.Event ?? new Event()))) });
            return;
        }

        var messages = new StreamMessage[group.Count];
        for (var i = 0; i < messages.Length; i++)
        {
            var message = group[i].Message;
            messages[i] = message.Events.Count == 0
                ? new StreamMessage(ProfileMapper.ToDomain(message.Event ?? new Event()), [])
                : new StreamMessage(message.Event is null ? null : ProfileMapper.ToDomain(message.Event), ProfileMapper.ToDomain(message.Events));
        }

        var recorded = stream.Record(messages);
        for (var i = 0; i < recorded.Answered.Count; i++)
        {
            var results = recorded.Answered[i];
            if (messages[i].IsSingle)
            {
                answers.Add(new StreamEventsResponse { Result = ProfileMapper.ToProto(results[0]) });
                continue;
            }

            var response = new StreamEventsResponse();
            foreach (var result in results)
            {
                response.Results.Add(ProfileMapper.ToProto(result));
            }

            answers.Add(response);
        }

        if (recorded.Failure is { } failure)
        {
            ExceptionDispatchInfo.Throw(failure);
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
