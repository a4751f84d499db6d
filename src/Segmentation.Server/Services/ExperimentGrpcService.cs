using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Experiments;
using Segmentation.Server.Mapping;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="ExperimentLifecycle"/>.</summary>
internal sealed class ExperimentGrpcService(ExperimentLifecycle experiments) : ExperimentService.ExperimentServiceBase
{
    public override Task<ListExperimentsResponse> ListExperiments(ListExperimentsRequest request, ServerCallContext context)
    {
        var (version, list) = experiments.List();
        return Task.FromResult(new ListExperimentsResponse { CatalogVersion = version, Experiments = { list.Select(ExperimentMapper.ToProto) } });
    }

    public override Task<GetExperimentResultsResponse> GetExperimentResults(GetExperimentResultsRequest request, ServerCallContext context) =>
        Task.FromResult(ExperimentMapper.ToProto(experiments.Results(request.ExperimentId)));

    public override Task<StopExperimentResponse> StopExperiment(StopExperimentRequest request, ServerCallContext context)
    {
        var published = experiments.Stop(request.ExperimentId, request.Comment);
        return Task.FromResult(new StopExperimentResponse { CatalogVersion = published.Catalog.Version, Warnings = { published.Warnings.Select(CatalogMapper.ToIssue) } });
    }

    public override Task<PromoteExperimentResponse> PromoteExperiment(PromoteExperimentRequest request, ServerCallContext context)
    {
        var (published, arm) = experiments.Promote(request.ExperimentId, request.ArmId, request.Comment);
        return Task.FromResult(new PromoteExperimentResponse { CatalogVersion = published.Catalog.Version, ArmId = arm, Warnings = { published.Warnings.Select(CatalogMapper.ToIssue) } });
    }
}
