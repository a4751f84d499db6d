using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Measurement;

/// <summary>Churn per segment: members who move to a churn state, over the members at the range's start.</summary>
public class ChurnTests
{
    private static TestWorld World() => new(TestCatalogs.Source(
        TestCatalogs.Segment("regular", "behavioural", "{ field: traits.tier, eq: regular }"),
        TestCatalogs.Segment("churned", "lifecycle", "{ field: traits.tier, eq: lapsed }")));

    // Ten regular customers made five minutes into the current hour; returns the hour's start.
    private static DateTimeOffset TenRegularsAtTheHour(TestWorld w)
    {
        var hour = new DateTimeOffset(w.Clock.Now.UtcTicks / TimeSpan.TicksPerHour * TimeSpan.TicksPerHour, TimeSpan.Zero);
        w.Clock.Now = hour.AddMinutes(5);
        for (var i = 0; i < 10; i++)
        {
            Status(w, $"u{i}", "regular");
        }

        return hour;
    }

    private static void Status(TestWorld w, string user, string status) =>
        w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["tier"] = status }, "crm", AttributeLayer.ZeroParty, null);

    [Fact]
    public void Members_who_enter_a_churn_state_count_as_churned_from_the_segments_they_left()
    {
        using var w = World();
        var start = w.Clock.Now;
        for (var i = 0; i < 10; i++)
        {
            Status(w, $"u{i}", "regular");
        }

        w.Get<SegmentSizeHistory>().Sample(); // 10 members at the start

        w.Clock.Now = start.AddHours(2);
        Status(w, "u0", "lapsed");
        Status(w, "u1", "lapsed");
        Status(w, "u2", "lapsed");
        Status(w, "u3", "gone-quiet"); // left, but to no churn state: not churn
        Status(w, "u0", "lapsed"); // already churned: nothing new
        Status(w, "new", "lapsed"); // never a member of anything: nothing to churn from

        var report = w.Get<SegmentKpis>().Query(new KpiQuery(start, start.AddHours(5), [KpiDimension.Segment], Series: true));

        var regular = Assert.Single(report.Rows, r => r.SegmentId == "regular");
        Assert.Equal((3L, 10L), (regular.Kpis.Churned, regular.Kpis.MembersAtStart));
        Assert.Equal(0.3, regular.Kpis.ChurnRate, 9);
        var hour = Assert.Single(regular.Series, p => p.Kpis.Churned > 0);
        Assert.Equal((start.AddHours(2).UtcTicks / TimeSpan.TicksPerHour) * TimeSpan.TicksPerHour, hour.Hour.UtcTicks);
        Assert.Equal(3, hour.Kpis.Churned);

        // Regression (review): an hour without a size point gave 0 members at its start, so a churn rate of 0 beside 3
        // churned; as the range does, it takes the members now (6) plus those who churned since its start (3).
        Assert.Equal((9L, 3.0 / 9), (hour.Kpis.MembersAtStart, hour.Kpis.ChurnRate));
        Assert.DoesNotContain(report.Rows, r => r.SegmentId == "churned" && r.Kpis.Churned > 0);
    }

    [Fact]
    public void Churn_is_left_out_of_rows_grouped_by_channel_and_of_ranges_before_it()
    {
        using var w = World();
        var start = w.Clock.Now;
        Status(w, "a", "regular");
        w.Decide("a");
        w.Clock.Now = start.AddHours(3);
        Status(w, "a", "lapsed");
        var kpis = w.Get<SegmentKpis>();

        Assert.All(kpis.Query(new KpiQuery(start, start.AddHours(5), [KpiDimension.Channel])).Rows, r => Assert.Equal(0, r.Kpis.Churned));
        Assert.Equal(1, kpis.Query(new KpiQuery(start, start.AddHours(5), [KpiDimension.Segment])).Rows.Single(r => r.SegmentId == "regular").Kpis.Churned);
        Assert.Equal(0, kpis.Query(new KpiQuery(start, start.AddHours(2), [KpiDimension.Segment])).Rows.Single(r => r.SegmentId == "regular").Kpis.Churned);
        var row = kpis.Query(new KpiQuery(start, start.AddHours(5), [KpiDimension.Segment])).Rows.Single(r => r.SegmentId == "regular");
        Assert.Equal((1L, 1.0), (row.Kpis.MembersAtStart, row.Kpis.ChurnRate)); // no size history: the members now (none) plus those who churned
    }

    [Fact]
    public void Members_at_start_count_those_who_churned_in_the_first_sampled_hour_and_series_hours_start_from_the_hour_before()
    {
        using var w = World();
        var start = TenRegularsAtTheHour(w);

        w.Clock.Now = start.AddMinutes(15);
        for (var i = 0; i < 5; i++)
        {
            Status(w, $"u{i}", "lapsed");
        }

        w.Clock.Now = start.AddMinutes(59);
        w.Get<SegmentSizeHistory>().Sample(); // the hour's point: 5, after its churn
        w.Clock.Now = start.AddHours(1).AddMinutes(30);
        Status(w, "u5", "lapsed");
        w.Get<SegmentSizeHistory>().Sample(); // 4

        var report = w.Get<SegmentKpis>().Query(new KpiQuery(start, start.AddHours(3), [KpiDimension.Segment], Series: true));

        var regular = Assert.Single(report.Rows, r => r.SegmentId == "regular");
        Assert.Equal((6L, 10L, 0.6), (regular.Kpis.Churned, regular.Kpis.MembersAtStart, regular.Kpis.ChurnRate));
        Assert.Equal([(5L, 10L), (1L, 5L)], regular.Series.Where(p => p.Kpis.Churned > 0).Select(p => (p.Kpis.Churned, p.Kpis.MembersAtStart)));
    }

    [Fact]
    public void A_user_who_lapses_is_not_churned_from_a_segment_they_stay_in()
    {
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("regular", "behavioural", "{ field: traits.tier, eq: regular }"),
            TestCatalogs.Segment("scored", "engagement", "{ field: traits.score, gte: 1 }"),
            TestCatalogs.Segment("churned", "lifecycle", "{ field: traits.tier, eq: lapsed }")));
        var start = w.Clock.Now;
        w.Ingestion.SetTraits("a", new Dictionary<string, object?> { ["tier"] = "regular", ["score"] = 5.0 }, "crm", AttributeLayer.ZeroParty, null);
        w.Get<SegmentSizeHistory>().Sample();
        w.Clock.Now = start.AddHours(1);
        Status(w, "a", "lapsed");

        var rows = w.Get<SegmentKpis>().Query(new KpiQuery(start, start.AddHours(3), [KpiDimension.Segment])).Rows;

        Assert.Equal(1, rows.Single(r => r.SegmentId == "regular").Kpis.Churned);
        Assert.DoesNotContain(rows, r => r.SegmentId == "scored" && r.Kpis.Churned > 0);
    }

    [Fact]
    public void Members_at_start_never_come_from_a_point_before_a_gap_in_sampling()
    {
        // Regression: the last point before the range was used however old: after days without samples (a server down,
        // an index rebuilt) a stale count three days back stood for the start.
        using var w = World();
        var t0 = TenRegularsAtTheHour(w);

        w.Get<SegmentSizeHistory>().Sample(); // 10, three days before the range
        for (var i = 10; i < 15; i++)
        {
            Status(w, $"u{i}", "regular"); // joined while nothing sampled
        }

        var start = t0.AddDays(3);
        w.Clock.Now = start.AddMinutes(10);
        for (var i = 0; i < 4; i++)
        {
            Status(w, $"u{i}", "lapsed");
        }

        w.Clock.Now = start.AddMinutes(59);
        w.Get<SegmentSizeHistory>().Sample(); // 11, after the hour's churn

        var regular = w.Get<SegmentKpis>().Query(new KpiQuery(start, start.AddHours(2), [KpiDimension.Segment])).Rows.Single(r => r.SegmentId == "regular");

        Assert.Equal((4L, 15L), (regular.Kpis.Churned, regular.Kpis.MembersAtStart));
    }

    [Fact]
    public void A_removed_segments_churn_is_dropped_once_its_newest_count_leaves_the_kept_window()
    {
        using var w = World();
        Status(w, "a", "regular");
        w.Get<SegmentSizeHistory>().Sample();
        Status(w, "a", "lapsed"); // churned from regular
        var churn = w.Get<ChurnHistory>();
        Assert.Contains(churn.Rings(), r => r.Segment == "regular");
        w.Catalogs.Load(TestCatalogs.Source(TestCatalogs.Segment("churned", "lifecycle", "{ field: traits.tier, eq: lapsed }"))); // regular removed

        w.Clock.Now = w.Clock.Now.AddDays(KpiStore.RetentionDays + 1);
        w.Get<SegmentSizeHistory>().Sample();

        Assert.DoesNotContain(churn.Rings(), r => r.Segment == "regular");
    }
}
