namespace Segmentation.Core.Outcomes;

/// <summary>
/// Counts of one group over a time range: decisions served, distinct users decided, and the outcomes credited
/// to those decisions. The ratios are defined here once: a ratio with a zero denominator is 0.
/// </summary>
public sealed record Kpis
{
    /// <summary>Decisions served (computed or from the cache) whose winner is the group's segment.</summary>
    public long Decisions { get; init; }

    /// <summary>Distinct users decided (estimated, see <see cref="ReachSketch"/>).</summary>
    public long Reach { get; init; }

    /// <summary>Impressions credited.</summary>
    public long Impressions { get; init; }

    /// <summary>Clicks credited.</summary>
    public long Clicks { get; init; }

    /// <summary>Conversions credited (at most one per decision and order).</summary>
    public long Conversions { get; init; }

    /// <summary>Sum of the credited conversions' values.</summary>
    public double Revenue { get; init; }

    /// <summary>Dismissals credited.</summary>
    public long Dismisses { get; init; }

    /// <summary>Email sends credited.</summary>
    public long EmailSends { get; init; }

    /// <summary>Email opens credited.</summary>
    public long EmailOpens { get; init; }

    /// <summary>Email clicks credited.</summary>
    public long EmailClicks { get; init; }

    /// <summary>Unsubscribes credited.</summary>
    public long EmailUnsubscribes { get; init; }

    /// <summary>
    /// Members of the segment who moved to a churn state (lapsed or lost) in the range; counted for rows grouped by
    /// segment alone (0 otherwise: churn has no channel, variant or catalog version).
    /// </summary>
    public long Churned { get; init; }

    /// <summary>Members of the segment at the start of the range (the churn rate's denominator), for rows grouped by segment alone.</summary>
    public long MembersAtStart { get; init; }

    /// <summary>Churned per member at the start of the range.</summary>
    public double ChurnRate => Ratio(Churned, MembersAtStart);

    /// <summary>Clicks per impression.</summary>
    public double ClickThroughRate => Ratio(Clicks, Impressions);

    /// <summary>
    /// Exposures credited: impressions (a variant shown on a page or in an app) and email sends (an email's exposure;
    /// its opens are not all reported, so the send is what an email decision is known to have reached).
    /// </summary>
    public long Exposures => Impressions + EmailSends;

    /// <summary>Conversions per exposure (impression or email send), so email rows and rows of several channels have a rate.</summary>
    public double ConversionRate => Ratio(Conversions, Exposures);

    /// <summary>Revenue per distinct user decided.</summary>
    public double RevenuePerUser => Reach == 0 ? 0 : Revenue / Reach;

    /// <summary>Email opens per send.</summary>
    public double OpenRate => Ratio(EmailOpens, EmailSends);

    /// <summary>Unsubscribes per send.</summary>
    public double UnsubscribeRate => Ratio(EmailUnsubscribes, EmailSends);

    private static double Ratio(long part, long whole) => whole == 0 ? 0 : (double)part / whole;
}

/// <summary>
/// Mutable counters of one group (one hour, one segment, version, channel and variant), added to from many
/// threads: counts with interlocked increments, revenue as a double updated by compare-exchange. The counts
/// are one array: decisions first, then one count per <see cref="OutcomeType"/> in its order.
/// </summary>
public sealed class KpiCounters
{
    /// <summary>Counts kept: decisions, then one per outcome type.</summary>
    internal const int Count = 1 + 8;

    private readonly long[] _counts = new long[Count];
    private long _revenueBits;

    /// <summary>Counts one decision served.</summary>
    public void AddDecision() => Interlocked.Increment(ref _counts[0]);

    /// <summary>Counts one credited outcome (and its value, for a conversion).</summary>
    public void Add(OutcomeType type, double value)
    {
        if ((uint)type >= Count - 1)
        {
            return;
        }

        Interlocked.Increment(ref _counts[1 + (int)type]);
        if (type == OutcomeType.Conversion)
        {
            AddRevenue(value);
        }
    }

