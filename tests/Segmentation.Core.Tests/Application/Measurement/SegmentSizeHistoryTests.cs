using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Measurement;

public class SegmentSizeHistoryTests
{
    [Fact]
    public void Each_hour_keeps_the_last_member_count_of_every_segment()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")));
        var history = new SegmentSizeHistory(w.Memberships, w.Catalogs, w.Clock);
        var start = w.Clock.Now;
        void Vip(string user, bool vip) => w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["vip"] = vip }, "crm", AttributeLayer.ZeroParty, null);

        Vip("a", true);
        Assert.True(history.Sample());
        Vip("b", true);
        Assert.True(history.Sample()); // the same hour: the later count stands
        w.Clock.Now = start.AddHours(2);
        Vip("a", false);
        Vip("b", false);
        history.Sample();
        w.Clock.Now = start.AddHours(3);
        Vip("c", true);
        history.Sample();

        var points = history.Points("vip", start.AddHours(-1), w.Clock.Now.AddHours(1));

        Assert.Equal([2L, 0L, 1L], points.Select(p => p.Members));
        Assert.Equal([0, 2, 3], points.Select(p => (int)(p.Hour - new DateTimeOffset(start.UtcTicks - (start.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero)).TotalHours));
        Assert.Empty(history.Points("vip", start.AddDays(-2), start.AddDays(-1)));
        Assert.Empty(history.Points("unknown", start, w.Clock.Now));
    }

    [Fact]
    public void A_range_ending_far_ahead_still_holds_the_kept_hours()
    {
        // The 90 days kept end now, not at the range's end: a range to 2100 used to look only at the 90 days before 2100.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")));
        var history = new SegmentSizeHistory(w.Memberships, w.Catalogs, w.Clock);
        w.Ingestion.SetTraits("a", new Dictionary<string, object?> { ["vip"] = true }, "crm", AttributeLayer.ZeroParty, null);
        history.Sample();
        w.Clock.Now = w.Clock.Now.AddHours(5);
        history.Sample();

        var wide = history.Points("vip", new DateTimeOffset(1800, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2199, 12, 31, 0, 0, 0, TimeSpan.Zero));
        var recent = history.Points("vip", w.Clock.Now.AddDays(-1), w.Clock.Now.AddHours(1));

        Assert.Equal(2, wide.Count);
        Assert.Equal(recent, wide);
        Assert.Equal([1L, 1L], wide.Select(p => p.Members));
    }

    [Fact]
    public void No_sample_is_taken_while_the_membership_index_is_rebuilt()
    {
        using var w = new TestWorld();
        var history = new SegmentSizeHistory(w.Memberships, w.Catalogs, w.Clock);
        w.Memberships.BeginRebuild(10);

        Assert.False(history.Sample());
        Assert.Empty(history.Segments);
    }
}
