using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Measurement;

/// <summary>Segment size histories a page at a time: a large catalog's answer stays under a client's message limit.</summary>
public class SegmentSizePagingTests
{
    private static string[] Segments(int count) =>
        [.. Enumerable.Range(0, count).Select(i => TestCatalogs.Segment($"s{i:D3}", "value", $"{{ field: traits.score, gte: {i}.0 }}"))];

    [Fact]
    public void A_catalog_of_over_200_segments_comes_in_three_pages_of_its_priority_order()
    {
        using var w = new TestWorld(TestCatalogs.Source(Segments(250)));
        var history = w.Get<SegmentSizeHistory>();
        history.Sample();
        var (start, end) = (w.Clock.Now.AddDays(-1), w.Clock.Now.AddHours(1));

        var pages = new List<SizePage>();
        var token = "";
        do
        {
            pages.Add(history.Page(start, end, null, 0, token));
            token = pages[^1].NextPageToken;
        }
        while (token.Length > 0);

        Assert.Equal([100, 100, w.Catalogs.Current.Segments.Count - 200], pages.Select(p => p.Segments.Count)); // and the fallback
        Assert.Equal(w.Catalogs.Current.Segments.Select(s => s.Id), pages.SelectMany(p => p.Segments).Select(s => s.SegmentId));
        Assert.All(pages.SelectMany(p => p.Segments), s => Assert.Single(s.Points));
        Assert.Equal("page_size", Assert.Throws<ValidationException>(() => history.Page(start, end, null, 101, "")).Violations[0].Field);
        Assert.Equal("page_token", Assert.Throws<ValidationException>(() => history.Page(start, end, null, 0, "gone")).Violations[0].Field);

        // Regression (review): the contract says page_size is ignored with segment_id; it was refused there too.
        Assert.Equal("s007", Assert.Single(history.Page(start, end, "s007", 500, null).Segments).SegmentId);
    }

    [Fact]
    public void A_publish_between_two_pages_makes_the_next_token_refused_instead_of_skipping_segments()
    {
        using var w = new TestWorld(TestCatalogs.Source(Segments(150)));
        var history = w.Get<SegmentSizeHistory>();
        var (start, end) = (w.Clock.Now.AddDays(-1), w.Clock.Now.AddHours(1));
        var first = history.Page(start, end, null, 0, null);
        w.Catalogs.Load(TestCatalogs.Source([TestCatalogs.Segment("inserted", "intent", "{ field: traits.score, gte: 1.0 }"), .. Segments(150)])); // one more, first in priority

        var refused = Assert.Throws<ValidationException>(() => history.Page(start, end, null, 0, first.NextPageToken));

        Assert.Equal("page_token", refused.Violations[0].Field);
        Assert.Contains("the catalog changed since the previous page", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_segment_a_later_catalog_removed_keeps_its_history_readable_by_id()
    {
        using var w = new TestWorld(TestCatalogs.Source(Segments(3)));
        var history = w.Get<SegmentSizeHistory>();
        history.Sample();
        var (start, end) = (w.Clock.Now.AddDays(-1), w.Clock.Now.AddHours(1));
        w.Catalogs.Load(TestCatalogs.Source(Segments(2))); // s002 removed

        var removed = Assert.Single(history.Page(start, end, "s002", 0, null).Segments);

        Assert.Single(removed.Points);
        Assert.DoesNotContain(history.Page(start, end, null, 0, null).Segments, s => s.SegmentId == "s002");
        Assert.Throws<NotFoundException>(() => history.Page(start, end, "never", 0, null));
    }

    [Fact]
    public void A_removed_segments_history_is_dropped_once_its_newest_point_leaves_the_kept_window()
    {
        using var w = new TestWorld(TestCatalogs.Source(Segments(3)));
        var history = w.Get<SegmentSizeHistory>();
        history.Sample();
        w.Catalogs.Load(TestCatalogs.Source(Segments(2))); // s002 removed

        w.Clock.Now = w.Clock.Now.AddDays(KpiStore.RetentionDays - 1);
        history.Sample();
        Assert.Contains("s002", history.Segments); // still within the kept window: readable by id

        w.Clock.Now = w.Clock.Now.AddDays(2);
        history.Sample();
        Assert.DoesNotContain("s002", history.Segments);
        Assert.Contains("s001", history.Segments); // still served: kept
    }
}
