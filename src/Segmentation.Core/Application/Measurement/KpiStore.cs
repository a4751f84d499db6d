using System.Collections.Concurrent;
using System.Runtime.InteropServices;
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

    /// <summary>The experiment arm that served the decision (decisions in no experiment form a row without an arm).</summary>
    Arm,
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
public sealed record KpiRow(string? SegmentId, VariantKind? Variant, string? VariantId, string? Channel, long? CatalogVersion, Kpis Kpis, IReadOnlyList<KpiPoint> Series)
{
    /// <summary>The experiment arm ("experiment:arm"), when grouped by arm; "" for decisions in no experiment.</summary>
    public string? Arm { get; init; }

    /// <summary>The experiment of <see cref="Arm"/> ("" when none).</summary>
    public string ExperimentId => Arm is { } a && a.IndexOf(':', StringComparison.Ordinal) is var colon and > 0 ? a[..colon] : "";

    /// <summary>The arm id of <see cref="Arm"/> ("" when none).</summary>
    public string ArmId => Arm is { } a && a.IndexOf(':', StringComparison.Ordinal) is var colon and > 0 ? a[(colon + 1)..] : "";
}

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
/// <param name="FallbackRate">
/// Share of the range's decisions whose winner was the catalog's fallback segment, over the decisions outside the
/// decisioning holdout (its users are served the fallback on purpose, whatever they match).
/// </param>
public sealed record KpiReport(DateTimeOffset Start, DateTimeOffset End, IReadOnlyList<KpiRow> Rows, Kpis Total, long UnattributedOutcomes, double FallbackRate = 0);

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

    // Days the rings keep: the 91 UTC days a 90-day range touches, and tomorrow, where a write dated within the allowed
    // 5 minutes ahead lands just before midnight (it took the slot of the oldest day still asked for).
    private const int KeptDays = RetentionDays + 2;

    // Every hour of the days the day ring keeps (a 90-day range not on whole hours touches 2,161 hours), so a day reads
    // the same from its total as from its hours for as long as it is kept.
    private const int Hours = KeptDays * 24;
    private static readonly VariantKind[] Kinds = Enum.GetValues<VariantKind>();

    private readonly Bucket?[] _hours = new Bucket?[Hours];
    private readonly Bucket?[] _days = new Bucket?[KeptDays];
    private readonly ConcurrentDictionary<ReachKey, ReachSketch> _reach = new();
    private readonly ConcurrentDictionary<(string Segment, long Version), Segment> _segments = new();
    private readonly ConcurrentDictionary<string, string[]> _armVariantIds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool[]> _armOverrides = new(StringComparer.Ordinal); // the kinds each arm serves its own variant of
    private long _newestDay = long.MinValue;

    /// <summary>Counts one decision served for <paramref name="userId"/> at <paramref name="ticks"/>.</summary>
    public void AddDecision(long ticks, DecisionKey key, string userId)
    {
        var (winner, catalogVersion, channel) = (key.Segment, key.CatalogVersion, key.Channel);
        _segments.TryAdd((winner.Id, catalogVersion), winner);
        var arm = key.Arm?.Key ?? "";
        if (key.Arm is { } a && !_armOverrides.ContainsKey(arm))
        {
            _armVariantIds.TryAdd(arm, [.. a.Variants.Select(v => v.Id)]);
            _armOverrides.TryAdd(arm, Overrides(a));
        }

        Cell(ticks, new CellKey(winner.Id, catalogVersion, channel, null, arm)).AddDecision();
        var day = ticks / TimeSpan.TicksPerDay;
        _reach.GetOrAdd(new ReachKey(winner.Id, catalogVersion, channel, day, arm), static _ => new ReachSketch()).Add(userId);
        if (day > Volatile.Read(ref _newestDay))
        {
            ForgetReachBefore(day);
        }
    }

    /// <summary>Outcomes counted so far (credited or not): a checkpoint is due when it changed.</summary>
    public long OutcomesCounted => Volatile.Read(ref _outcomesCounted);

    private long _outcomesCounted;

    /// <summary>Counts one outcome credited to a decision of <paramref name="segmentId"/>.</summary>
    public void AddOutcome(long ticks, string segmentId, long catalogVersion, string channel, VariantKind? variant, OutcomeType type, double value, string arm = "")
    {
        Cell(ticks, new CellKey(segmentId, catalogVersion, channel, variant, arm)).Add(type, value);
        Interlocked.Increment(ref _outcomesCounted);
    }

    /// <summary>Counts one outcome credited to no decision.</summary>
    public void AddUnattributed(long ticks, OutcomeType type)
    {
        Cell(ticks, new CellKey("", 0, "", null, "")).Add(type, 0);
        Interlocked.Increment(ref _outcomesCounted);
    }

    /// <summary>Answers <paramref name="query"/>. Throws <see cref="ValidationException"/> for a bad range or repeated dimension.</summary>
    public KpiReport Query(KpiQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var start = Floor(query.Start);
        var end = Ceiling(query.End);
        var v = new ViolationList();
        CheckRange(v, query.Start, query.End);

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
        var byArm = dims.Contains(KpiDimension.Arm);
        GroupKey GroupOf(CellKey c, VariantKind? variant) => new(
            bySegment ? c.Segment : null,
            byVariant ? variant : null,
            byChannel ? c.Channel : null,
            byVersion ? c.Version : null,
            byArm ? c.Arm : null);

        var totals = new Dictionary<GroupKey, KpiSum>();
        var series = query.Series ? new Dictionary<GroupKey, SortedDictionary<long, KpiSum>>() : null;
        var withoutVariant = new HashSet<GroupKey>(); // groups with outcomes that named no variant
        var unattributed = new KpiSum();
        var all = new KpiSum();
        var personalized = new KpiSum(); // decisions outside the decisioning holdout (whose users get the fallback on purpose)
        var fallback = new KpiSum();
        var (firstHour, endHour) = (start.UtcTicks / TimeSpan.TicksPerHour, end.UtcTicks / TimeSpan.TicksPerHour);
        for (var hour = firstHour; hour < endHour; hour++)
        {
            // A whole day inside the range, without a series, is read from its day total.
            var wholeDay = series is null && hour % 24 == 0 && hour + 24 <= endHour;
            var (ring, period) = wholeDay ? (_days, hour / 24) : (_hours, hour);
            if (wholeDay)
            {
                hour += 23;
            }

            if (Volatile.Read(ref ring[period % ring.Length]) is not { } bucket || bucket.Hour != period)
            {
                continue;
            }

            foreach (var (key, counters) in bucket.Cells)
            {
                if (key.Segment.Length == 0)
                {
                    counters.AddTo(ref unattributed);
                    continue;
                }

                if (query.SegmentId is { } only && key.Segment != only)
                {
                    continue;
                }

                counters.AddTo(ref all);
                if (key.Variant is null && key.Arm != HoldoutArmKey)
                {
                    counters.AddTo(ref personalized, outcomes: false);
                    if (_segments.TryGetValue((key.Segment, key.Version), out var decided) && decided.IsFallback)
                    {
                        counters.AddTo(ref fallback, outcomes: false);
                    }
                }

                var cell = new KpiSum();
                if (byVariant && key.Variant is null)
                {
                    // A decision renders all five variants: each variant's row counts it. Outcomes that named no
                    // variant (a decision-level counter set also holds those) get a row of their own, which counts
                    // every decision too (in every period, so a series and a day total agree), shown when it has any.
                    var decisions = new KpiSum();
                    counters.AddTo(ref decisions, outcomes: false);
                    foreach (var kind in Kinds)
                    {
                        Accumulate(GroupOf(key, kind), hour, decisions);
                    }

                    counters.AddTo(ref cell);
                    var group = GroupOf(key, null);
                    Accumulate(group, hour, cell);
                    if (cell.Outcomes > 0)
                    {
                        withoutVariant.Add(group);
                    }

                    continue;
                }

                counters.AddTo(ref cell);
                Accumulate(GroupOf(key, key.Variant), hour, cell);
            }
        }

        var (firstDay, lastDay) = (FirstDay(start), LastDay(end));
        var sketches = _reach.Where(p => p.Key.Day >= firstDay && p.Key.Day < lastDay && (query.SegmentId is null || p.Key.Segment == query.SegmentId)).ToList();
        var sketchesByDay = series is null ? null : sketches.GroupBy(p => p.Key.Day).ToDictionary(g => g.Key, g => g.ToList());
        var dayReach = new Dictionary<(GroupKey, long), long>();

        // A series point's reach is its whole UTC day's: computed once per group and day from that day's sketches (each of
        // a day's 24 points merged every sketch of the range: a 90-day series of 600 rows was billions of steps).
        long DayReach(GroupKey group, long day)
        {
            group = group with { Variant = null }; // reach is the decisions' users, whichever variant a row counts
            if (!dayReach.TryGetValue((group, day), out var reach))
            {
                dayReach[(group, day)] = reach = sketchesByDay!.TryGetValue(day, out var ofDay) ? Reach(ofDay, group, day, day + 1) : 0;
            }

            return reach;
        }

        if (series is not null)
        {
            CheckSeriesPoints(series.Where(g => !byVariant || g.Key.Variant is not null || withoutVariant.Contains(g.Key)).Sum(g => (long)g.Value.Count)); // before the rows' points are built (the hourly sums are)
        }

        var rows = new List<KpiRow>(totals.Count);
        foreach (var (group, sum) in totals)
        {
            if (byVariant && group.Variant is null && !withoutVariant.Contains(group))
            {
                continue;
            }

            var points = series is null ? [] : series[group].Select(p => new KpiPoint(new DateTimeOffset(p.Key * TimeSpan.TicksPerHour, TimeSpan.Zero), p.Value.ToKpis(DayReach(group, p.Key / 24)))).ToList();
            rows.Add(new KpiRow(group.Segment, group.Variant, VariantId(group), group.Channel, group.Version, sum.ToKpis(Reach(sketches, group, firstDay, lastDay)), points) { Arm = group.Arm });
        }

        rows.Sort((a, b) => b.Kpis.Decisions != a.Kpis.Decisions ? b.Kpis.Decisions.CompareTo(a.Kpis.Decisions) : string.CompareOrdinal(a.SegmentId, b.SegmentId));
        var total = all.ToKpis(Reach(sketches, new GroupKey(null, null, null, null, null), firstDay, lastDay));
        return new KpiReport(start, end, rows, total, unattributed.Outcomes, personalized.Decisions == 0 ? 0 : (double)fallback.Decisions / personalized.Decisions);

        void Accumulate(GroupKey group, long hour, in KpiSum add)
        {
            CollectionsMarshal.GetValueRefOrAddDefault(totals, group, out _).Add(add);
            if (series is not null)
            {
                var points = series.TryGetValue(group, out var s) ? s : series[group] = [];
                var point = points.GetValueOrDefault(hour);
                point.Add(add);
                points[hour] = point;
            }
        }
    }

    /// <summary>
    /// Most hourly points one report's series may hold, over all its rows (about 20 MB of response): a 90-day series of a
    /// large catalog grouped by variant and channel would be hundreds of megabytes, past what a client accepts.
    /// </summary>
    public int MaxSeriesPoints { get; init; } = 200_000;

    /// <summary>Throws <see cref="ValidationException"/> naming <c>include_series</c> when <paramref name="points"/> exceed <see cref="MaxSeriesPoints"/>.</summary>
    public void CheckSeriesPoints(long points)
    {
        if (points > MaxSeriesPoints)
        {
            var v = new ViolationList();
            v.Add("include_series", $"the series would hold {points:N0} hourly points, at most {MaxSeriesPoints:N0}: narrow the range, ask for one segment (segment_id) or group by fewer dimensions");
            v.ThrowIfAny();
        }
    }

    /// <summary>
    /// Adds a violation when [<paramref name="start"/>, <paramref name="end"/>) is empty or longer than the
    /// <see cref="RetentionDays"/> days kept (as asked: a 90-day range not on whole hours is answered over the hours it touches).
    /// </summary>
    public static void CheckRange(ViolationList v, DateTimeOffset start, DateTimeOffset end)
    {
        ArgumentNullException.ThrowIfNull(v);
        if (end <= start)
        {
            v.Add("end", "must be after start");
        }
        else if (end - start > TimeSpan.FromDays(RetentionDays))
        {
            v.Add("start", $"the range may span at most {RetentionDays} days (the KPIs kept)");
        }
    }

    private static DateTimeOffset Floor(DateTimeOffset t) => new(t.UtcTicks - (t.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero);

    private static DateTimeOffset Ceiling(DateTimeOffset t) => t.UtcTicks % TimeSpan.TicksPerHour == 0 ? new(t.UtcTicks, TimeSpan.Zero) : Floor(t).AddHours(1);

    private static long FirstDay(DateTimeOffset start) => start.UtcTicks / TimeSpan.TicksPerDay;

    private static long LastDay(DateTimeOffset end) => ((end.UtcTicks - 1) / TimeSpan.TicksPerDay) + 1;

    /// <summary>Reach estimates made by this store's queries (tests bound them).</summary>
    internal long ReachEstimates => Interlocked.Read(ref _reachEstimates);

    private long _reachEstimates;

    // Distinct users of the group over the whole UTC days [fromDay, toDay), from the sketches of the range.
    private long Reach(List<KeyValuePair<ReachKey, ReachSketch>> sketches, GroupKey group, long fromDay, long toDay)
    {
        Interlocked.Increment(ref _reachEstimates);
        ReachSketch? merged = null;
        foreach (var (key, sketch) in sketches)
        {
            if (key.Day >= fromDay && key.Day < toDay
                && (group.Segment is null || key.Segment == group.Segment)
                && (group.Channel is null || key.Channel == group.Channel)
                && (group.Version is null || key.Version == group.Version)
                && (group.Arm is null || key.Arm == group.Arm))
            {
                (merged ??= new ReachSketch()).Merge(sketch);
            }
        }

        return merged?.Estimate() ?? 0;
    }

    private string? VariantId(GroupKey group)
    {
        if (group.Variant is not { } kind || group.Segment is null)
        {
            return null;
        }

        // The arm's own variant where it overrides one; elsewhere the winner's own was served (for an experiment of the
        // whole catalog the arm's other variants are the fallback's, not what the winner served). An arm whose overrides
        // are not known (restored, and no longer in the catalog) is taken as serving all five.
        if (group.Arm is { Length: > 0 } arm && _armVariantIds.TryGetValue(arm, out var ids) && (int)kind < ids.Length
            && (!_armOverrides.TryGetValue(arm, out var own) || ((int)kind < own.Length && own[(int)kind])))
        {
            return ids[(int)kind];
        }

        // The variant as of the group's catalog version, else the newest version that decided for the segment.
        var versions = _segments.Where(p => p.Key.Segment == group.Segment && (group.Version is null || p.Key.Version == group.Version)).OrderByDescending(p => p.Key.Version);
        return versions.Select(p => p.Value.Variants[(int)kind].Id).FirstOrDefault();
    }

    // Counters of one key in an hour, and in the day that holds it (day totals answer whole days without
    // walking their hours).
    private Counters Cell(long ticks, CellKey key)
    {
        var hour = ticks / TimeSpan.TicksPerHour;
        return new Counters(In(_hours, hour, key), In(_days, hour / 24, key));
    }

    private static KpiCounters In(Bucket?[] ring, long period, CellKey key)
    {
        ref var slot = ref ring[period % ring.Length];
        var bucket = Volatile.Read(ref slot);
        if (bucket is null || bucket.Hour != period)
        {
            lock (ring)
            {
                bucket = Volatile.Read(ref slot);
                if (bucket is null || bucket.Hour < period)
                {
                    bucket = new Bucket(period);
                    Volatile.Write(ref slot, bucket); // the period a ring's length earlier is forgotten
                }
                else if (bucket.Hour > period)
                {
                    return Discarded; // older than what is kept
                }
            }
        }

        return bucket.Cells.GetOrAdd(key, static _ => new KpiCounters());
    }

    private readonly record struct Counters(KpiCounters Hour, KpiCounters Day)
    {
        public void AddDecision()
        {
            Hour.AddDecision();
            Day.AddDecision();
        }

        public void Add(OutcomeType type, double value)
        {
            Hour.Add(type, value);
            Day.Add(type, value);
        }
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
                if (key.Day < day - (KeptDays - 1)) // the 91 UTC days a 90-day range touches, and the day a write dated ahead can reach
                {
                    _reach.TryRemove(key, out _);
                }
            }

            ForgetUndecided();
        }
    }

    // Forgets the definitions of segment versions and experiment arms no kept day decided into, nor credited an outcome
    // to: each publish adds a version of every segment decided into, and each kept its catalog's segment (rules,
    // templates) for good. A segment's newest version is kept (a range not grouped by version names its variants); an
    // arm still served is learned again at its next decision.
    private void ForgetUndecided()
    {
        // The day ring holds a cell for every decision and every credited outcome of the kept days (an outcome is dated
        // when it happened, up to an attribution window after its decision: its row still names that version's variant).
        var decided = new HashSet<(string Segment, long Version)>();
        var arms = new HashSet<string>(StringComparer.Ordinal);
        var kept = Volatile.Read(ref _newestDay) - (KeptDays - 1);
        foreach (var bucket in _days)
        {
            if (bucket is null || bucket.Hour < kept)
            {
                continue; // a slot no write has reached since its day left the ring
            }

            foreach (var key in bucket.Cells.Keys)
            {
                decided.Add((key.Segment, key.Version));
                arms.Add(key.Arm);
            }
        }

        var newest = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (segment, version) in _segments.Keys)
        {
            newest[segment] = Math.Max(version, newest.GetValueOrDefault(segment, long.MinValue));
        }

        foreach (var key in _segments.Keys)
        {
            if (!decided.Contains(key) && key.Version < newest[key.Segment])
            {
                _segments.TryRemove(key, out _);
            }
        }

        foreach (var arm in _armVariantIds.Keys)
        {
            if (!arms.Contains(arm))
            {
                _armVariantIds.TryRemove(arm, out _); // before its overrides: a decision finding them still there adds neither
                _armOverrides.TryRemove(arm, out _);
            }
        }
    }

    /// <summary>One cell of an hour (or, with <paramref name="Day"/>, a day) as a checkpoint holds it.</summary>
    internal readonly record struct CellState(bool Day, long Period, string Segment, long Version, string Channel, VariantKind? Variant, long[] Counts, double Revenue, string Arm = "");

    /// <summary>The distinct users of one segment, version, channel and day as a checkpoint holds them.</summary>
    internal readonly record struct ReachState(string Segment, long Version, string Channel, long Day, byte[] Registers, string Arm = "");

    /// <summary>Every cell kept, for a checkpoint.</summary>
    internal IEnumerable<CellState> Cells()
    {
        foreach (var (ring, day) in new[] { (_hours, false), (_days, true) })
        {
            foreach (var bucket in ring)
            {
                if (bucket is null)
                {
                    continue;
                }

                foreach (var (key, counters) in bucket.Cells)
                {
                    var (counts, revenue) = counters.Read();
                    yield return new CellState(day, bucket.Hour, key.Segment, key.Version, key.Channel, key.Variant, counts, revenue, key.Arm);
                }
            }
        }
    }

    /// <summary>Every reach sketch kept, for a checkpoint.</summary>
    internal IEnumerable<ReachState> ReachSketches() =>
        _reach.Select(r => new ReachState(r.Key.Segment, r.Key.Version, r.Key.Channel, r.Key.Day, r.Value.CopyRegisters(), r.Key.Arm));

    /// <summary>The variant ids each experiment arm served (by kind), for a checkpoint.</summary>
    internal IEnumerable<KeyValuePair<string, string[]>> ArmVariantIds() => _armVariantIds;

    /// <summary>The segments (with their variants) decided into, by id and catalog version, for a checkpoint.</summary>
    internal IEnumerable<(string Segment, long Version, Segment Definition)> SegmentVersions() => _segments.Select(s => (s.Key.Segment, s.Key.Version, s.Value));

    /// <summary>Restores what a checkpoint held (into an empty store, before anything is counted).</summary>
    /// <remarks>Which kinds each restored arm overrides is read from <paramref name="current"/>, the catalog serving now.</remarks>
    internal void Restore(IEnumerable<CellState> cells, IEnumerable<ReachState> reach, IEnumerable<(string Segment, long Version, Segment Definition)> segments, IEnumerable<KeyValuePair<string, string[]>>? armVariantIds = null, CatalogSnapshot? current = null)
    {
        var arms = current is null ? [] : current.Experiments.SelectMany(e => e.Arms).Append(current.HoldoutArm).GroupBy(a => a.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        foreach (var (arm, ids) in armVariantIds ?? [])
        {
            _armVariantIds[arm] = ids;
            if (arms.TryGetValue(arm, out var served))
            {
                _armOverrides[arm] = Overrides(served);
            }
        }

        foreach (var c in cells)
        {
            var ring = c.Day ? _days : _hours;
            ref var slot = ref ring[c.Period % ring.Length];
            if (slot is null || slot.Hour < c.Period)
            {
                slot = new Bucket(c.Period);
            }

            if (slot.Hour == c.Period)
            {
                slot.Cells[new CellKey(c.Segment, c.Version, c.Channel, c.Variant, c.Arm)] = KpiCounters.From(c.Counts, c.Revenue);
            }
        }

        foreach (var r in reach)
        {
            _reach[new ReachKey(r.Segment, r.Version, r.Channel, r.Day, r.Arm)] = ReachSketch.From(r.Registers);
            _newestDay = Math.Max(_newestDay, r.Day);
        }

        foreach (var (segment, version, definition) in segments)
        {
            _segments[(segment, version)] = definition;
        }
    }

    // Which of the five kinds an arm serves its own variant of.
    private static bool[] Overrides(ExperimentArm arm) => [.. Enumerable.Range(0, arm.Variants.Count).Select(k => arm.OverrideAt(k) is not null)];

    // The decisioning holdout's arm as cells key it.
    private static readonly string HoldoutArmKey = Experiment.HoldoutId + ":" + Experiment.HoldoutArmId;

    private readonly record struct CellKey(string Segment, long Version, string Channel, VariantKind? Variant, string Arm);

    private readonly record struct GroupKey(string? Segment, VariantKind? Variant, string? Channel, long? Version, string? Arm);

    private readonly record struct ReachKey(string Segment, long Version, string Channel, long Day, string Arm);

    // One hour's (or one day's) counters; Hour is the period's number (hours or days since 0001-01-01).
    private sealed class Bucket(long period)
    {
        public long Hour { get; } = period;

        public ConcurrentDictionary<CellKey, KpiCounters> Cells { get; } = new();
    }
}
