using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>
/// <c>segctl report</c>: the segmentation strategy in the framework's output shape (approach, segment count,
/// data sources, then per segment size, criteria, profile, strategy and KPIs), built from GetCatalog,
/// AuditCatalog, ListSegments, ListSegmentMembers, GetProfile and Decide.
/// </summary>
internal static partial class ReportCommand
{
    private const int ProfileConcurrency = 16;
    private const int MaxMemberIdsListed = 100_000;
    private const int MaxDecideTries = 25;
    private const string UnknownVisitor = "segctl-report-unknown-visitor";

    private const int KpiDays = 30;

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static async Task<int> RunAsync(ServiceTarget address, int sampleSize, bool json, CancellationToken ct)
    {
        if (sampleSize is < 1 or > 1000)
        {
            throw new ArgumentException("--sample must be between 1 and 1000");
        }

        using var grpc = Cli.OpenChannel(address);
        var catalogs = new CatalogService.CatalogServiceClient(grpc);
        var profiles = new ProfileService.ProfileServiceClient(grpc);
        var decisions = new DecisionService.DecisionServiceClient(grpc);

        var catalog = await catalogs.GetCatalogAsync(new GetCatalogRequest(), cancellationToken: ct);
        var audit = await catalogs.AuditCatalogAsync(new AuditCatalogRequest(), cancellationToken: ct);
        var live = await catalogs.ListSegmentsAsync(new ListSegmentsRequest(), cancellationToken: ct);
        var counts = live.Segments.ToDictionary(s => s.Segment.Id, StringComparer.Ordinal);

        // KPIs of what the segments' decisions did over the last 30 days (InsightsService.GetKpis), by segment.
        var insights = new InsightsService.InsightsServiceClient(grpc);
        var now = DateTimeOffset.UtcNow;
        var kpiResponse = await insights.GetKpisAsync(
            new GetKpisRequest { Start = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(now.AddDays(-KpiDays)), End = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(now), GroupBy = { KpiDimension.Segment } },
            cancellationToken: ct);
        var kpiBySegment = kpiResponse.Rows.ToDictionary(r => r.SegmentId, r => r.Kpis, StringComparer.Ordinal);

        // The service says which fields each rule reads and the data layer of each (GetCatalog), so nothing here
        // has to know the catalog's derived or observed traits.
        var fields = catalog.Segments.SelectMany(s => s.FieldsRead.Select(f => (Segment: s.Segment.Id, f.Field, Source: DataSource(f)))).ToList();
        var report = new StrategyReport
        {
            GeneratedAt = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            Catalog = new CatalogInfo(catalog.Name, catalog.Version, catalog.Origin, catalog.FallbackSegmentId),
            Population = live.Population,
            Approach = new Approach(
                catalog.Segments.Select(s => Cli.EnumName(s.Segment.Type)).Distinct(StringComparer.Ordinal).ToList(),
                fields.GroupBy(f => Family(f.Field), StringComparer.Ordinal)
                    .Select(g => new FieldFamily(g.Key, g.Select(f => f.Segment).Distinct(StringComparer.Ordinal).Count(), g.Select(f => f.Field).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList()))
                    .OrderByDescending(f => f.Segments).ThenBy(f => f.Family, StringComparer.Ordinal)
                    .ToList(),
                catalog.ContextFieldsRead.ToList()),
            SegmentCount = catalog.Segments.Count,
            DataSources = fields.GroupBy(f => f.Source, StringComparer.Ordinal)
                .Select(g => new DataSourceUse(g.Key, g.Select(f => f.Segment).Distinct(StringComparer.Ordinal).Count(), g.Select(f => f.Field).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList()))
                .OrderBy(d => DataSourceOrder(d.Source))
                .ToList(),
            CatalogWarnings = audit.Warnings.Where(w => w.Segment.Length == 0).Select(CatalogCommands.FormatWarning).ToList(),
            LeadScoring = catalog.LeadScoring is { } lead
                ? new LeadScoringReport(
                    [.. lead.Signals.Select(x => new LeadSignalReport(x.Category, x.Name, x.Description, x.Points, x.Cap))],
                    new LeadThresholds(lead.WarmFrom, lead.HotFrom, lead.SalesReadyFrom))
                : null,
            Personas = [.. catalog.Personas.Select(p => new PersonaCard(
                p.Id, p.Name, p.Role, [.. p.Goals], [.. p.PainPoints], p.Behaviour, [.. p.Channels], [.. p.Triggers], p.Tone, p.Messaging, [.. p.Objections],
                [.. catalog.Segments.Where(s => s.Persona == p.Id).Select(s => s.Segment.Id)]))],
        };

        var profileCache = new ConcurrentDictionary<string, Lazy<Task<Profile?>>>(StringComparer.Ordinal);
        using var gate = new SemaphoreSlim(ProfileConcurrency);
        foreach (var s in catalog.Segments)
        {
            counts.TryGetValue(s.Segment.Id, out var size);
            var members = size is { MemberCount: > 0 } ? await MemberIdsAsync(catalogs, s.Segment.Id, ct) : [];
            var sample = EvenSample(members, sampleSize);
            var sampled = await Task.WhenAll(sample.Select(id => profileCache.GetOrAdd(id, key => new Lazy<Task<Profile?>>(() => GetProfileAsync(profiles, gate, key, ct))).Value));
            report.Segments.Add(new SegmentReport
            {
                Id = s.Segment.Id,
                Name = s.Segment.Name,
                Type = Cli.EnumName(s.Segment.Type),
                Priority = s.Segment.Priority,
                Fallback = s.Fallback,
                Description = s.Description,
                Persona = s.Persona.Length > 0 ? s.Persona : null,
                Overrides = s.Overrides.Count > 0 ? s.Overrides.ToList() : null,
                Exclusions = s.Exclusions.Count > 0 ? s.Exclusions.ToList() : null,
                Size = new SegmentSize(size?.MemberCount ?? 0, Math.Round(size?.Share ?? 0, 4), live.Population),
                Criteria = s.Fallback ? "fallback: users no other segment claims (unknown users and thin data)" : s.Rule,
                Profile = Summarise(sampled.OfType<Profile>().ToList(), (int)Math.Min(size?.MemberCount ?? members.Count, int.MaxValue), members.Count),
                Strategy = await StrategyAsync(decisions, s.Segment.Id, s.Fallback, sample, ct),
                ReadsRequestContext = s.FieldsRead.Any(f => f.Layer == DataLayer.Unspecified),
                Kpis = ToKpis(size?.MemberCount ?? 0, kpiBySegment.GetValueOrDefault(s.Segment.Id)),
                Warnings = audit.Warnings.Where(w => w.Segment == s.Segment.Id).Select(CatalogCommands.FormatWarning).ToList(),
            });
        }

        Console.Write(json ? JsonSerializer.Serialize(report, JsonOptions) + Environment.NewLine : Format(report));
        return 0;
    }

