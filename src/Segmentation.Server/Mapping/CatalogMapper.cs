using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Catalog;
using Segmentation.Core.Validation;

namespace Segmentation.Server.Mapping;

/// <summary>Maps catalog governance requests and results between protobuf and the domain.</summary>
internal static class CatalogMapper
{
    public static GetCatalogResponse ToProto(CatalogSnapshot c, IReadOnlyList<CatalogVersionInfo> history)
    {
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
            var segment = new CatalogSegment
            {
                Segment = DecisionMapper.ToRef(s),
                Description = s.Description,
                Overrides = { s.Overrides },
                Exclusions = { s.Exclusions },
                Persona = s.Persona?.Id ?? "",
                Fallback = s.IsFallback,
                Rule = s.Rule?.Text ?? "",
                SourceFile = s.SourceFile,
            };
            foreach (var field in s.Rule?.FieldsRead() ?? [])
            {
                segment.FieldsRead.Add(new FieldRead { Field = field, Layer = c.LayerOf(field) is { } layer ? ValueMapper.ToProto(layer) : DataLayer.Unspecified });
            }

            response.Segments.Add(segment);
        }

        foreach (var t in c.Traits.Values.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            response.Traits.Add(new TraitSchema
            {
                Name = t.Name,
                Type = t.Type.ToString().ToLowerInvariant(),
                Layer = ValueMapper.ToProto(c.LayerOf("traits." + t.Name) ?? Core.Profiles.AttributeLayer.ZeroParty),
                Pii = t.Pii,
                Description = t.Description,
            });
        }

        foreach (var p in c.Personas)
        {
            response.Personas.Add(new Contracts.V1.Persona
            {
                Id = p.Id,
                Name = p.Name,
                Role = p.Role,
                Goals = { p.Goals },
                PainPoints = { p.PainPoints },
                Behaviour = p.Behaviour,
                Channels = { p.Channels },
                Triggers = { p.Triggers },
                Tone = p.Tone,
                Messaging = p.Messaging,
                Objections = { p.Objections },
            });
        }

        response.LeadScoring = ToProto(c.Scoring.Lead);

        foreach (var v in history)
        {
            response.History.Add(new CatalogVersion { Version = v.Version, PublishedAt = Timestamp.FromDateTimeOffset(v.PublishedAt), Origin = v.Origin, Comment = InputLimits.Bounded(v.Comment, InputLimits.MaxCommentLength) }); // bounded too when kept from before the limit
        }

        return response;
    }

    public static IReadOnlyList<Core.Catalog.CatalogFile> ToDomain(IEnumerable<Contracts.V1.CatalogFile> files) =>
        [.. files.Select(f => new Core.Catalog.CatalogFile(f.Name, f.Content))];

    public static AuditOptions? ToDomain(AuditThresholds? thresholds) =>
        thresholds is null ? null : AuditOptions.Overriding(thresholds.MinSize, thresholds.SignificanceFloor, thresholds.BroadShare);

    public static SegmentMembers ToProto(SegmentCount count) =>
        new() { Segment = DecisionMapper.ToRef(count.Segment), MemberCount = count.Members, Share = count.Share };

    public static WatchSegmentChangesResponse ToProto(FeedEntry entry, string streamId) => new()
    {
        UserId = entry.UserId,
        SegmentId = entry.SegmentId,
        Kind = entry.Kind switch
        {
            ChangeKind.Entered => MembershipChangeKind.Entered,
            ChangeKind.Left => MembershipChangeKind.Left,
            _ => MembershipChangeKind.Triggered,
        },
        ChangedAt = Timestamp.FromDateTimeOffset(entry.At),
        CatalogVersion = entry.CatalogVersion,
        Cause = entry.Cause,
        Offset = entry.Offset,
        TriggerId = entry.Trigger ?? "",
        StreamId = streamId,
    };

    /// <summary>Where a watch starts: after an offset, from the oldest retained entry, or (neither) from now.</summary>
    public static (long? After, bool FromOldest) Start(WatchSegmentChangesRequest request) => request.StartCase switch
    {
        WatchSegmentChangesRequest.StartOneofCase.AfterOffset => (request.AfterOffset, false),
        WatchSegmentChangesRequest.StartOneofCase.FromOldest => (null, request.FromOldest),
        _ => (null, false),
    };

    private static LeadScoringModel ToProto(Core.Scoring.LeadScoring lead) => new()
    {
        WarmFrom = lead.Warm,
        HotFrom = lead.Hot,
        SalesReadyFrom = lead.SalesReady,
        Signals = { lead.Table().Select(r => new LeadScoringSignal { Category = r.Category, Name = r.Name, Description = r.Description, Points = r.Points, Cap = r.Cap }) },
    };

    public static CatalogIssue ToIssue(CatalogError e) => new()
    {
        Code = "error",
        File = e.File,
        Line = e.Line,
        Column = e.Column,
        Segment = e.Segment ?? "",
        Clause = e.Clause ?? "",
        Message = e.Message,
    };

    public static CatalogIssue ToIssue(CatalogWarning w) => new()
    {
        Code = w.Code,
        File = w.File,
        Line = w.Line,
        Segment = w.Segment,
        Clause = w.Clause,
        OtherSegment = w.Other ?? "",
        Message = w.Message,
    };
}
