using System.Collections.Concurrent;
using Segmentation.Core.Catalog;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Rendering;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Measurement;

/// <summary>A dimension KPIs can be grouped by.</summary>
public enum KpiDimension
{
    /// <summary>The winning segment.</summary>
    Segment,

    /// <summary>The variant an outcome concerns (with its segment).</summary>
    Variant,

    /// <summary>The request's channel.</summary>
    Channel,

    /// <summary>The catalog version that decided.</summary>
    CatalogVersion,
}

/// <summary>A KPI question: a time range, the dimensions to group by, an optional segment, and whether to add hourly series.</summary>
public sealed record KpiQuery(DateTimeOffset Start, DateTimeOffset End, IReadOnlyList<KpiDimension> GroupBy, string? SegmentId = null, bool Series = false);

/// <summary>One group's KPIs; the fields of dimensions not grouped by are null.</summary>
/// <param name="SegmentId">The segment, when grouped by segment or variant.</param>
/// <param name="Variant">The variant kind, when grouped by variant (null there: outcomes that named none).</param>
/// <param name="VariantId">The variant's id in that segment, when known.</param>
/// <param name="Channel">The channel, when grouped by channel.</param>
/// <param name="CatalogVersion">The catalog version, when grouped by it.</param>
/// <param name="Kpis">The KPIs over the range.</param>
/// <param name="Series">Hourly points (hours without data left out), when asked for.</param>
public sealed record KpiRow(string? SegmentId, VariantKind? Variant, string? VariantId, string? Channel, long? CatalogVersion, Kpis Kpis, IReadOnlyList<KpiPoint> Series);

/// <summary>One hour of a series.</summary>
/// <param name="Hour">Start of the hour (UTC).</param>
/// <param name="Kpis">Its KPIs (reach over the hour's UTC day).</param>
public readonly record struct KpiPoint(DateTimeOffset Hour, Kpis Kpis);

/// <summary>The answer to a <see cref="KpiQuery"/>.</summary>
/// <param name="Start">The range used, rounded down to the hour.</param>
/// <param name="End">End of the range used (exclusive), rounded up to the hour.</param>
/// <param name="Rows">One row per group, most decisions first.</param>
/// <param name="Total">All groups together.</param>
/// <param name="UnattributedOutcomes">Outcomes in the range credited to no decision.</param>
public sealed record KpiReport(DateTimeOffset Start, DateTimeOffset End, IReadOnlyList<KpiRow> Rows, Kpis Total, long UnattributedOutcomes);

/// <summary>
/// Decisions and credited outcomes in hourly buckets, kept for <see cref="RetentionDays"/> days in a ring (an
/// hour's bucket is reused, and so forgotten, when the same slot comes round again), with the distinct users
/// decided in one <see cref="ReachSketch"/> per segment, catalog version, channel and UTC day. Memory is
/// bounded by the catalog, not by traffic: per hour one counter set per (segment, version, channel, variant)
/// that occurred, and 4 KB per (segment, version, channel) and day for reach.
/// </summary>
public sealed class KpiStore
{
    /// <summary>Days of hourly buckets kept.</summary>
    public const int RetentionDays = 90;

    private const int Hours = RetentionDays * 24;
    private static readonly VariantKind[] Kinds = Enum.GetValues<VariantKind>();

    private readonly Bucket?[] _hours = new Bucket?[Hours];
    private readonly ConcurrentDictionary<ReachKey, ReachSketch> _reach = new();
    private readonly ConcurrentDictionary<(string Segment, long Version), Segment> _segments = new();
    private long _newestDay = long.MinValue;

    /// <summary>Counts one decision served for <paramref name="userId"/> at <paramref name="ticks"/>.</summary>
    public void AddDecision(long ticks, DecisionKey key, string userId)
    {
        var (winner, catalogVersion, channel) = (key.Segment, key.CatalogVersion, key.Channel);
        _segments.TryAdd((winner.Id, catalogVersion), winner);
        Cell(ticks, new CellKey(winner.Id, catalogVersion, channel, null)).AddDecision();
        var day = ticks / TimeSpan.TicksPerDay;
        _reach.GetOrAdd(new ReachKey(winner.Id, catalogVersion, channel, day), static _ => new ReachSketch()).Add(userId);
        if (day > Volatile.Read(ref _newestDay))
        {
            ForgetReachBefore(day);
        }
    }

    /// <summary>Counts one outcome credited to a decision of <paramref name="segmentId"/>.</summary>
    public void AddOutcome(long ticks, string segmentId, long catalogVersion, string channel, VariantKind? variant, OutcomeType type, double value) =>
        Cell(ticks, new CellKey(segmentId, catalogVersion, channel, variant)).Add(type, value);

