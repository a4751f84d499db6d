namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// Hourly rings of counts kept beside the hour each slot holds (plus one; 0 for a slot never used): the size and churn
/// histories keep one per segment, a slot per hour of the days measurement keeps.
/// </summary>
internal static class HourRings
{
    /// <summary>
    /// Slots in a ring: every hour of the days the KPI day totals keep (a 90-day range not on whole hours touches 2,161
    /// hours, and the size before its start is the hour before that).
    /// </summary>
    public const int Hours = (KpiStore.RetentionDays + 1) * 24;

    /// <summary>
    /// A checkpoint's ring as a ring of <see cref="Hours"/> slots: as it is when it has them; otherwise each hour it
    /// holds moved to its slot (a checkpoint written when rings were shorter keeps its history).
    /// </summary>
    public static (long[] Values, long[] Hours)? Fit(long[] values, long[] hours)
    {
        if (values.Length != hours.Length)
        {
            return null;
        }

        if (values.Length == Hours)
        {
            return (values, hours);
        }

        var (fitted, slots) = (new long[Hours], new long[Hours]);
        for (var i = 0; i < hours.Length; i++)
        {
            var slot = (int)(Math.Max(0, hours[i] - 1) % Hours);
            if (hours[i] > slots[slot]) // the newer of two hours a slot would hold
            {
                (fitted[slot], slots[slot]) = (values[i], hours[i]);
            }
        }

        return (fitted, slots);
    }
}
