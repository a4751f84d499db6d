using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Events;
using Segmentation.Server.Hosting;
using Segmentation.Server.Mapping;
using Segmentation.Server.Security;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="DecisionEngine"/>, and for <see cref="TrackAndDecide"/> when a Decide carries events.</summary>
internal sealed class DecisionGrpcService(DecisionEngine engine, TrackAndDecide trackAndDecide, StreamRateLimits rateLimits, UnaryRateLimits unaryLimits, IOptions<LimitsOptions> limits) : DecisionService.DecisionServiceBase
{
    public override Task<DecideResponse> Decide(DecideRequest request, ServerCallContext context)
    {
        if (request.Events.Count > 0)
        {
            return TrackThenDecide(request, context);
        }

        using var span = SegmentationTelemetry.Traces.StartActivity("Decide"); // null (free) unless traces are exported
        var decision = engine.Decide(ToDomain(request), context.CancellationToken);
        Tag(span, decision);
        return Task.FromResult(new DecideResponse { Decision = DecisionMapper.ToProto(decision) });
    }

    private static DecisionRequest ToDomain(DecideRequest request) => new(
        request.UserId,
        request.AnonymousId,
        DecisionMapper.ToDomain(request.Context, request.Channel),
        ValueMapper.ToDomain(request.Timestamp, "timestamp"),
        request.Explain);

    private static void Tag(System.Diagnostics.Activity? span, Core.Decisions.Decision decision)
    {
        if (span is not null)
        {
            span.SetTag("segmentation.decision_id", decision.DecisionId);
            span.SetTag("segmentation.segment", decision.Winner.Id);
            span.SetTag("segmentation.cache_hit", decision.FromCache);
        }
    }

    // A Decide that records the page's events first: it writes to profiles, so the key needs the ingest scope too, and
    // its events count against the key's ingestion rate (the call checked for size and validity before any is spent).
    // With durability on, the events wait for their commit without holding a thread.
    private async Task<DecideResponse> TrackThenDecide(DecideRequest request, ServerCallContext context)
    {
        using var span = SegmentationTelemetry.Traces.StartActivity("Decide");
        var decisionRequest = ToDomain(request);
        var caller = context.Caller();
        if (!caller.Has(ApiScope.Ingest))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"a Decide with events records them, which needs the '{ApiScopes.Name(ApiScope.Ingest)}' scope; API key '{caller.Name}' does not have it"));
        }

        TrackAndDecide.CheckEventCount(request.Events.Count);
        decisionRequest.ThrowIfInvalid(); // a request that cannot be decided spends none of the budget either
        rateLimits.Acquire(caller.Name, request.Events.Count);
        var events = new BehaviourEvent[request.Events.Count];
        for (var i = 0; i < events.Length; i++)
        {
            events[i] = ProfileMapper.ToDomain(request.Events[i]);
        }

        var tracked = await trackAndDecide.DecideAsync(decisionRequest, events, context.CancellationToken);
        var response = new DecideResponse { Decision = DecisionMapper.ToProto(tracked.Decision) };
        foreach (var result in tracked.Events)
        {
            response.EventResults.Add(ProfileMapper.ToProto(result));
        }

        span?.SetTag("segmentation.events", request.Events.Count);
        Tag(span, tracked.Decision);
        return response;
    }

    // Results are written to the response without flushing, and flushed every FlushEvery results, when
    // FlushAfter has passed since the last flush, and with the last: one socket write per many users instead
    // of one per user, while a slow batch still streams its results as they are ready.
    private const int FlushEvery = 128;
    private static readonly long FlushAfter = Stopwatch.Frequency / 500; // 2 ms
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    public override async Task DecideBatch(DecideBatchRequest request, IServerStreamWriter<DecideBatchResponse> responseStream, ServerCallContext context)
    {
        using var span = SegmentationTelemetry.Traces.StartActivity("DecideBatch");
        span?.SetTag("segmentation.batch.users", request.UserIds.Count);
        var items = engine.DecideBatch(
            request.UserIds,
            DecisionMapper.ToDomain(request.Context, request.Channel),
            ValueMapper.ToDomain(request.Timestamp, "timestamp"),
            request.Explain,
            PrivacyMapper.BatchPurpose(request.Purpose, request.Channel),
            context.CancellationToken);
        if (context.GetHttpContext().Features.Get<ApiCaller>() is { } caller)
        {
            unaryLimits.Acquire(caller, request.UserIds.Count, "user_ids", charged: 1); // each user is a decision, as a Decide call is (a valid batch's); the call took one token already
        }

        var last = request.UserIds.Count - 1;
        var unflushed = 0;
        var spanEvents = 0;
        var grpc = !Hosting.HttpJsonApi.IsHttpJsonCall(context.GetHttpContext()); // write options (buffering) are gRPC's only
        var flushedAt = Stopwatch.GetTimestamp();

        // A flush waits for the client to take what was sent; one that never ends (a client that stopped reading) is cut
        // after the stall limit: the call is reset, and the decisions stop with it.
        using var stalled = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        var stallLimit = TimeSpan.FromSeconds(limits.Value.WriteStallSeconds);

        // One response message, filled again for each user: a write serializes it before it returns.
        var response = new DecideBatchResponse();
        foreach (var item in items)
        {
            response.Index = item.Index;
            response.UserId = item.UserId;
            response.SendTime = item.SendTime is { } advice ? DecisionMapper.ToProto(advice) : null;
            response.EmailBlocks.Clear();
            foreach (var (name, block) in item.EmailBlocks)
            {
                response.EmailBlocks.Add(new EmailBlock { Name = name, VariantId = block.VariantId, Text = block.Text, FallbackUsed = block.FallbackUsed });
            }

            if (item.Decision is not null)
            {
                response.Decision = DecisionMapper.ToProto(item.Decision);
                if (span is not null && SegmentationTelemetry.RoomForEvent(ref spanEvents))
                {
                    span.AddEvent(new ActivityEvent("decision", tags: new ActivityTagsCollection { ["segmentation.decision_id"] = item.Decision.DecisionId, ["segmentation.segment"] = item.Decision.Winner.Id }));
                }
            }
            else if (item.Skipped is { } consent)
            {
                response.Skipped = new DecisionSkipped { Purpose = PrivacyMapper.ToProto(consent.Purpose), Reason = consent.Describe() };
            }
            else
            {
                response.Error = new DecisionError { Code = "INVALID_ARGUMENT", Message = $"{item.Error!.Field}: {item.Error.Description}" };
            }

            var now = Stopwatch.GetTimestamp();
            var flush = ++unflushed >= FlushEvery || item.Index == last || now - flushedAt >= FlushAfter;
            if (grpc)
            {
                responseStream.WriteOptions = flush ? null : Buffered; // HTTP/JSON writes each item as it comes
            }

            if (flush || !grpc) // an HTTP/JSON write is flushed
            {
                stalled.CancelAfter(stallLimit);
                await responseStream.WriteAsync(response, stalled.Token);
                stalled.CancelAfter(Timeout.InfiniteTimeSpan);
                unflushed = 0;
                flushedAt = now;
            }
            else
            {
                await responseStream.WriteAsync(response, context.CancellationToken); // buffered: returns without waiting for the client
            }
        }

        SegmentationTelemetry.EndEvents(span, spanEvents);
    }
}
