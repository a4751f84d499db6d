using Segmentation.Core.Events;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Decisions;

/// <summary>When to send one user an email, and why.</summary>
/// <param name="LocalHour">The best hour of the day in the user's time zone (0–23).</param>
/// <param name="SendAtTicks">The next start of that hour (UTC ticks) at or after the earliest allowed time.</param>
/// <param name="TimeZone">The user's time zone (IANA id).</param>
/// <param name="Observations">The user's own opens and clicks behind it, decayed by age (0 when none).</param>
/// <param name="Share">The estimated share of the user's engagement that falls in that hour (0–1).</param>
/// <param name="Basis"><c>profile</c> when the user's own history outweighs the population prior, else <c>population</c>.</param>
public sealed record SendTimeAdvice(int LocalHour, long SendAtTicks, string TimeZone, double Observations, double Share, string Basis);

/// <summary>
/// The population's engagement by local hour of the day: the prior every user's estimate starts from. Each user with
/// email engagement contributes their own shares (so heavy readers do not dominate); with fewer than
/// <see cref="MinimumUsers"/> such users the documented default curve is blended in.
/// </summary>
public sealed class SendTimePrior
{
    /// <summary>Users with engagement needed before the population's own curve is used alone.</summary>
    public const int MinimumUsers = 50;

    // A working-day curve peaking at 10:00, for a population with no email engagement yet: most consumer email is
    // opened between 08:00 and 12:00 and again early in the evening.
    private static readonly double[] DefaultCurve =
    [
        0.4, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 1.5, 3.0, 4.2, 5.0, 4.4,
        3.6, 3.2, 2.8, 2.6, 2.6, 2.8, 3.0, 3.3, 3.0, 2.2, 1.3, 0.8,
    ];

    /// <summary>The default curve alone (no population data).</summary>
    public static readonly SendTimePrior Default = new(new double[24], 0);

    /// <summary>A prior from per-hour sums of users' shares over <paramref name="users"/> users.</summary>
    public SendTimePrior(IReadOnlyList<double> sums, int users)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(sums.Count, 24);
        Users = users;
        var shares = new double[24];
        var defaultTotal = DefaultCurve.Sum();
        var weight = Math.Max(0, MinimumUsers - users); // the default counts as this many users until the population has enough
        var total = 0.0;
        for (var h = 0; h < 24; h++)
        {
            shares[h] = sums[h] + (weight * DefaultCurve[h] / defaultTotal);
            total += shares[h];
        }

        for (var h = 0; h < 24; h++)
        {
            shares[h] /= total;
        }

        Shares = shares;
    }

    /// <summary>The share of engagement in each local hour (sums to 1).</summary>
    public IReadOnlyList<double> Shares { get; }

    /// <summary>Users whose engagement built it.</summary>
    public int Users { get; }
}

/// <summary>
/// Send-time optimisation: each user's best hour from their own email opens and clicks, with the population as a
/// prior. The method, in full: every open and click of the last 365 days counts at its local hour in the user's time
/// zone (so daylight saving never splits a habit across two hours), weighted by recency with a 60-day half-life;
/// the 24 counts are smoothed with their neighbours (¼, ½, ¼, around the clock); the population's shares are added
/// as <see cref="PriorStrength"/> pseudo-observations; the best hour is the largest. A user with no history gets the
/// population's best hour; one with a few opens moves toward their own; the basis says which dominated.
/// </summary>
public static class SendTimeEstimator
{
    /// <summary>How many observations the population prior is worth.</summary>
    public const double PriorStrength = 4;

    /// <summary>Half-life of an observation's weight.</summary>
    public static readonly TimeSpan HalfLife = TimeSpan.FromDays(60);

    /// <summary>Oldest engagement considered.</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromDays(365);

    private static readonly string[] Engagement = [EventTypes.EmailOpen, EventTypes.EmailClick];

    /// <summary>
    /// The user's decayed engagement by local hour into <paramref name="counts"/> (24 entries, overwritten); returns the total.
    /// </summary>
    public static double Histogram(Profile? profile, TimeZoneInfo zone, long nowTicks, Span<double> counts)
    {
        ArgumentNullException.ThrowIfNull(zone);
        counts[..24].Clear();
        if (profile is null)
        {
            return 0;
        }

        var total = 0.0;
        var horizon = nowTicks - Horizon.Ticks;
        foreach (var type in Engagement)
        {
            foreach (var ticks in profile.Series(type).Ticks)
            {
                if (ticks < horizon || ticks > nowTicks)
                {
                    continue;
                }

                var local = ticks + zone.GetUtcOffset(new DateTime(ticks, DateTimeKind.Utc)).Ticks; // each at its own date's offset
                var hour = (int)(local % TimeSpan.TicksPerDay / TimeSpan.TicksPerHour);
                var weight = Math.Pow(0.5, (nowTicks - ticks) / (double)HalfLife.Ticks);
                counts[hour] += weight;
                total += weight;
            }
        }

        return total;
    }

    /// <summary>
    /// The advice for one user: the best local hour outside <paramref name="quiet"/> hours and its next start at or
    /// after <paramref name="earliestTicks"/> (now, or when the contact policy next allows contact).
    /// </summary>
    public static SendTimeAdvice Estimate(Profile? profile, TimeZoneInfo zone, SendTimePrior prior, long nowTicks, long earliestTicks, Catalog.QuietHours? quiet = null)
    {
        ArgumentNullException.ThrowIfNull(prior);
        Span<double> counts = stackalloc double[24];
        var observed = Histogram(profile, zone, nowTicks, counts);
        Span<double> posterior = stackalloc double[24];
        var total = 0.0;
        var best = -1;
        for (var h = 0; h < 24; h++)
        {
            var smoothed = (0.25 * counts[(h + 23) % 24]) + (0.5 * counts[h]) + (0.25 * counts[(h + 1) % 24]);
            posterior[h] = smoothed + (PriorStrength * prior.Shares[h]);
            total += posterior[h];
            if ((quiet is null || !quiet.Contains(h * 60)) && (best < 0 || posterior[h] > posterior[best]))
            {
                best = h; // never an hour that starts inside the channel's quiet hours
            }
        }

        best = Math.Max(best, 0);

        var from = Math.Max(nowTicks, earliestTicks);
        var offset = ContactEvaluation.ZoneClock.OffsetAt(zone, from);
        var sendAt = (from + offset) % TimeSpan.TicksPerDay == best * TimeSpan.TicksPerHour
            ? from // already at the start of the hour
            : ContactEvaluation.ZoneClock.NextLocal(zone, from, offset, best * 60);
        return new SendTimeAdvice(best, sendAt, zone.Id, Math.Round(observed, 3), posterior[best] / total, observed >= PriorStrength ? "profile" : "population");
    }

    /// <summary>A user's shares by local hour (their histogram normalised), added to <paramref name="sums"/>; false when the user has no engagement.</summary>
    public static bool AddShares(Profile profile, TimeZoneInfo zone, long nowTicks, double[] sums)
    {
        ArgumentNullException.ThrowIfNull(sums);
        Span<double> counts = stackalloc double[24];
        var total = Histogram(profile, zone, nowTicks, counts);
        if (total <= 0)
        {
            return false;
        }

        for (var h = 0; h < 24; h++)
        {
            sums[h] += counts[h] / total;
        }

        return true;
    }
}
