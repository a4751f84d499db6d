using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Catalog;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;
using Segmentation.Server.Mapping;
using CatalogFile = Segmentation.Core.Catalog.CatalogFile;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for catalog governance: <see cref="CatalogProvider"/>, <see cref="CatalogAudit"/> and <see cref="MembershipIndex"/>.</summary>
internal sealed class CatalogGrpcService(CatalogProvider catalogs, IProfileStore store, RfmModelProvider rfm, MembershipIndex memberships, TimeProvider time, ConsentPolicy consent) : CatalogService.CatalogServiceBase
{
    private const int MaxFiles = 200;
    private const int MaxFileBytes = 1 << 20;

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
            ContextFieldsRead = { c.ContextFieldsRead.Select(Core.Requests.RequestContext.NameOf) },
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

        foreach (var v in catalogs.History)
        {
            response.History.Add(new CatalogVersion { Version = v.Version, PublishedAt = Timestamp.FromDateTimeOffset(v.PublishedAt), Origin = v.Origin, Comment = v.Comment });
        }

        return Task.FromResult(response);
    }

    public override Task<ValidateCatalogResponse> ValidateCatalog(ValidateCatalogRequest request, ServerCallContext context)
    {
        var source = Source(request.Files, "validate");
        var response = new ValidateCatalogResponse();
        try
        {
            var candidate = CatalogLoader.Load(source, context.CancellationToken);
            response.Valid = true;
            response.Warnings.Add(Audit(candidate, request.Thresholds, context.CancellationToken).Warnings.Select(ToIssue));
        }
        catch (CatalogException ex)
        {
            response.Errors.Add(ex.Errors.Select(ToIssue));
        }

        return Task.FromResult(response);
    }

    public override Task<PublishCatalogResponse> PublishCatalog(PublishCatalogRequest request, ServerCallContext context)
    {
        CatalogSnapshot published;
        try
        {
            published = catalogs.Load(Source(request.Files, "api"), request.Comment, context.CancellationToken);
        }
        catch (CatalogException ex)
        {
            throw new ValidationException(ex.Errors.Select(e => new Core.Validation.FieldViolation($"files[{e.File}]", e.ToString())).ToList());
        }

        return Task.FromResult(new PublishCatalogResponse { Version = published.Version, Warnings = { Audit(published, null, CancellationToken.None).Warnings.Select(ToIssue) } });
    }

    public override Task<RollbackCatalogResponse> RollbackCatalog(RollbackCatalogRequest request, ServerCallContext context)
    {
        try
        {
            var restored = catalogs.Rollback(request.Version == 0 ? null : request.Version);
            var from = catalogs.History.First(h => h.Version == restored.Version).RolledBackFrom ?? 0;
            return Task.FromResult(new RollbackCatalogResponse { Version = restored.Version, RestoredFrom = from });
        }
        catch (KeyNotFoundException ex)
        {
            throw new NotFoundException(ex.Message);
        }
    }

    public override Task<ListSegmentsResponse> ListSegments(ListSegmentsRequest request, ServerCallContext context)
    {
        var c = catalogs.Current;
        var population = memberships.Users;
        var response = new ListSegmentsResponse { CatalogVersion = c.Version, Population = population };
        foreach (var s in c.Segments)
        {
            var count = memberships.Count(s.Id);
            response.Segments.Add(new SegmentMembers { Segment = DecisionMapper.ToRef(s), MemberCount = count, Share = population == 0 ? 0 : (double)count / population });
        }

        return Task.FromResult(response);
    }

    public override Task<ListSegmentMembersResponse> ListSegmentMembers(ListSegmentMembersRequest request, ServerCallContext context)
    {
        if (!catalogs.Current.ById.ContainsKey(request.SegmentId))
        {
            throw new NotFoundException($"unknown segment '{request.SegmentId}'");
        }

        if (request.PageSize is < 0 or > 1000)
        {
            throw new ValidationException("page_size", "must be between 1 and 1000 (0 means 100)");
        }

        var size = request.PageSize == 0 ? 100 : request.PageSize;
        var page = memberships.Members(request.SegmentId, request.PageToken, size + 1);
        var response = new ListSegmentMembersResponse { Total = memberships.Count(request.SegmentId) };
        response.UserIds.Add(page.Take(size));
        if (page.Count > size)
        {
            response.NextPageToken = page[size - 1];
        }

        return Task.FromResult(response);
    }

    public override Task<PreviewSegmentResponse> PreviewSegment(PreviewSegmentRequest request, ServerCallContext context)
    {
        if (string.IsNullOrWhiteSpace(request.SegmentYaml) || request.SegmentYaml.Length > MaxFileBytes)
        {
            throw new ValidationException("segment_yaml", "a segment definition of at most 1 MiB is required");
        }

        var response = new PreviewSegmentResponse();
        try
        {
            var p = CatalogAudit.Preview(catalogs.Current, request.SegmentYaml, Profiles(), rfm.Current, time.GetUtcNow(), sampleSize: Math.Clamp(request.SampleSize == 0 ? 10 : request.SampleSize, 1, 100), cancellation: context.CancellationToken);
            response.MemberCount = p.Members;
            response.Population = p.Population;
            response.Share = p.Share;
            response.SampleUserIds.Add(p.Sample);
            response.Overlaps.Add(p.Overlaps.Select(o => new SegmentOverlap { SegmentId = o.SegmentId, Count = o.Count, ShareOfCandidate = o.ShareOfCandidate }));
            response.Warnings.Add(p.Warnings.Select(ToIssue));
        }
        catch (CatalogException ex)
        {
            response.Errors.Add(ex.Errors.Select(ToIssue));
        }

        return Task.FromResult(response);
    }

    public override Task<AuditCatalogResponse> AuditCatalog(AuditCatalogRequest request, ServerCallContext context)
    {
        var c = catalogs.Current;
        var report = Audit(c, request.Thresholds, context.CancellationToken);
        var response = new AuditCatalogResponse { CatalogVersion = c.Version, Population = report.Population };
        foreach (var size in report.Sizes)
        {
            response.Segments.Add(new SegmentMembers { Segment = DecisionMapper.ToRef(c.ById[size.SegmentId]), MemberCount = size.Members, Share = size.Share });
        }

        response.Overlaps.Add(report.Overlaps.Select(o => new PairOverlap { SegmentA = o.A, SegmentB = o.B, Count = o.Count }));
        response.Warnings.Add(report.Warnings.Select(ToIssue));
        return Task.FromResult(response);
    }

    public override async Task WatchSegmentChanges(WatchSegmentChangesRequest request, IServerStreamWriter<WatchSegmentChangesResponse> responseStream, ServerCallContext context)
    {
        var reader = memberships.Subscribe(MembershipIndex.Filter(request.SegmentIds), capacity: 10_000, context.CancellationToken);
        try
        {
            await foreach (var change in reader.ReadAllAsync(context.CancellationToken))
            {
                await responseStream.WriteAsync(new WatchSegmentChangesResponse
                {
                    UserId = change.UserId,
                    SegmentId = change.SegmentId,
                    Kind = change.Entered ? MembershipChangeKind.Entered : MembershipChangeKind.Left,
                    ChangedAt = Timestamp.FromDateTimeOffset(change.At),
                    CatalogVersion = change.CatalogVersion,
                    Cause = change.Cause,
                }, context.CancellationToken);
            }
        }
        catch (System.Threading.Channels.ChannelClosedException)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, "the watcher fell more than 10,000 changes behind; reconnect and resynchronise with ListSegmentMembers"));
        }
    }

    // Audits and previews see users without personalization consent as empty profiles, as membership does.
    private IEnumerable<Core.Profiles.Profile> Profiles() => store.Snapshot().Select(consent.GatedView);

    private AuditReport Audit(CatalogSnapshot catalog, AuditThresholds? thresholds, CancellationToken cancellation)
    {
        var defaults = new AuditOptions();
        var options = thresholds is null ? defaults : defaults with
        {
            MinSize = thresholds.MinSize > 0 ? thresholds.MinSize : defaults.MinSize,
            SignificanceFloor = thresholds.SignificanceFloor > 0 ? thresholds.SignificanceFloor : defaults.SignificanceFloor,
            BroadShare = thresholds.BroadShare > 0 ? thresholds.BroadShare : defaults.BroadShare,
        };
        return CatalogAudit.Run(catalog, Profiles(), rfm.Current, time.GetUtcNow(), options, memberships, cancellation);
    }

    private static InMemoryCatalogSource Source(IEnumerable<Contracts.V1.CatalogFile> files, string origin)
    {
        var list = files.ToList();
        var v = new ViolationList();
        if (list.Count is 0 or > MaxFiles)
        {
            v.Add("files", $"between 1 and {MaxFiles} files are required (got {list.Count})");
        }

        for (var i = 0; i < list.Count; i++)
        {
            v.Required($"files[{i}].name", list[i].Name, 256);
            if (list[i].Content.Length > MaxFileBytes)
            {
                v.Add($"files[{i}].content", "must be at most 1 MiB");
            }
        }

        if (list.Select(f => f.Name).Distinct(StringComparer.Ordinal).Count() != list.Count)
        {
            v.Add("files", "file names must be unique");
        }

        v.ThrowIfAny();
        return new InMemoryCatalogSource(list.Select(f => new CatalogFile(f.Name, f.Content)).ToList(), origin);
    }

    private static CatalogIssue ToIssue(CatalogError e) => new()
    {
        Code = "error",
        File = e.File,
        Line = e.Line,
        Segment = e.Segment ?? "",
        Clause = e.Clause ?? "",
        Message = e.Message,
    };

    private static CatalogIssue ToIssue(CatalogWarning w) => new()
    {
        Code = w.Code,
        File = w.File,
        Segment = w.Segment,
        OtherSegment = w.Other ?? "",
        Message = w.Message,
    };
}