    /// <summary>Counts one outcome credited to no decision.</summary>
    public void AddUnattributed(long ticks, OutcomeType type) =>
        Cell(ticks, new CellKey("", 0, "", null)).Add(type, 0);

    /// <summary>Answers <paramref name="query"/>. Throws <see cref="ValidationException"/> for a bad range or repeated dimension.</summary>
    public KpiReport Query(KpiQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var start = Floor(query.Start);
        var end = Ceiling(query.End);
        var v = new ViolationList();
        if (end <= start)
        {
            v.Add("end", "must be after start");
        }
        else if (end - start > TimeSpan.FromDays(RetentionDays))
        {
            v.Add("start", $"the range may span at most {RetentionDays} days (the KPIs kept)");
        }

        if (query.GroupBy.Distinct().Count() != query.GroupBy.Count)
        {
            v.Add("group_by", "a dimension may appear once");
        }

        v.ThrowIfAny();

        var dims = query.GroupBy.Count == 0 ? [KpiDimension.Segment] : query.GroupBy.ToHashSet();
        var bySegment = dims.Contains(KpiDimension.Segment) || dims.Contains(KpiDimension.Variant);
        var byVariant = dims.Contains(KpiDimension.Variant);
        var byChannel = dims.Contains(KpiDimension.Channel);
        var byVersion = dims.Contains(KpiDimension.CatalogVersion);
        GroupKey GroupOf(CellKey c, VariantKind? variant) => new(
            bySegment ? c.Segment : null,
            byVariant ? variant : null,
            byChannel ? c.Channel : null,
            byVersion ? c.Version : null);

        var totals = new Dictionary<GroupKey, Kpis>();
        var series = query.Series ? new Dictionary<GroupKey, SortedDictionary<long, Kpis>>() : null;
        var variantsSeen = new HashSet<(string Segment, VariantKind? Variant)>();
        long unattributed = 0;
        var all = new Kpis();
        for (var hour = start.UtcTicks / TimeSpan.TicksPerHour; hour < end.UtcTicks / TimeSpan.TicksPerHour; hour++)
        {
            if (Volatile.Read(ref _hours[hour % Hours]) is not { } bucket || bucket.Hour != hour)
            {
                continue;
            }

            foreach (var (key, counters) in bucket.Cells)
            {
                if (key.Segment.Length == 0)
                {
                    unattributed += Outcomes(counters.AddTo(new Kpis()));
                    continue;
                }

                if (query.SegmentId is { } only && key.Segment != only)
                {
                    continue;
                }

                all = counters.AddTo(all);
                if (byVariant && key.Variant is null)
                {
                    // A decision renders all five variants: each variant's row counts it. Outcomes that named no
                    // variant (a decision-level counter set also holds those) get a row of their own.
                    var counted = counters.AddTo(new Kpis());
                    foreach (var kind in Kinds)
                    {
                        Accumulate(GroupOf(key, kind), hour, counted with { Impressions = 0, Clicks = 0, Conversions = 0, Revenue = 0, Dismisses = 0, EmailSends = 0, EmailOpens = 0, EmailClicks = 0, EmailUnsubscribes = 0 });
                    }

                    if (Outcomes(counted) > 0)
                    {
                        Accumulate(GroupOf(key, null), hour, counted);
                        variantsSeen.Add((key.Segment, null));
                    }

                    continue;
                }

                Accumulate(GroupOf(key, key.Variant), hour, counters.AddTo(new Kpis()));
            }
        }

        var rows = new List<KpiRow>(totals.Count);
        foreach (var (group, kpis) in totals)
        {
            if (byVariant && group.Variant is null && !variantsSeen.Contains((group.Segment!, null)))
            {
                continue;
            }

            var points = series is null ? [] : series[group].Select(p => new KpiPoint(new DateTimeOffset(p.Key * TimeSpan.TicksPerHour, TimeSpan.Zero), p.Value with { Reach = Reach(group, query.SegmentId, p.Key / 24, p.Key / 24 + 1) })).ToList();
            rows.Add(new KpiRow(group.Segment, group.Variant, VariantId(group), group.Channel, group.Version, kpis with { Reach = Reach(group, query.SegmentId, FirstDay(start), LastDay(end)) }, points));
        }

        rows.Sort((a, b) => b.Kpis.Decisions != a.Kpis.Decisions ? b.Kpis.Decisions.CompareTo(a.Kpis.Decisions) : string.CompareOrdinal(a.SegmentId, b.SegmentId));
        var total = all with { Reach = Reach(new GroupKey(null, null, null, null), query.SegmentId, FirstDay(start), LastDay(end)) };
        return new KpiReport(start, end, rows, total, unattributed);

        void Accumulate(GroupKey group, long hour, Kpis add)
        {
            totals[group] = Sum(totals.GetValueOrDefault(group) ?? new Kpis(), add);
            if (series is not null)
            {
                var points = series.TryGetValue(group, out var s) ? s : series[group] = [];
                points[hour] = Sum(points.GetValueOrDefault(hour) ?? new Kpis(), add);
            }
        }
    }

