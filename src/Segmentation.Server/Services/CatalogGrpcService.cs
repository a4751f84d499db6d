using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Server.Mapping;
using Segmentation.Server.Security;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="CatalogGovernance"/>: each method maps the request, calls the domain and maps the result.</summary>
internal sealed class CatalogGrpcService(CatalogGovernance governance, IHostApplicationLifetime lifetime) : CatalogService.CatalogServiceBase
{
    public override Task<GetCatalogResponse> GetCatalog(GetCatalogRequest request, ServerCallContext context) =>
        Task.FromResult(CatalogMapper.ToProto(governance.Current, governance.History));

    public override Task<ValidateCatalogResponse> ValidateCatalog(ValidateCatalogRequest request, ServerCallContext context)
    {
        var result = governance.Validate(CatalogMapper.ToDomain(request.Files), CatalogMapper.ToDomain(request.Thresholds), context.CancellationToken);
        return Task.FromResult(new ValidateCatalogResponse
        {
            Valid = result.Valid,
            Errors = { result.Errors.Select(CatalogMapper.ToIssue) },
            Warnings = { result.Warnings.Select(CatalogMapper.ToIssue) },
        });
    }

    public override Task<PublishCatalogResponse> PublishCatalog(PublishCatalogRequest request, ServerCallContext context)
    {
        var result = governance.Publish(CatalogMapper.ToDomain(request.Files), request.Comment, request.BasedOnVersion == 0 ? null : request.BasedOnVersion, context.CancellationToken);
        return Task.FromResult(new PublishCatalogResponse { Version = result.Catalog.Version, Warnings = { result.Warnings.Select(CatalogMapper.ToIssue) } });
    }

    public override Task<RollbackCatalogResponse> RollbackCatalog(RollbackCatalogRequest request, ServerCallContext context)
    {
        var result = governance.Rollback(request.Version == 0 ? null : request.Version);
        return Task.FromResult(new RollbackCatalogResponse { Version = result.Catalog.Version, RestoredFrom = result.RestoredFrom });
    }

    public override Task<ListSegmentsResponse> ListSegments(ListSegmentsRequest request, ServerCallContext context)
    {
        var counts = governance.Counts();
        return Task.FromResult(new ListSegmentsResponse
        {
            CatalogVersion = counts.CatalogVersion,
            Population = counts.Population,
            Segments = { counts.Segments.Select(CatalogMapper.ToProto) },
        });
    }

    public override Task<ListSegmentMembersResponse> ListSegmentMembers(ListSegmentMembersRequest request, ServerCallContext context)
    {
        var page = governance.Members(request.SegmentId, request.PageToken, request.PageSize);
        return Task.FromResult(new ListSegmentMembersResponse { Total = page.Total, UserIds = { page.UserIds }, NextPageToken = page.NextPageToken });
    }

    public override Task<PreviewSegmentResponse> PreviewSegment(PreviewSegmentRequest request, ServerCallContext context)
    {
        var outcome = governance.Preview(request.SegmentYaml, request.SampleSize, context.CancellationToken);
        var response = new PreviewSegmentResponse { Errors = { outcome.Errors.Select(CatalogMapper.ToIssue) } };
        if (outcome.Preview is { } p)
        {
            response.MemberCount = p.Members;
            response.Population = p.Population;
            response.Share = p.Share;
            if (context.Caller().Has(ApiScope.Watch))
            {
                response.SampleUserIds.Add(p.Sample); // user ids: for keys that may list members anyway, not a read-only key
            }

            response.Overlaps.Add(p.Overlaps.Select(o => new SegmentOverlap { SegmentId = o.SegmentId, Count = o.Count, ShareOfCandidate = o.ShareOfCandidate }));
            response.Warnings.Add(p.Warnings.Select(CatalogMapper.ToIssue));
        }

        return Task.FromResult(response);
    }

    public override Task<AuditCatalogResponse> AuditCatalog(AuditCatalogRequest request, ServerCallContext context)
    {
        var catalog = governance.Current;
        var report = governance.Audit(catalog, CatalogMapper.ToDomain(request.Thresholds), context.CancellationToken);
        var response = new AuditCatalogResponse { CatalogVersion = catalog.Version, Population = report.Population };
        foreach (var size in report.Sizes)
        {
            response.Segments.Add(new SegmentMembers { Segment = DecisionMapper.ToRef(catalog.ById[size.SegmentId]), MemberCount = size.Members, Share = size.Share });
        }

        response.Overlaps.Add(report.Overlaps.Select(o => new PairOverlap { SegmentA = o.A, SegmentB = o.B, Count = o.Count }));
        response.Warnings.Add(report.Warnings.Select(CatalogMapper.ToIssue));
        return Task.FromResult(response);
    }

    public override async Task WatchSegmentChanges(WatchSegmentChangesRequest request, IServerStreamWriter<WatchSegmentChangesResponse> responseStream, ServerCallContext context)
    {
        var (after, fromOldest) = CatalogMapper.Start(request);
        var stream = governance.StreamId;
        using var call = ServerStopping.Linked(context, lifetime);
        try
        {
            await using var changes = governance.Watch(request.SegmentIds, after, request.IncludeTriggers, fromOldest, request.StreamId, call.Token).GetAsyncEnumerator(call.Token);
            var next = changes.MoveNextAsync(); // the request is checked and the stream read before this returns
            if (!next.IsCompleted)
            {
                // Nothing to send yet: the headers tell the caller its watch is open (a client, or the dashboard's Live page,
                // would otherwise wait on a quiet system until the first change, not knowing whether it was refused).
                await context.WriteResponseHeadersAsync([]);

                // Over HTTP/JSON the headers above are a flush of the response's pipe, which sends nothing while the pipe
                // is empty once the response body is wrapped (it is, to name errors in a query string): start it.
                await context.GetHttpContext().Response.StartAsync(call.Token);
            }

            while (await next)
            {
                // The stop is seen here, between entries: a write given a cancelled token resets the stream (the client
                // would see CANCELLED with no retry delay, over HTTP/JSON a cut body), so the write is given the call's own.
                call.Token.ThrowIfCancellationRequested();
                await responseStream.WriteAsync(CatalogMapper.ToProto(changes.Current, stream), context.CancellationToken);
                next = changes.MoveNextAsync();
            }
        }
        catch (OperationCanceledException) when (ServerStopping.Ended(context, lifetime))
        {
            throw ServerStopping.Error("watch again after the last offset received");
        }
    }
}
