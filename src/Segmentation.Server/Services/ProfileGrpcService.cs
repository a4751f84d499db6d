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
    public override Task<TrackEventResponse> TrackEvent(TrackEventRequest request, ServerCallContext context)
    {
        rateLimits.Acquire(context.Caller().Name, 1);
        using var span = SegmentationTelemetry.Traces.StartActivity("TrackEvent");
        var result = ingestion.Track(ProfileMapper.ToDomain(request.Event ?? new Event()));
        return Task.FromResult(new TrackEventResponse
        {
            UserId = result.Profile.UserId,
            ProfileVersion = result.Profile.Version,
            Duplicate = result.Duplicate,
        });
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
        await PipelinedStream.RunAsync(requestStream, responseStream, MaxQueuedResults, weigh: static message =>
        {
            var events = message.Events.Count == 0 ? 1 : message.Events.Count + (message.Event is null ? 0 : 1);
            return events <= InputLimits.MaxEventsPerCall
                ? events
                : throw new ValidationException("events", $"at most {InputLimits.MaxEventsPerCall} events per message (got {events}); split the batch over more messages");
        }, answer: (message, events) =>
        {
            if (message.Events.Count > 0)
            {
                return TrackBatch(message, events, caller, ref index);
            }

            rateLimits.Acquire(caller, 1); // the events without a result are the ones to send again
            return new StreamEventsResponse { Result = ProfileMapper.ToProto(ingestion.TrackOne(EventRecorder.NextStreamIndex(ref index), ProfileMapper.ToDomain(message.Event ?? new Event()))) };
        }, context.CancellationToken, lifetime.ApplicationStopping);
        span?.SetTag("segmentation.events.received", index);
        if (ServerStopping.Ended(context, lifetime))
        {
            // Every event applied was answered (the answers were written); nothing after them was applied.
            throw ServerStopping.Error("the events without a result were not applied: send them again on a new stream");
        }
    }

    // A message with a batch: its events in order (a single event beside the batch first), answered in one message.
    private StreamEventsResponse TrackBatch(StreamEventsRequest message, int events, string caller, ref int index)
    {
        rateLimits.Acquire(caller, events);
        var items = new EventRecorder.BatchItem[events];
        var n = 0;
        if (message.Event is { } first)
        {
            items[n++] = new EventRecorder.BatchItem(EventRecorder.NextStreamIndex(ref index), ProfileMapper.ToDomain(first), "event");
        }

        for (var i = 0; i < message.Events.Count; i++)
        {
            items[n++] = new EventRecorder.BatchItem(EventRecorder.NextStreamIndex(ref index), ProfileMapper.ToDomain(message.Events[i]), EventRecorder.BatchField(i));
        }

        var response = new StreamEventsResponse();
        foreach (var result in ingestion.TrackAll(items))
        {
            response.Results.Add(ProfileMapper.ToProto(result));
        }

        return response;
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
