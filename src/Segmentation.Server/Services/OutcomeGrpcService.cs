using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Measurement;
using Segmentation.Server.Mapping;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="OutcomeRecorder"/>.</summary>
internal sealed class OutcomeGrpcService(OutcomeRecorder recorder) : OutcomeService.OutcomeServiceBase
{
    public override Task<RecordOutcomesResponse> RecordOutcomes(RecordOutcomesRequest request, ServerCallContext context)
    {
        var results = recorder.RecordMany(request.Outcomes.Select(OutcomeMapper.ToDomain).ToList());
        return Task.FromResult(new RecordOutcomesResponse { Results = { results.Select(OutcomeMapper.ToProto) } });
    }
}

/// <summary>gRPC adapter for the KPIs of <see cref="DecisionMeasurement"/>.</summary>
internal sealed class InsightsGrpcService(DecisionMeasurement measurement, TimeProvider time) : InsightsService.InsightsServiceBase
{
    public override Task<GetKpisResponse> GetKpis(GetKpisRequest request, ServerCallContext context)
    {
        var end = ValueMapper.ToDomain(request.End, "end") ?? time.GetUtcNow();
        var start = ValueMapper.ToDomain(request.Start, "start") ?? end.AddDays(-30);
        var dimensions = request.GroupBy.Select(OutcomeMapper.ToDomain).ToList();
        measurement.Drain(); // every decision served so far is counted
        var report = measurement.Kpis.Query(new KpiQuery(start, end, dimensions, request.SegmentId.Length > 0 ? request.SegmentId : null, request.IncludeSeries));
        return Task.FromResult(OutcomeMapper.ToProto(report));
    }
}
