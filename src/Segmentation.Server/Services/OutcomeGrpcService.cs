using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Server.Mapping;
using Segmentation.Server.Security;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="OutcomeRecorder"/>.</summary>
internal sealed class OutcomeGrpcService(OutcomeRecorder recorder, StreamRateLimits rateLimits) : OutcomeService.OutcomeServiceBase
{
    public override Task<RecordOutcomesResponse> RecordOutcomes(RecordOutcomesRequest request, ServerCallContext context)
    {
        using var span = SegmentationTelemetry.Traces.StartActivity("RecordOutcomes");
        // A call refused for its size spends none of the key's budget; each outcome is an event of the user's profile too.
        OutcomeRecorder.CheckCount(request.Outcomes.Count);
        rateLimits.Acquire(context.Caller().Name, request.Outcomes.Count, "outcomes");

        var results = recorder.RecordMany(request.Outcomes.Select(OutcomeMapper.ToDomain).ToList());
        if (span is not null)
        {
            span.SetTag("segmentation.outcomes", results.Count);
            var events = 0;
            foreach (var r in results)
            {
                if (r.DecisionId is { } id && SegmentationTelemetry.RoomForEvent(ref events))
                {
                    span.AddEvent(new System.Diagnostics.ActivityEvent("outcome", tags: new System.Diagnostics.ActivityTagsCollection { ["segmentation.decision_id"] = id, ["segmentation.attribution"] = r.Attribution.ToString() }));
                }
            }

            SegmentationTelemetry.EndEvents(span, events);
        }

        return Task.FromResult(new RecordOutcomesResponse { Results = { results.Select(OutcomeMapper.ToProto) } });
    }
}

/// <summary>gRPC adapter for the KPIs of <see cref="DecisionMeasurement"/>.</summary>
internal sealed class InsightsGrpcService(SegmentKpis kpis, SegmentSizeHistory sizes, DataQuality quality, TimeProvider time) : InsightsService.InsightsServiceBase
{
    public override Task<GetDataQualityResponse> GetDataQuality(GetDataQualityRequest request, ServerCallContext context)
    {
        var end = ValueMapper.ToDomain(request.End, "end") ?? time.GetUtcNow();
        var start = ValueMapper.ToDomain(request.Start, "start") ?? end.AddDays(-1);
        return Task.FromResult(OutcomeMapper.ToProto(quality.Measure(start, end, context.CancellationToken)));
    }

    public override Task<GetSegmentSizesResponse> GetSegmentSizes(GetSegmentSizesRequest request, ServerCallContext context)
    {
        var end = ValueMapper.ToDomain(request.End, "end") ?? time.GetUtcNow();
        var start = ValueMapper.ToDomain(request.Start, "start") ?? end.AddDays(-30);
        if (end <= start)
        {
            throw new Core.Validation.ValidationException("end", "must be after start");
        }

        sizes.Sample(); // the current hour's point is as of now
        var page = sizes.Page(start, end, request.SegmentId, request.PageSize, request.PageToken);
        var response = new GetSegmentSizesResponse { NextPageToken = page.NextPageToken };
        foreach (var (segment, points) in page.Segments)
        {
            response.Segments.Add(new SegmentSizes
            {
                SegmentId = segment,
                Points = { points.Select(p => new Contracts.V1.SizePoint { Hour = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(p.Hour), Members = p.Members }) },
            });
        }

        return Task.FromResult(response);
    }

    public override Task<GetKpisResponse> GetKpis(GetKpisRequest request, ServerCallContext context)
    {
        var end = ValueMapper.ToDomain(request.End, "end") ?? time.GetUtcNow();
        var start = ValueMapper.ToDomain(request.Start, "start") ?? end.AddDays(-30);
        var dimensions = request.GroupBy.Select(OutcomeMapper.ToDomain).ToList();
        var report = kpis.Query(new KpiQuery(start, end, dimensions, request.SegmentId.Length > 0 ? request.SegmentId : null, request.IncludeSeries));
        return Task.FromResult(OutcomeMapper.ToProto(report));
    }
}