    private static Kpis ToKpis(long members, Contracts.V1.Kpis? k) => k is null
        ? new Kpis(members, KpiDays, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        : new Kpis(members, KpiDays, k.Decisions, k.Reach, k.Impressions, k.Ctr, k.Conversions, k.ConversionRate, k.Revenue, k.RevenuePerUser, k.Churned);

    private static string Family(string field) => field[..field.IndexOf('.', StringComparison.Ordinal)];

    /// <summary>The data layer a rule field reads, in the report's words.</summary>
    internal static string DataSource(FieldRead field) => field.Layer switch
    {
        DataLayer.ZeroParty => "zero-party traits",
        DataLayer.FirstParty => "first-party events",
        DataLayer.Derived => "derived scores",
        _ => "request context",
    };

    private static int DataSourceOrder(string source) => source switch
    {
        "zero-party traits" => 0,
        "first-party events" => 1,
        "derived scores" => 2,
        _ => 3,
    };

    private static async Task<List<string>> MemberIdsAsync(CatalogService.CatalogServiceClient client, string segmentId, CancellationToken ct)
    {
        var ids = new List<string>();
        var token = "";
        do
        {
            var page = await client.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = segmentId, PageSize = 1000, PageToken = token }, cancellationToken: ct);
            ids.AddRange(page.UserIds);
            token = page.NextPageToken;
        }
        while (token.Length > 0 && ids.Count < MaxMemberIdsListed);

