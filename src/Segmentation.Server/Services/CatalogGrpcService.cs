using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Catalog;
using Segmentation.Server.Mapping;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="CatalogProvider"/>.</summary>
internal sealed class CatalogGrpcService(CatalogProvider catalogs) : CatalogService.CatalogServiceBase
{
    public override Task<GetCatalogResponse> GetCatalog(GetCatalogRequest request, ServerCallContext context)
    {
        var c = catalogs.Current;
        var response = new GetCatalogResponse
        {
            Version = c.Version,
            Name = c.Name,
            Origin = c.Origin,
            LoadedAt = Timestamp.FromDateTimeOffset(c.LoadedAt),
            FallbackSegmentId = c.Fallback.Id,
            ContextFieldsRead = { c.ContextFieldsRead.Select(Core.Decisions.RequestContext.NameOf) },
        };
        foreach (var s in c.Segments)
        {
            response.Segments.Add(new CatalogSegment
            {
                Segment = DecisionMapper.ToRef(s),
                Description = s.Description,
                Overrides = { s.Overrides },
                Exclusions = { s.Exclusions },
                Persona = s.Persona?.Id ?? "",
                Fallback = s.IsFallback,
                Rule = s.Rule?.Text ?? "",
                SourceFile = s.SourceFile,
            });
        }

        return Task.FromResult(response);
    }
}
