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

    /// <summary>Conversions per impression.</summary>
    public double ConversionRate => Ratio(Conversions, Impressions);

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
/// threads: counts with interlocked increments, revenue as a double updated by compare-exchange.
/// </summary>
public sealed class KpiCounters
{
    private long _decisions;
    private long _impressions;
    private long _clicks;
    private long _conversions;
    private long _revenueBits;
    private long _dismisses;
    private long _emailSends;
    private long _emailOpens;
    private long _emailClicks;
    private long _emailUnsubscribes;

    /// <summary>Counts one decision served.</summary>
    public void AddDecision() => Interlocked.Increment(ref _decisions);

    /// <summary>Counts one credited outcome (and its value, for a conversion).</summary>
    public void Add(OutcomeType type, double value)
    {
        switch (type)
        {
            case OutcomeType.Impression:
                Interlocked.Increment(ref _impressions);
                break;
            case OutcomeType.Click:
                Interlocked.Increment(ref _clicks);
                break;
            case OutcomeType.Conversion:
                Interlocked.Increment(ref _conversions);
                AddRevenue(value);
                break;
            case OutcomeType.Dismiss:
                Interlocked.Increment(ref _dismisses);
                break;
            case OutcomeType.EmailSend:
                Interlocked.Increment(ref _emailSends);
                break;
            case OutcomeType.EmailOpen:
                Interlocked.Increment(ref _emailOpens);
                break;
            case OutcomeType.EmailClick:
                Interlocked.Increment(ref _emailClicks);
                break;
            case OutcomeType.EmailUnsubscribe:
                Interlocked.Increment(ref _emailUnsubscribes);
                break;
        }
    }

    /// <summary>Adds these counts to <paramref name="sum"/>; without <paramref name="outcomes"/>, only the decisions.</summary>
    public void AddTo(ref KpiSum sum, bool outcomes = true)
    {
        sum.Decisions += Volatile.Read(ref _decisions);
        if (!outcomes)
        {
            return;
        }

        sum.Impressions += Volatile.Read(ref _impressions);
        sum.Clicks += Volatile.Read(ref _clicks);
        sum.Conversions += Volatile.Read(ref _conversions);
        sum.Revenue += BitConverter.Int64BitsToDouble(Volatile.Read(ref _revenueBits));
        sum.Dismisses += Volatile.Read(ref _dismisses);
        sum.EmailSends += Volatile.Read(ref _emailSends);
        sum.EmailOpens += Volatile.Read(ref _emailOpens);
        sum.EmailClicks += Volatile.Read(ref _emailClicks);
        sum.EmailUnsubscribes += Volatile.Read(ref _emailUnsubscribes);
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

/// <summary>A running total of counters, added to in place while a query walks the hours.</summary>
public struct KpiSum
{
    /// <summary>Decisions.</summary>
    public long Decisions { get; set; }

    /// <summary>Impressions.</summary>
    public long Impressions { get; set; }

    /// <summary>Clicks.</summary>
    public long Clicks { get; set; }

    /// <summary>Conversions.</summary>
    public long Conversions { get; set; }

    /// <summary>Revenue.</summary>
    public double Revenue { get; set; }

    /// <summary>Dismissals.</summary>
    public long Dismisses { get; set; }

    /// <summary>Email sends.</summary>
    public long EmailSends { get; set; }

    /// <summary>Email opens.</summary>
    public long EmailOpens { get; set; }

    /// <summary>Email clicks.</summary>
    public long EmailClicks { get; set; }

    /// <summary>Unsubscribes.</summary>
    public long EmailUnsubscribes { get; set; }

    /// <summary>Outcomes of every type.</summary>
    public readonly long Outcomes => Impressions + Clicks + Conversions + Dismisses + EmailSends + EmailOpens + EmailClicks + EmailUnsubscribes;

    /// <summary>Adds <paramref name="other"/>.</summary>
    public void Add(in KpiSum other)
    {
        Decisions += other.Decisions;
        Impressions += other.Impressions;
        Clicks += other.Clicks;
        Conversions += other.Conversions;
        Revenue += other.Revenue;
        Dismisses += other.Dismisses;
        EmailSends += other.EmailSends;
        EmailOpens += other.EmailOpens;
        EmailClicks += other.EmailClicks;
        EmailUnsubscribes += other.EmailUnsubscribes;
    }

    /// <summary>The total as <see cref="Kpis"/> with <paramref name="reach"/>.</summary>
    public readonly Kpis ToKpis(long reach) => new()
    {
        Decisions = Decisions,
        Reach = reach,
        Impressions = Impressions,
        Clicks = Clicks,
        Conversions = Conversions,
        Revenue = Revenue,
        Dismisses = Dismisses,
        EmailSends = EmailSends,
        EmailOpens = EmailOpens,
        EmailClicks = EmailClicks,
        EmailUnsubscribes = EmailUnsubscribes,
    };
}
