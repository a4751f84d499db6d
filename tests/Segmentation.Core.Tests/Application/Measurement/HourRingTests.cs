using Segmentation.Core.Application.Measurement;

namespace Segmentation.Core.Tests.Application.Measurement;

/// <summary>The hourly rings of the churn and size histories cover every hour a 90-day range touches.</summary>
public sealed class HourRingTests
{
    [Fact]
    public void Churn_in_the_first_hour_of_a_90_day_range_not_on_whole_hours_is_counted()
    {
        // Regression (review): the rings held 2,160 hours, and a 90-day range not on whole hours touches 2,161, so churn in
        // its first hour was never counted (the KPI hours were mended the same way before).
        var now = new DateTimeOffset(2026, 12, 7, 10, 30, 0, TimeSpan.Zero);
        var start = now.AddDays(-90);
        var churn = new ChurnHistory(["churned"]);
        churn.Moved(["vip"], ["churned"], start.AddMinutes(10));
        churn.Moved(["vip"], ["churned"], now.AddMinutes(-5));

        Assert.Equal(2, churn.Churned("vip", start, now));
    }

    [Fact]
    public void A_checkpoints_ring_of_another_length_keeps_its_hours()
    {
        // Rings saved before they grew come back with each hour in its slot, not dropped.
        var hour = new DateTimeOffset(2026, 12, 7, 10, 0, 0, TimeSpan.Zero).UtcTicks / TimeSpan.TicksPerHour;
        var (values, hours) = (new long[2160], new long[2160]);
        foreach (var h in new[] { hour, hour - 1, hour - 2000 })
        {
            values[(int)(h % 2160)] = h % 7 + 1;
            hours[(int)(h % 2160)] = h + 1;
        }

        var churn = new ChurnHistory(["churned"]);
        churn.Restore([("vip", values, hours)]);

        Assert.Equal(hour % 7 + 1, churn.InHour("vip", hour));
        Assert.Equal((hour - 1) % 7 + 1, churn.InHour("vip", hour - 1));
        Assert.Equal((hour - 2000) % 7 + 1, churn.InHour("vip", hour - 2000));
        Assert.Equal(0, churn.InHour("vip", hour - 3));
        Assert.Null(HourRings.Fit(new long[3], new long[4]));
    }
}
