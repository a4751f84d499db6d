using Segmentation.Core.Profiles;

namespace Segmentation.Core.Tests;

public class EventSeriesTests
{
    private static readonly long Day = TimeSpan.TicksPerDay;

    [Fact]
    public void Out_of_order_inserts_give_the_same_windows_as_in_order()
    {
        var inOrder = EventSeries.Empty.Add(1 * Day, 10).Add(5 * Day, 20).Add(9 * Day, 30);
        var shuffled = EventSeries.Empty.Add(9 * Day, 30).Add(1 * Day, 10).Add(5 * Day, 20);

        foreach (var s in new[] { inOrder, shuffled })
        {
            Assert.Equal(2, s.CountInWindow(10 * Day, 6 * Day, out _));
            Assert.Equal(50, s.SumInWindow(10 * Day, 6 * Day, out _));
            Assert.Equal(3, s.CountInWindow(10 * Day, long.MaxValue, out _));
            Assert.Equal(9 * Day, s.LastAtOrBefore(10 * Day, out _));
        }
    }

    [Fact]
    public void Window_reports_when_its_count_next_changes()
    {
        var s = EventSeries.Empty.Add(1 * Day, 1).Add(5 * Day, 1).Add(20 * Day, 1);

        var n = s.CountInWindow(10 * Day, 7 * Day, out var changesAt);

        Assert.Equal(1, n); // only day 5 is in (3, 10]
        Assert.Equal(12 * Day, changesAt); // day 5 leaves the 7-day window on day 12
        Assert.Equal(0, s.CountInWindow(12 * Day, 7 * Day, out _));
    }

    [Fact]
    public void Future_events_are_not_counted_until_their_time()
    {
        var s = EventSeries.Empty.Add(20 * Day, 1);

        Assert.Equal(0, s.CountInWindow(10 * Day, long.MaxValue, out var changesAt));
        Assert.Equal(20 * Day, changesAt);
        Assert.Equal(long.MinValue, s.LastAtOrBefore(10 * Day, out _));
    }
}