    private static long Outcomes(Kpis k) => k.Impressions + k.Clicks + k.Conversions + k.Dismisses + k.EmailSends + k.EmailOpens + k.EmailClicks + k.EmailUnsubscribes;

    private static Kpis Sum(Kpis a, Kpis b) => new()
    {
        Decisions = a.Decisions + b.Decisions,
        Impressions = a.Impressions + b.Impressions,
        Clicks = a.Clicks + b.Clicks,
        Conversions = a.Conversions + b.Conversions,
        Revenue = a.Revenue + b.Revenue,
        Dismisses = a.Dismisses + b.Dismisses,
        EmailSends = a.EmailSends + b.EmailSends,
        EmailOpens = a.EmailOpens + b.EmailOpens,
        EmailClicks = a.EmailClicks + b.EmailClicks,
        EmailUnsubscribes = a.EmailUnsubscribes + b.EmailUnsubscribes,
    };

    private static DateTimeOffset Floor(DateTimeOffset t) => new(t.UtcTicks - (t.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero);

    private static DateTimeOffset Ceiling(DateTimeOffset t) => t.UtcTicks % TimeSpan.TicksPerHour == 0 ? new(t.UtcTicks, TimeSpan.Zero) : Floor(t).AddHours(1);

    private static long FirstDay(DateTimeOffset start) => start.UtcTicks / TimeSpan.TicksPerDay;

    private static long LastDay(DateTimeOffset end) => ((end.UtcTicks - 1) / TimeSpan.TicksPerDay) + 1;

    // Distinct users of the group over the whole UTC days [fromDay, toDay).
    private long Reach(GroupKey group, string? onlySegment, long fromDay, long toDay)
    {
        var merged = new ReachSketch();
        var any = false;
        foreach (var (key, sketch) in _reach)
        {
            if (key.Day >= fromDay && key.Day < toDay
                && (group.Segment is null || key.Segment == group.Segment)
                && (onlySegment is null || key.Segment == onlySegment)
                && (group.Channel is null || key.Channel == group.Channel)
                && (group.Version is null || key.Version == group.Version))
            {
                merged.Merge(sketch);
                any = true;
            }
        }

        return any ? merged.Estimate() : 0;
    }

    private string? VariantId(GroupKey group)
    {
        if (group.Variant is not { } kind || group.Segment is null)
        {
            return null;
        }

        // The variant as of the group's catalog version, else the newest version that decided for the segment.
        var versions = _segments.Where(p => p.Key.Segment == group.Segment && (group.Version is null || p.Key.Version == group.Version)).OrderByDescending(p => p.Key.Version);
        return versions.Select(p => p.Value.Variants[(int)kind].Id).FirstOrDefault();
    }

    private KpiCounters Cell(long ticks, CellKey key)
    {
        var hour = ticks / TimeSpan.TicksPerHour;
        ref var slot = ref _hours[hour % Hours];
        var bucket = Volatile.Read(ref slot);
        if (bucket is null || bucket.Hour != hour)
        {
            lock (_hours)
            {
                bucket = Volatile.Read(ref slot);
                if (bucket is null || bucket.Hour < hour)
                {
                    bucket = new Bucket(hour);
                    Volatile.Write(ref slot, bucket); // the hour 90 days earlier is forgotten
                }
                else if (bucket.Hour > hour)
                {
                    return Discarded; // older than what is kept
                }
            }
        }

        return bucket.Cells.GetOrAdd(key, static _ => new KpiCounters());
    }

    private static readonly KpiCounters Discarded = new();

    private void ForgetReachBefore(long day)
    {
        lock (_reach)
        {
            if (day <= _newestDay)
            {
                return;
            }

            _newestDay = day;
            foreach (var key in _reach.Keys)
            {
                if (key.Day <= day - RetentionDays)
                {
                    _reach.TryRemove(key, out _);
                }
            }
        }
    }

    private readonly record struct CellKey(string Segment, long Version, string Channel, VariantKind? Variant);

    private readonly record struct GroupKey(string? Segment, VariantKind? Variant, string? Channel, long? Version);

    private readonly record struct ReachKey(string Segment, long Version, string Channel, long Day);

    private sealed class Bucket(long hour)
    {
        public long Hour { get; } = hour;

        public ConcurrentDictionary<CellKey, KpiCounters> Cells { get; } = new();
    }
}
