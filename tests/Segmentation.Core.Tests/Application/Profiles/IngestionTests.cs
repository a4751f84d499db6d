using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Events;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Profiles;

public class IngestionTests
{
    private static BehaviourEvent Event(string id, string type, DateTimeOffset at, string user = "u1", double value = 0, string anonymous = "", string? category = null, int quantity = 1, string pageType = "product") => new()
    {
        EventId = id,
        Type = type,
        UserId = user,
        AnonymousId = anonymous,
        Timestamp = at,
        Context = new EventContext("web", "mobile", "s-" + id[..Math.Min(3, id.Length)], pageType),
        Value = value,
        OrderId = type is EventTypes.Purchase or EventTypes.Refund ? "o-" + id : null,
        Category = category,
        ProductId = type is EventTypes.ProductView or EventTypes.AddToCart or EventTypes.RemoveFromCart ? "sku-" + (category ?? "x") : null,
        Lines = type is EventTypes.AddToCart or EventTypes.RemoveFromCart ? [new OrderLine("sku", null, category, quantity, 5)] : [],
    };

    private static List<BehaviourEvent> History(DateTimeOffset now) =>
    [
        Event("e1", EventTypes.PageView, now.AddDays(-100)),
        Event("e2", EventTypes.AddToCart, now.AddDays(-95), quantity: 2),
        Event("e3", EventTypes.Purchase, now.AddDays(-94), value: 40),
        Event("e4", EventTypes.AddToCart, now.AddDays(-20), quantity: 3),
        Event("e5", EventTypes.RemoveFromCart, now.AddDays(-19)),
        Event("e6", EventTypes.Refund, now.AddDays(-10), value: 15),
        Event("e7", EventTypes.Purchase, now.AddDays(-5), value: 60),
        Event("e8", EventTypes.AddToCart, now.AddDays(-2), quantity: 4),
        Event("e9", EventTypes.ProductView, now.AddDays(-1), category: "kitchen"),
    ];

    [Fact]
    public void Out_of_order_delivery_gives_the_same_aggregates_as_in_order_delivery()
    {
        using var ordered = new TestWorld(TestCatalogs.Source());
        foreach (var e in History(ordered.Clock.Now))
        {
            ordered.Ingestion.Track(e);
        }

        var expected = ordered.Store.Get("u1")!;
        var random = new Random(7);
        for (var round = 0; round < 20; round++)
        {
            using var shuffled = new TestWorld(TestCatalogs.Source());
            foreach (var e in History(shuffled.Clock.Now).OrderBy(_ => random.Next()))
            {
                shuffled.Ingestion.Track(e);
            }

            var actual = shuffled.Store.Get("u1")!;
            Assert.Equal(
                (expected.Orders, expected.Revenue, expected.CartItems, expected.CartUpdatedTicks, expected.FirstPurchaseTicks, expected.LastPurchaseTicks, expected.Sessions, expected.FirstSeenTicks, expected.LastSeenTicks),
                (actual.Orders, actual.Revenue, actual.CartItems, actual.CartUpdatedTicks, actual.FirstPurchaseTicks, actual.LastPurchaseTicks, actual.Sessions, actual.FirstSeenTicks, actual.LastSeenTicks));
            Assert.Equal(expected.Events.Select(e => e.EventId), actual.Events.Select(e => e.EventId));
        }

        Assert.Equal((2, 85d, 4), (expected.Orders, expected.Revenue, expected.CartItems));
    }

    [Fact]
    public void A_retried_event_id_is_accepted_and_not_counted_twice()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var e = Event("buy", EventTypes.Purchase, w.Clock.Now, value: 10);

        var first = w.Ingestion.Track(e);
        var retry = w.Ingestion.Track(e with { Value = 99 });