        return ids;
    }

    /// <summary>Up to n ids spread evenly over the (id-ordered) member list, so the sample is not just the lowest ids.</summary>
    internal static List<string> EvenSample(IReadOnlyList<string> ids, int n)
    {
        if (ids.Count <= n)
        {
            return [.. ids];
        }

        var sample = new List<string>(n);
        for (var i = 0; i < n; i++)
        {
            sample.Add(ids[(int)((long)i * ids.Count / n)]);
        }

        return sample;
    }

    private static async Task<Profile?> GetProfileAsync(ProfileService.ProfileServiceClient client, SemaphoreSlim gate, string userId, CancellationToken ct)
    {
        await gate.WaitAsync(ct);
        try
        {
            return (await client.GetProfileAsync(new GetProfileRequest { UserId = userId }, cancellationToken: ct)).Profile;
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return null; // the member's profile went away between the listing and the read
        }
        finally
        {
            gate.Release();
        }
    }

    // members: the segment's size; listed: the member ids the sample was drawn from (the first MaxMemberIdsListed by id).
    private static MemberProfile? Summarise(List<Profile> sample, int members, int listed)
    {
        if (sample.Count == 0)
        {
            return null;
        }

        var buyers = sample.Where(p => p.Derived?.DaysSinceLastPurchase >= 0).ToList();
        var days = buyers.Select(p => p.Derived.DaysSinceLastPurchase).Order().ToList();
        var countries = sample
            .Select(p => p.Attributes.FirstOrDefault(a => a.Name == "country" && a.Value?.KindCase == AttributeValue.KindOneofCase.StringValue)?.Value.StringValue)
            .ToList();
        return new MemberProfile(
            sample.Count,
            members,
            listed,
            Math.Round(sample.Average(p => (double)(p.Aggregates?.Orders ?? 0)), 2),
            Math.Round(sample.Average(p => p.Aggregates?.Revenue ?? 0), 2),
            buyers.Count == 0 ? null : Math.Round(buyers.Average(p => p.Aggregates.AverageOrderValue), 2),
            Math.Round((double)buyers.Count / sample.Count, 4),
            days.Count == 0 ? null : Median(days),
            Mix(countries.Select(c => string.IsNullOrEmpty(c) ? "(unknown)" : c), sample.Count, 3),
            Mix(sample.Select(p => p.Derived?.LifecycleStage is { Length: > 0 } l ? l : "(none)"), sample.Count, 8));
    }

    private static double Median(List<int> sorted) =>
        sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2.0;

    private static List<Share> Mix(IEnumerable<string> values, int total, int top) =>
        values.GroupBy(v => v, StringComparer.Ordinal)
            .Select(g => new Share(g.Key, g.Count(), Math.Round((double)g.Count() / total, 4)))
            .OrderByDescending(s => s.Count).ThenBy(s => s.Value, StringComparer.Ordinal)
            .Take(top)
            .ToList();

    /// <summary>
    /// The segment's five variants, rendered by Decide for the first sampled member the segment wins for; with explain, so
    /// the render is a preview the service neither remembers nor counts in KPIs and experiments.
    /// A member can be outranked, overridden or excluded by another segment, so a few members are tried.
    /// </summary>
    private static async Task<SegmentStrategy> StrategyAsync(DecisionService.DecisionServiceClient client, string segmentId, bool fallback, List<string> sample, CancellationToken ct)
    {
        if (sample.Count == 0 && fallback)
        {
            // The fallback has no recorded members; an unknown visitor always gets it (Decide never fails for unknown ids).
            var f = (await client.DecideAsync(new DecideRequest { AnonymousId = UnknownVisitor, Explain = true }, cancellationToken: ct)).Decision;
            if (f.Segment.Id == segmentId)
            {
                return new SegmentStrategy(
                    UnknownVisitor,
                    [ToVariant("content", f.Content), ToVariant("offer", f.Offer), ToVariant("cta", f.Cta), ToVariant("journey", f.Journey), ToVariant("messaging", f.Messaging)],
                    "no recorded members; rendered for an unknown anonymous visitor, who always gets the fallback");
            }
        }

        if (sample.Count == 0)
        {
            return new SegmentStrategy(null, [], "no members to render");
        }

        var winners = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var userId in sample.Take(MaxDecideTries))
        {
            var d = (await client.DecideAsync(new DecideRequest { UserId = userId, Explain = true }, cancellationToken: ct)).Decision;
            if (d.Segment.Id == segmentId)
            {
                return new SegmentStrategy(
                    userId,
                    [ToVariant("content", d.Content), ToVariant("offer", d.Offer), ToVariant("cta", d.Cta), ToVariant("journey", d.Journey), ToVariant("messaging", d.Messaging)],
                    null);
            }

            winners[d.Segment.Id] = winners.GetValueOrDefault(d.Segment.Id) + 1;
        }

        var tried = Math.Min(sample.Count, MaxDecideTries);
        var by = string.Join(", ", winners.OrderByDescending(w => w.Value).Select(w => $"{w.Key} ×{w.Value}"));
        return new SegmentStrategy(null, [], $"not rendered: the segment did not win for any of the {tried} members tried (they get {by})");
    }

    private static Variant ToVariant(string slot, RenderedVariant? v) => new(slot, v?.VariantId ?? "", v?.Text ?? "", v?.FallbackUsed == true ? true : null);

    private static string Format(StrategyReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("SEGMENTATION STRATEGY");
        sb.AppendLine("=====================");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Catalog:     {r.Catalog.Name} v{r.Catalog.Version} ({r.Catalog.Origin}); {r.Population:N0} profiles; generated {r.GeneratedAt}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Approach:    {r.Approach.SegmentTypes.Count} segment types: {string.Join(", ", r.Approach.SegmentTypes)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"             rule fields: {string.Join(", ", r.Approach.FieldFamilies.Select(f => $"{f.Family}.* ({CatalogCommands.Plural(f.Segments, "segment")})"))}");
        if (r.Approach.ContextFieldsRead.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"             request context read: {string.Join(", ", r.Approach.ContextFieldsRead)}");
        }

        var fallback = r.Segments.Count(s => s.Fallback);
        sb.AppendLine(CultureInfo.InvariantCulture, $"Segments:    {r.SegmentCount} ({r.SegmentCount - fallback} rule-based{(fallback > 0 ? $" + fallback {r.Catalog.Fallback}" : "")})");
        sb.Append("Data Source: ");
        for (var i = 0; i < r.DataSources.Count; i++)
        {
            var d = r.DataSources[i];
            sb.AppendLine(CultureInfo.InvariantCulture, $"{(i == 0 ? "" : "             ")}{d.Source} ({CatalogCommands.Plural(d.Segments, "segment")}): {string.Join(", ", d.Fields)}");
        }

        if (r.DataSources.Count == 0)
        {
            sb.AppendLine("(no rule fields)");
        }

        sb.AppendLine();
        sb.AppendLine("SEGMENTS");
        sb.AppendLine("--------");
        foreach (var s in r.Segments)
        {
            var rels = new List<string>();
            if (s.Overrides is { } o)
            {
                rels.Add("overrides " + string.Join(", ", o));
            }

            if (s.Exclusions is { } x)
            {
                rels.Add("excludes " + string.Join(", ", x));
            }

            if (s.Persona is { } persona)
            {
                rels.Add("persona " + persona);
            }

            sb.AppendLine(CultureInfo.InvariantCulture, $"Segment: {s.Name} [{s.Id}; {s.Type}, priority {s.Priority}{(s.Fallback ? ", fallback" : "")}]");
            if (s.Description.Length > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  About:    {s.Description}");
            }

            sb.AppendLine(CultureInfo.InvariantCulture, $"  Size:     {s.Size.Members:N0} / {CatalogCommands.Percent(s.Size.Share)} of {s.Size.Population:N0} profiles");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Criteria: {s.Criteria}{(rels.Count > 0 ? $"  ({string.Join("; ", rels)})" : "")}");
            if (s.Profile is { } p)
            {
                var median = p.MedianDaysSinceLastPurchase is { } m ? m.ToString("0.#", CultureInfo.InvariantCulture) + " days" : "-";
                var aov = p.AverageOrderValue is { } a ? a.ToString("0.00", CultureInfo.InvariantCulture) : "-";
                sb.AppendLine(CultureInfo.InvariantCulture, $"  Profile:  sample of {p.Sampled:N0} of {p.Members:N0} members{(p.SampledFrom < p.Members ? $" (drawn from the first {p.SampledFrom:N0} by id)" : "")}: avg orders {p.AverageOrders:0.00}, avg revenue {p.AverageRevenue:0.00}, AOV of buyers {aov}, buyers {CatalogCommands.Percent(p.BuyerShare)}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"            median days since last purchase {median}; top countries {MixText(p.TopCountries)}");
                sb.AppendLine(CultureInfo.InvariantCulture, $"            lifecycle {MixText(p.LifecycleStages)}");
            }
            else
            {
                sb.AppendLine(s.ReadsRequestContext
                    ? "  Profile:  no members now (its rule reads the request context, and memberships are evaluated without one)"
                    : "  Profile:  no members now");
            }

            if (s.Strategy.Variants.Count > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  Strategy: variants as rendered by Decide for {(s.Strategy.Note is null ? "member " : "")}{s.Strategy.RenderedFor}{(s.Strategy.Note is { } n ? $" ({n})" : "")}:");
                foreach (var v in s.Strategy.Variants)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"    {v.Slot,-9} [{v.VariantId}]{(v.TemplateFallback == true ? " (template fallback)" : "")} {v.Text}");
                }
            }
            else
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  Strategy: {s.Strategy.Note}");
            }

            var k = s.Kpis;
            sb.AppendLine(k.Decisions == 0
                ? $"  KPIs:     no decisions in the last {k.Days} days (members now {k.Members:N0})"
                : string.Create(CultureInfo.InvariantCulture, $"  KPIs:     last {k.Days} days: {k.Decisions:N0} decisions, reach {k.Reach:N0}, {k.Impressions:N0} impressions, CTR {CatalogCommands.Percent(k.Ctr)}, {k.Conversions:N0} conversions ({CatalogCommands.Percent(k.ConversionRate)}), revenue {k.Revenue:N2} ({k.RevenuePerUser:N2} per decided user), churned {k.Churned:N0}"));
            foreach (var w in s.Warnings)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  Warning:  {w}");
            }

            sb.AppendLine();
        }

        if (r.LeadScoring is { } lead)
        {
            sb.AppendLine("LEAD SCORING");
            sb.AppendLine("------------");
            var nameWidth = Math.Max(6, lead.Signals.Max(x => x.Name.Length));
            sb.AppendLine(CultureInfo.InvariantCulture, $"{"Category",-12} | {"Signal".PadRight(nameWidth)} | {"Points",6} | {"Cap",4} | What counts");
            sb.AppendLine(CultureInfo.InvariantCulture, $"{new string('-', 12)}-|-{new string('-', nameWidth)}-|-{new string('-', 6)}-|-{new string('-', 4)}-|------------");
            foreach (var x in lead.Signals)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"{x.Category,-12} | {x.Name.PadRight(nameWidth)} | {x.Points,6:+0;-0;0} | {x.Cap,4:+0;-0;0} | {x.Counts}");
            }

            sb.AppendLine();
            sb.AppendLine("Thresholds:");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Cold:        0-{lead.Thresholds.Warm - 1}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  MQL:         {lead.Thresholds.Warm}-{lead.Thresholds.Hot - 1} (warm)");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  SQL:         {lead.Thresholds.Hot}-{lead.Thresholds.SalesReady - 1} (hot)");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Sales Ready: {lead.Thresholds.SalesReady}-100");
            sb.AppendLine();
        }

        foreach (var p in r.Personas)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"PERSONA: {p.Name} [{p.Id}]");
            sb.AppendLine(new string('=', 9 + p.Name.Length + p.Id.Length + 3));
            sb.AppendLine(CultureInfo.InvariantCulture, $"Role:        {Or(p.Role)}");
            sb.AppendLine("Goals:");
            AppendItems(sb, p.Goals);
            sb.AppendLine("Pain Points:");
            AppendItems(sb, p.PainPoints);
            sb.AppendLine("Behavior:");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Channels:  {Or(string.Join(", ", p.Channels))}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Decision:  {Or(p.Behaviour)}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Triggers:  {Or(string.Join("; ", p.Triggers))}");
            sb.AppendLine("Messaging:");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Value Prop: {Or(p.Messaging)}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Tone:       {Or(p.Tone)}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  Objections: {Or(string.Join("; ", p.Objections))}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"Segments:    {Or(string.Join(", ", p.Segments))}");
            sb.AppendLine();
        }

        if (r.CatalogWarnings.Count > 0)
        {
            sb.AppendLine("CATALOG WARNINGS");
            sb.AppendLine("----------------");
            foreach (var w in r.CatalogWarnings)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  {w}");
            }
        }

        return sb.ToString();
    }

    private static string Or(string text) => text.Length > 0 ? text : "-";

    private static void AppendItems(StringBuilder sb, List<string> items)
    {
        if (items.Count == 0)
        {
            sb.AppendLine("  -");
        }

        foreach (var item in items)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  - {item}");
        }
    }

    private static string MixText(List<Share> mix) =>
        mix.Count == 0 ? "-" : string.Join(", ", mix.Select(s => $"{Terminal.Shown(s.Value)} {CatalogCommands.Percent(s.Fraction)}"));

    internal sealed class StrategyReport
    {
        public string GeneratedAt { get; init; } = "";

        public required CatalogInfo Catalog { get; init; }

        public long Population { get; init; }

        public required Approach Approach { get; init; }

        public int SegmentCount { get; init; }

        public required List<DataSourceUse> DataSources { get; init; }

        public List<SegmentReport> Segments { get; } = [];

        public required List<string> CatalogWarnings { get; init; }

        public LeadScoringReport? LeadScoring { get; init; }

        public required List<PersonaCard> Personas { get; init; }
    }

    internal sealed record LeadScoringReport(List<LeadSignalReport> Signals, LeadThresholds Thresholds);

    internal sealed record LeadSignalReport(string Category, string Name, string Counts, int Points, int Cap);

    internal sealed record LeadThresholds(int Warm, int Hot, int SalesReady);

    internal sealed record PersonaCard(
        string Id, string Name, string Role, List<string> Goals, List<string> PainPoints, string Behaviour, List<string> Channels,
        List<string> Triggers, string Tone, string Messaging, List<string> Objections, List<string> Segments);

    internal sealed record CatalogInfo(string Name, long Version, string Origin, string Fallback);

    internal sealed record Approach(List<string> SegmentTypes, List<FieldFamily> FieldFamilies, List<string> ContextFieldsRead);

    internal sealed record FieldFamily(string Family, int Segments, List<string> Fields);

    internal sealed record DataSourceUse(string Source, int Segments, List<string> Fields);

    internal sealed class SegmentReport
    {
        public required string Id { get; init; }

        public required string Name { get; init; }

        public required string Type { get; init; }

        public int Priority { get; init; }

        public bool Fallback { get; init; }

        public string Description { get; init; } = "";

        public string? Persona { get; init; }

        public List<string>? Overrides { get; init; }

        public List<string>? Exclusions { get; init; }

        public required SegmentSize Size { get; init; }

        public required string Criteria { get; init; }

        public MemberProfile? Profile { get; init; }

        public required SegmentStrategy Strategy { get; init; }

        public bool ReadsRequestContext { get; init; }

        public required Kpis Kpis { get; init; }

        public required List<string> Warnings { get; init; }
    }

    internal sealed record SegmentSize(long Members, double Share, long Population);

    internal sealed record MemberProfile(
        int Sampled,
        int Members,
        int SampledFrom,
        double AverageOrders,
        double AverageRevenue,
        double? AverageOrderValue,
        double BuyerShare,
        double? MedianDaysSinceLastPurchase,
        List<Share> TopCountries,
        List<Share> LifecycleStages);

    internal sealed record Share(string Value, int Count, double Fraction);

    internal sealed record SegmentStrategy(string? RenderedFor, List<Variant> Variants, string? Note);

    internal sealed record Variant(string Slot, string VariantId, string Text, bool? TemplateFallback);

    internal sealed record Kpis(long Members, int Days, long Decisions, long Reach, long Impressions, double Ctr, long Conversions, double ConversionRate, double Revenue, double RevenuePerUser, long Churned);
}