    /// <summary>Adds these counts to <paramref name="sum"/>; without <paramref name="outcomes"/>, only the decisions.</summary>
    public void AddTo(ref KpiSum sum, bool outcomes = true)
    {
        sum[0] += Volatile.Read(ref _counts[0]);
        if (!outcomes)
        {
            return;
        }

        for (var i = 1; i < Count; i++)
        {
            sum[i] += Volatile.Read(ref _counts[i]);
        }

        sum.Revenue += BitConverter.Int64BitsToDouble(Volatile.Read(ref _revenueBits));
    }

    /// <summary>The counts (decisions, then per outcome type) and the revenue, for a checkpoint.</summary>
    internal (long[] Counts, double Revenue) Read()
    {
        var counts = new long[Count];
        for (var i = 0; i < Count; i++)
        {
            counts[i] = Volatile.Read(ref _counts[i]);
        }

        return (counts, BitConverter.Int64BitsToDouble(Volatile.Read(ref _revenueBits)));
    }

    /// <summary>Counters restored from a checkpoint.</summary>
    internal static KpiCounters From(ReadOnlySpan<long> counts, double revenue)
    {
        var c = new KpiCounters { _revenueBits = BitConverter.DoubleToInt64Bits(revenue) };
        counts[..Math.Min(Count, counts.Length)].CopyTo(c._counts);
        return c;
    }

    private void AddRevenue(double value)
    {
        var seen = Volatile.Read(ref _revenueBits);
        while (true)
        {
            var next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(seen) + value);
            var found = Interlocked.CompareExchange(ref _revenueBits, next, seen);
            if (found == seen)
            {
                return;
            }

            seen = found;
        }
    }
}

/// <summary>Counts of a <see cref="KpiSum"/>: decisions, then one per outcome type.</summary>
[System.Runtime.CompilerServices.InlineArray(KpiCounters.Count)]
public struct KpiCounts
{
    private long _first;
}

/// <summary>A running total of counters, added to in place while a query walks the hours.</summary>
public struct KpiSum
{
    private KpiCounts _counts;

    /// <summary>Count <paramref name="index"/>: 0 decisions, 1 + an <see cref="OutcomeType"/> that type's outcomes.</summary>
    public long this[int index]
    {
        readonly get => _counts[index];
        set => _counts[index] = value;
    }

    /// <summary>Decisions.</summary>
    public long Decisions { readonly get => _counts[0]; set => _counts[0] = value; }

    /// <summary>Revenue.</summary>
    public double Revenue { get; set; }

    /// <summary>Outcomes of every type.</summary>
    public readonly long Outcomes
    {
        get
        {
            long n = 0;
            for (var i = 1; i < KpiCounters.Count; i++)
            {
                n += _counts[i];
            }

            return n;
        }
    }

    /// <summary>Outcomes of <paramref name="type"/>.</summary>
    public readonly long Of(OutcomeType type) => _counts[1 + (int)type];

    /// <summary>Adds <paramref name="other"/>.</summary>
    public void Add(in KpiSum other)
    {
        for (var i = 0; i < KpiCounters.Count; i++)
        {
            _counts[i] += other._counts[i];
        }

        Revenue += other.Revenue;
    }

    /// <summary>The total as <see cref="Kpis"/> with <paramref name="reach"/>.</summary>
    public readonly Kpis ToKpis(long reach) => new()
    {
        Decisions = Decisions,
        Reach = reach,
        Impressions = Of(OutcomeType.Impression),
        Clicks = Of(OutcomeType.Click),
        Conversions = Of(OutcomeType.Conversion),
        Revenue = Revenue,
        Dismisses = Of(OutcomeType.Dismiss),
        EmailSends = Of(OutcomeType.EmailSend),
        EmailOpens = Of(OutcomeType.EmailOpen),
        EmailClicks = Of(OutcomeType.EmailClick),
        EmailUnsubscribes = Of(OutcomeType.EmailUnsubscribe),
    };
}