        Assert.False(first.Duplicate);
        Assert.True(retry.Duplicate);
        Assert.Equal(first.Profile.Version, retry.Profile.Version);
        Assert.Equal((1, 10d), (w.Store.Get("u1")!.Orders, w.Store.Get("u1")!.Revenue));
    }

    [Fact]
    public void In_a_bulk_write_one_bad_event_is_rejected_by_itself()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        var results = w.Ingestion.TrackMany([
            Event("ok1", EventTypes.PageView, now),
            Event("bad", "teleport", now.AddDays(3), value: double.NaN) with { Context = new EventContext("web", "", "s", "") },
            Event("ok1", EventTypes.PageView, now),
            Event("ok2", EventTypes.Purchase, now, value: 5),
        ]).ToList();

        Assert.Equal([EventStatus.Accepted, EventStatus.Rejected, EventStatus.Duplicate, EventStatus.Accepted], results.Select(r => r.Status));
        var fields = results[1].Violations.Select(v => v.Field).ToList();
        Assert.Equal(["events[1].type", "events[1].timestamp", "events[1].context.device", "events[1].context.page_type", "events[1].value"], fields);
        Assert.Equal(2, w.Store.Get("u1")!.TotalEvents);
    }

    [Theory]
    [InlineData("custom.quiz_completed", true)]
    [InlineData("custom.", false)]
    [InlineData("quiz_completed", false)]
    [InlineData("custom.Quiz", false)]
    [InlineData("email_unsubscribe", true)]
    [InlineData("form_submit", true)]
    public void Custom_types_need_the_custom_namespace(string type, bool valid)
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var result = w.Ingestion.TrackOne(0, Event("e", type, w.Clock.Now));
        Assert.Equal(valid ? EventStatus.Accepted : EventStatus.Rejected, result.Status);
    }

    [Fact]
    public void Identify_merges_histories_without_double_counting_and_routes_the_anonymous_id()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        w.Ingestion.Track(Event("a1", EventTypes.ProductView, now.AddHours(-3), user: "", anonymous: "anon-1", category: "garden"));
        w.Ingestion.Track(Event("shared", EventTypes.AddToCart, now.AddHours(-2), user: "", anonymous: "anon-1"));
        w.Ingestion.Track(Event("u-buy", EventTypes.Purchase, now.AddDays(-30), value: 20));
        w.Ingestion.Track(Event("shared", EventTypes.AddToCart, now.AddHours(-2))); // the same event, also sent with the user id

        var result = w.Ingestion.Identify("anon-1", "u1");

        Assert.Equal((1, 1), (result.MergedEvents, result.DuplicateEvents));
        var p = w.Store.Get("u1")!;
        Assert.Equal(3, p.TotalEvents);
        Assert.Equal(1, p.CartItems);
        Assert.Same(p, w.Store.Get("anon-1"));
        Assert.Equal(["anon-1"], w.Store.LinkedIds("u1"));

        w.Ingestion.Track(Event("later", EventTypes.PageView, now, user: "", anonymous: "anon-1"));
        Assert.Equal(4, w.Store.Get("u1")!.TotalEvents);
        Assert.Equal("u1", w.Store.Resolve("anon-1"));
    }

    [Fact]
    public void A_change_of_winning_segment_is_recorded_with_its_cause()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("buyer", "value", "{ field: orders.count, gte: 1 }")));
        w.Ingestion.Track(Event("v1", EventTypes.PageView, w.Clock.Now));
        w.Ingestion.Track(Event("b1", EventTypes.Purchase, w.Clock.Now, value: 10));
        w.Ingestion.Track(Event("v2", EventTypes.PageView, w.Clock.Now));

        var history = w.Store.Get("u1")!.SegmentHistory;

        Assert.Equal(2, history.Count);
        Assert.Equal((null, "everyone", "event:v1"), (history[0].From, history[0].To, history[0].Cause));
        Assert.Equal(("everyone", "buyer", "event:b1"), (history[1].From, history[1].To, history[1].Cause));
        Assert.Equal("buyer", w.Store.Get("u1")!.CurrentSegment);
    }

    [Fact]
    public void A_rejected_event_changes_nothing()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        w.Ingestion.Track(Event("ok", EventTypes.PageView, w.Clock.Now));
        var before = w.Store.Get("u1")!;

        Assert.Throws<ValidationException>(() => w.Ingestion.Track(Event("neg", EventTypes.Purchase, w.Clock.Now, value: -1)));

        Assert.Same(before, w.Store.Get("u1"));
    }

    [Fact]
    public void A_streams_event_index_starts_again_at_zero_after_the_largest_int32()
    {
        // Regression: StreamEvents counted its events with index++ on an int, which went negative after 2,147,483,647
        // events on one stream (about eight hours at full rate) and broke clients matching results by index.
        var index = int.MaxValue - 1;

        Assert.Equal([int.MaxValue - 1, int.MaxValue, 0, 1], [EventRecorder.NextStreamIndex(ref index), EventRecorder.NextStreamIndex(ref index), EventRecorder.NextStreamIndex(ref index), EventRecorder.NextStreamIndex(ref index)]);
    }
}
