using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.Measurement;

/// <summary>One band of the freshness distribution: profiles whose last event is younger than <see cref="UpTo"/> (and at least as old as the band before's bound).</summary>
/// <param name="Label">The band in words ("under 1 hour", "1-7 days", "no events").</param>
/// <param name="UpTo">Upper bound of the band; null for the last band and for profiles without events.</param>
/// <param name="Profiles">Profiles in the band.</param>
public sealed record FreshnessBand(string Label, TimeSpan? UpTo, long Profiles);

/// <summary>How usable the data behind decisions is, measured now.</summary>
/// <param name="At">When it was measured.</param>
/// <param name="Events">Events received since the service started: accepted, duplicates, rejections by reason, completeness of context fields.</param>
/// <param name="Profiles">Profiles in the store.</param>
/// <param name="DeclaredShare">Share of profiles with at least one declared (zero-party) trait.</param>
/// <param name="Freshness">Profiles by the age of their last event, youngest band first, then those with no event.</param>
/// <param name="MedianAge">Median age of the profiles' last event (profiles with events), or null when none has any.</param>
/// <param name="P90Age">90th percentile of that age.</param>
/// <param name="Decisions">Decisions served in [<paramref name="Start"/>, <paramref name="End"/>).</param>
/// <param name="FallbackRate">Share of those decisions won by the fallback segment.</param>
/// <param name="UnsegmentedShare">Share of profiles matching no segment but the fallback (null while the membership index is rebuilt).</param>
/// <param name="Start">Start of the decision range the decisions were counted over (the hour the range asked for starts in).</param>
/// <param name="End">End of that range (the end of the hour the range asked for ends in).</param>
public sealed record DataQualityReport(
    DateTimeOffset At,
    EventQualityCounts Events,
    long Profiles,
    double DeclaredShare,
    IReadOnlyList<FreshnessBand> Freshness,
    TimeSpan? MedianAge,
    TimeSpan? P90Age,
    long Decisions,
    double FallbackRate,
    double? UnsegmentedShare,
    DateTimeOffset Start,
    DateTimeOffset End);

/// <summary>
/// Data quality, measured continuously: the events' validity, duplicates and completeness as they arrive
/// (<see cref="EventQuality"/>), and — computed from the store when asked, one pass over the profiles — the share of
/// profiles with declared data, how fresh each profile's signal is, how many decisions fell back to the fallback
/// segment, and how many profiles match no segment but the fallback.
/// </summary>
public sealed class DataQuality(ProfileIngestion ingestion, IProfileStore profiles, MembershipIndex memberships, CatalogProvider catalogs, DecisionMeasurement measurement, TimeProvider time)
{
    /// <summary>The freshness bands' upper bounds.</summary>
    public static readonly IReadOnlyList<(string Label, TimeSpan UpTo)> Bands =
    [
        ("under 1 hour", TimeSpan.FromHours(1)),
        ("1 hour - 1 day", TimeSpan.FromDays(1)),
        ("1-7 days", TimeSpan.FromDays(7)),
        ("7-30 days", TimeSpan.FromDays(30)),
        ("30-90 days", TimeSpan.FromDays(90)),
        ("90 days - 1 year", TimeSpan.FromDays(365)),
    ];

    /// <summary>
    /// Measures now; decisions are counted over [<paramref name="start"/>, <paramref name="end"/>). Throws
    /// <see cref="Validation.ValidationException"/> when the range is empty or longer than the KPIs kept.
    /// </summary>
    public DataQualityReport Measure(DateTimeOffset start, DateTimeOffset end, CancellationToken cancellation = default)
    {
        var range = new Validation.ViolationList();
        KpiStore.CheckRange(range, start, end); // before the pass over every profile
        range.ThrowIfAny();

        var now = time.GetUtcNow();
        var fallback = catalogs.Current.Fallback.Id;
        var indexed = memberships.IsComplete;
        var bands = new long[Bands.Count + 2]; // the bands, older than the last, no events
        var ages = new List<long>(profiles.Count);
        long count = 0, declared = 0, unsegmented = 0;
        foreach (var p in profiles.Snapshot())
        {
            if ((++count & 4095) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            if (p.Attributes.Values.Any(static a => a.Layer == AttributeLayer.ZeroParty))
            {
                declared++;
            }

            if (p.LastSeenTicks <= 0)
            {
                bands[^1]++;
            }
            else
            {
                var age = Math.Max(0, now.UtcTicks - p.LastSeenTicks);
                ages.Add(age);
                bands[BandOf(age)]++;
            }

            if (indexed && !memberships.SegmentsOf(p.UserId).Any(s => !string.Equals(s, fallback, StringComparison.Ordinal)))
            {
                unsegmented++;
            }
        }

        ages.Sort();
        var freshness = new List<FreshnessBand>(bands.Length);
        for (var i = 0; i < Bands.Count; i++)
        {
            freshness.Add(new FreshnessBand(Bands[i].Label, Bands[i].UpTo, bands[i]));
        }

        freshness.Add(new FreshnessBand("over 1 year", null, bands[Bands.Count]));
        freshness.Add(new FreshnessBand("no events", null, bands[^1]));

        measurement.Drain();
        var decisions = measurement.Kpis.Query(new KpiQuery(start, end, []));
        return new DataQualityReport(
            now,
            ingestion.Events.Quality.Read(),
            count,
            count == 0 ? 0 : (double)declared / count,
            freshness,
            Percentile(ages, 0.5),
            Percentile(ages, 0.9),
            decisions.Total.Decisions,
            decisions.FallbackRate,
            indexed ? (count == 0 ? 0 : (double)unsegmented / count) : null,
            decisions.Start, // the range the decisions were counted over: whole hours around the one asked for
            decisions.End);
    }

    private static int BandOf(long ageTicks)
    {
        for (var i = 0; i < Bands.Count; i++)
        {
            if (ageTicks < Bands[i].UpTo.Ticks)
            {
                return i;
            }
        }

        return Bands.Count;
    }

    // Nearest-rank percentile of sorted ages.
    private static TimeSpan? Percentile(List<long> sorted, double q) =>
        sorted.Count == 0 ? null : TimeSpan.FromTicks(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)]);
}
