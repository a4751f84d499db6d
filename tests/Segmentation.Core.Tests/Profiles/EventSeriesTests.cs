using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Profiles;

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

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Bulk_replay_equals_folding_the_events_one_by_one(int seed)
    {
        var random = new Random(seed);
        // The built-in types and custom ones: more types than the bulk build's scratch space starts with.
        var types = Segmentation.Core.Events.EventTypes.BuiltIn.Concat(Enumerable.Range(0, 12).Select(k => $"custom.t{k}")).ToArray();
        var events = Enumerable.Range(0, 300)
            .Select(i => new StoredEvent(
                $"e{i}",
                types[random.Next(types.Length)],
                1_000_000L + (random.Next(50) * 10_000L), // many equal timestamps: ties keep arrival order
                Math.Round(random.NextDouble() * 100, 2),
                random.Next(1, 4),
                $"s{random.Next(5)}",
                "web",
                "product",
                null,
                null,
                random.Next(3) == 0 ? null : $"c{random.Next(4)}",
                null))
            .OrderBy(e => e.Ticks)
            .ToList();

        var bulk = ProfileAggregates.Replay(events);
        var folded = ProfileAggregates.FoldAll(events);
        Assert.Equal(
            (folded.TotalEvents, folded.FirstSeenTicks, folded.LastSeenTicks, folded.Orders, folded.Revenue, folded.FirstPurchaseTicks, folded.LastPurchaseTicks, folded.CartItems, folded.CartUpdatedTicks),
            (bulk.TotalEvents, bulk.FirstSeenTicks, bulk.LastSeenTicks, bulk.Orders, bulk.Revenue, bulk.FirstPurchaseTicks, bulk.LastPurchaseTicks, bulk.CartItems, bulk.CartUpdatedTicks));
        Assert.Equal(folded.EmailSends.ToArray(), bulk.EmailSends.ToArray());
        Assert.Equal(folded.OpenedCampaigns.Order(), bulk.OpenedCampaigns.Order());
        Assert.Equal(folded.ClickedCampaigns.Order(), bulk.ClickedCampaigns.Order());
        Assert.Equal(folded.Series.Keys.Order(), bulk.Series.Keys.Order());
        foreach (var (type, series) in folded.Series)
        {
            var other = bulk.Series[type];
            Assert.Equal(series.Ticks.ToArray(), other.Ticks.ToArray());
            Assert.Equal(series.SumInWindow(2_000_000, 2_000_000, out _), other.SumInWindow(2_000_000, 2_000_000, out _));
            Assert.Equal(series.SumInWindow(1_200_000, 100_000, out _), other.SumInWindow(1_200_000, 100_000, out _));
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void Each_type_series_holds_exactly_its_events_whatever_order_they_were_added_in(int seed)
    {
        var random = new Random(seed);
        string[] types = ["purchase", "add_to_cart", "page_view", "a_custom", "zz_custom"];
        var events = Enumerable.Range(0, 120)
            .Select(i => (Type: types[random.Next(types.Length)], Ticks: 1_000_000L + (i * 1_000L), Value: random.Next(3) == 0 ? 0 : Math.Round(random.NextDouble() * 50, 2)))
            .ToList();

        var added = EventSeriesDictionary.Empty;
        foreach (var e in events.OrderBy(_ => random.Next()))
        {
            added = added.Add(e.Type, e.Ticks, e.Value);
        }

        Assert.Equal(types.Where(t => events.Any(e => e.Type == t)).Order(StringComparer.Ordinal), added.Keys);
        foreach (var (type, series) in added)
        {
            var own = events.Where(e => e.Type == type).ToList();
            Assert.Equal(own.Select(e => e.Ticks), series.Ticks);
            Assert.Equal(own.Count, series.CountInWindow(2_000_000, 2_000_000, out _));
            Assert.Equal(own.Sum(e => e.Value), series.SumInWindow(2_000_000, 2_000_000, out _), 6);
            var recent = own.Where(e => e.Ticks > 1_060_000).ToList();
            Assert.Equal(recent.Sum(e => e.Value), series.SumInWindow(1_200_000, 140_000, out _), 6);
            Assert.Equal(own[^1].Ticks, series.LastAtOrBefore(2_000_000, out _));
        }
    }

    [Fact]
    public void Appending_in_place_leaves_every_older_map_as_it_was_and_branches_stay_apart()
    {
        // Adds at the end of a type's series write into room past the map's entries; a map must never see a later
        // map's entries, two adds to one map must not overwrite each other, and values appearing after zero-valued
        // events (sums kept from then on) must not disturb older maps.
        string[] types = ["page_view", "add_to_cart", "purchase", "custom.x"];
        var snapshots = new List<EventSeriesDictionary> { EventSeriesDictionary.Empty };
        var events = new List<(string Type, long Ticks, double Value)>();
        for (var i = 0; i < 400; i++)
        {
            var e = (Type: types[(i * 7 / 3) % (i < 50 ? 2 : 4)], Ticks: 1_000L * i, Value: i > 120 && i % 5 == 0 ? i / 4.0 : 0);
            events.Add(e);
            snapshots.Add(snapshots[^1].Add(e.Type, e.Ticks, e.Value));
        }

        void Same(IReadOnlyList<(string Type, long Ticks, double Value)> expected, EventSeriesDictionary map)
        {
            Assert.Equal(expected.Select(e => e.Type).Distinct().Order(StringComparer.Ordinal), map.Keys);
            foreach (var (type, series) in map)
            {
                var own = expected.Where(e => e.Type == type).ToList();
                Assert.Equal(own.Select(e => e.Ticks), series.Ticks);
                Assert.Equal(own.Sum(e => e.Value), series.SumInWindow(10_000_000, 10_000_000, out _), 6);
                Assert.Equal(own.Where(e => e.Ticks > 200_000).Sum(e => e.Value), series.SumInWindow(10_000_000, 10_000_000 - 200_000, out _), 6);
            }
        }

        for (var i = 0; i < snapshots.Count; i += 7)
        {
            Same(events.Take(i).ToList(), snapshots[i]);
        }

        foreach (var at in new[] { 0, 3, 60, 121, 250, 400, 400 })
        {
            var branch = snapshots[at].Add("page_view", 5_000_000, 0).Add("purchase", 5_000_001, 9.5);
            Same([.. events.Take(at), ("page_view", 5_000_000, 0), ("purchase", 5_000_001, 9.5)], branch);
            Same(events.Take(at).ToList(), snapshots[at]);
        }

        Same(events, snapshots[^1]);
        var results = new EventSeriesDictionary[32];
        Parallel.For(0, results.Length, i => results[i] = snapshots[^1].Add("page_view", 6_000_000 + i, i));
        for (var i = 0; i < results.Length; i++)
        {
            Same([.. events, ("page_view", 6_000_000 + i, i)], results[i]);
        }
    }

    [Fact]
    public void Windows_and_last_times_agree_with_counting_one_by_one_at_every_point_of_random_series()
    {
        var origin = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;
        var random = new Random(7);
        for (var round = 0; round < 300; round++)
        {
            var events = Enumerable.Range(0, random.Next(0, 70)).Select(_ => (Time: origin + (random.Next(0, 40) * Day), Value: (double)random.Next(1, 9))).ToList(); // repeated times included
            var series = events.Aggregate(EventSeries.Empty, (s, e) => s.Add(e.Time, e.Value));
            var times = events.Select(e => e.Time).Order().ToList();
            for (var now = origin - Day; now <= origin + (41 * Day); now += Day / 2)
            {
                foreach (var window in new[] { Day, 3 * Day, 10 * Day, long.MaxValue })
                {
                    var start = window == long.MaxValue ? long.MinValue : now - window;
                    var inWindow = events.Where(e => e.Time > start && e.Time <= now).ToList();
                    Assert.Equal(inWindow.Count, series.CountInWindow(now, window, out var changes));
                    Assert.Equal(inWindow.Sum(e => e.Value), series.SumInWindow(now, window, out _));

                    // The count next changes when the oldest event in the window leaves it, or the next one comes into it.
                    var leaves = window == long.MaxValue || inWindow.Count == 0 ? long.MaxValue : inWindow.Min(e => e.Time) + window;
                    Assert.Equal(Math.Min(leaves, times.Where(t => t > now).DefaultIfEmpty(long.MaxValue).Min()), changes);
                }

                var last = times.Where(t => t <= now).DefaultIfEmpty(long.MinValue).Max();
                Assert.Equal(last, series.LastAtOrBefore(now, out var changesAt));
                Assert.Equal(times.Where(t => t > now).DefaultIfEmpty(long.MaxValue).Min(), changesAt);
            }
        }
    }
}

public class CompactCollectionTests
{
    [Fact]
    public void Whole_number_values_share_boxes_and_other_values_are_kept_as_given()
    {
        static Core.Profiles.ProfileAttribute Score(object value) =>
            new("lead_score", value, Core.Profiles.AttributeLayer.Derived, "svc", DateTimeOffset.UnixEpoch);

        Assert.Same(Score(42d).Value, Score(42d).Value);
        Assert.Same(Score(7d).Value, (Score(1d) with { Value = 7d }).Value);
        Assert.NotSame(Score(1.5).Value, Score(1.5).Value);
        Assert.True(double.IsNegative((double)Score(-0d).Value));
        Assert.Equal(5000d, Score(5000d).Value);
        Assert.Equal(Score(42d), Score(42d));
    }

    [Fact]
    public void Equal_string_lists_share_one_array_until_the_pool_is_full()
    {
        var pool = new Core.Profiles.Compact.StringArrayPool(capacity: 2);

        var a = pool.Share(["page_view", new string("purchase".ToCharArray())]);
        var b = pool.Share(new List<string> { "page_view", "purchase" });
        var c = pool.Share(["purchase", "page_view"]);
        var d = pool.Share(["search"]);

        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal(["purchase", "page_view"], c);
        Assert.Same(Core.Profiles.Compact.StringPool.Share("purchase"), a[1]);
        Assert.NotSame(d, pool.Share(["search"])); // past capacity: equal, not shared
        var many = Enumerable.Range(0, 80).Select(k => $"custom.type_{k}").ToList(); // a lookup key too long for the stack
        Assert.Equal(many, new Core.Profiles.Compact.StringArrayPool(capacity: 2).Share(many));
        var big = new Core.Profiles.Compact.StringArrayPool(capacity: 2);
        Assert.Same(big.Share(many), big.Share(many.ToArray()));
        Assert.Empty(pool.Share([]));
    }

    [Fact]
    public void Lists_whose_joined_text_is_the_same_are_not_given_for_one_another()
    {
        // Regression (review): the pool's key joins items with '\0', which an item may hold, and a hit was returned
        // without comparing items, so a user setting ["a", "b"] was given another user's ["a\0b"].
        var pool = new Core.Profiles.Compact.StringArrayPool(capacity: 8);
        Assert.Equal(["a\0b"], pool.Share(["a\0b"]));
        Assert.Equal(["a", "b"], pool.Share(["a", "b"]));
        Assert.Equal(["\0"], pool.Share(["\0"]));
        Assert.Equal(["", ""], pool.Share(["", ""]));

        using var w = new TestWorld(TestCatalogs.Source());
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["interests"] = new[] { "vip\0gold" } }, "crm", AttributeLayer.ZeroParty, null);
        w.Ingestion.SetTraits("u2", new Dictionary<string, object?> { ["interests"] = new[] { "vip", "gold" } }, "crm", AttributeLayer.ZeroParty, null);
        Assert.Equal(["vip", "gold"], (IEnumerable<string>)w.Store.Get("u2")!.Trait("interests")!);
    }

    [Fact]
    public void A_profile_passing_through_thousands_of_event_type_sets_keeps_none_of_the_long_ones()
    {
        // Regression (review): each new custom event type of one profile made a new set of types, and the pool kept every
        // set it passed through under a key of all their names (4,096 types of 71 characters: about 1.2 GB for good).
        var pool = Core.Profiles.Compact.StringArrayPool.ForWrittenLists(capacity: 4096);
        var types = new List<string>();
        for (var i = 0; i < 600; i++)
        {
            types.Add($"custom.{new string('t', 60)}_{i:D4}");
            Assert.Equal(types, pool.Share(types));
        }

        Assert.True(pool.Characters <= 4096L * Core.Profiles.Compact.StringArrayPool.CharactersPerList, $"{pool.Characters} characters kept");
        Assert.True(pool.Characters < 40 * Core.Profiles.Compact.StringArrayPool.MaxSharedLength, $"{pool.Characters} characters kept");

        // Within the budget, lists short enough are shared as before; a pool of lists the service writes (a user's
        // segments, 80 ids of 40 characters) shares long ones.
        var small = Core.Profiles.Compact.StringArrayPool.ForWrittenLists(capacity: 16);
        var sharedOnce = small.Share(["page_view", "purchase"]);
        Assert.Same(sharedOnce, small.Share(["page_view", "purchase"]));
        var segments = Enumerable.Range(0, 80).Select(k => $"segment_{k:D2}_{new string('s', 29)}").ToArray();
        var segmentSets = new Core.Profiles.Compact.StringArrayPool(capacity: 16_384);
        Assert.Same(segmentSets.Share(segments), segmentSets.Share([.. segments]));
    }

    [Fact]
    public void Decoding_UTF8_returns_the_pooled_instance_of_a_known_value_and_a_new_string_otherwise()
    {
        var pooled = Core.Profiles.Compact.StringPool.Share("add_to_cart");

        Assert.Same(pooled, Core.Profiles.Compact.StringPool.Decode("add_to_cart"u8));
        var unknown = Core.Profiles.Compact.StringPool.Decode("s-9f2c-not-pooled"u8);
        Assert.Equal("s-9f2c-not-pooled", unknown);
        Assert.Equal(-1, Core.Profiles.Compact.StringPool.IdOf(new string('x', 65))); // decoding never adds: the pool stays as it was
        Assert.Equal("caf\u00e9 \u00fcber", Core.Profiles.Compact.StringPool.Decode("caf\u00e9 \u00fcber"u8));
        Assert.Equal("a\uFFFDb", Core.Profiles.Compact.StringPool.Decode([(byte)'a', 0xFF, (byte)'b'])); // invalid bytes replaced, as Encoding.UTF8 does
        Assert.Equal(new string('y', 300), Core.Profiles.Compact.StringPool.Decode(System.Text.Encoding.UTF8.GetBytes(new string('y', 300))));
        Assert.Equal("", Core.Profiles.Compact.StringPool.Decode([]));
    }

    [Fact]
    public void Attributes_keep_their_time_and_its_offset()
    {
        var at = new DateTimeOffset(2026, 3, 29, 1, 30, 15, 123, TimeSpan.FromHours(2)).AddTicks(4567);
        var attribute = new Core.Profiles.ProfileAttribute("city", "Leeds", Core.Profiles.AttributeLayer.ZeroParty, "form", at);

        Assert.Equal(at, attribute.UpdatedAt);
        Assert.Equal(at.Offset, attribute.UpdatedAt.Offset);
        Assert.Equal(at.Ticks, attribute.UpdatedAt.Ticks);
        Assert.Equal(TimeSpan.FromHours(-5), (attribute with { UpdatedAt = at.ToOffset(TimeSpan.FromHours(-5)) }).UpdatedAt.Offset);
        Assert.Equal(attribute, attribute with { });
    }

    [Fact]
    public void String_sets_keep_one_of_each_value_in_ordinal_order()
    {
        var set = Core.Profiles.Compact.StringSet.Of(["b", "a", "b", "C", "a"]);

        Assert.Equal(["C", "a", "b"], set.ToArray());
        Assert.True(set.Contains("a"));
        Assert.False(set.Contains("A"));
        Assert.Same(set, set.Add("b"));
        Assert.Equal(["C", "a", "b", "c"], set.Add("c").ToArray());
        Assert.True(set.SetEquals(["a", "b", "C"]));
        Assert.Same(Core.Profiles.Compact.StringSet.Empty, Core.Profiles.Compact.StringSet.Of([]));
    }

    [Fact]
    public void Attribute_dictionaries_keep_the_last_value_of_a_name_sorted_by_name()
    {
        var at = DateTimeOffset.UnixEpoch;
        var attributes = Core.Profiles.AttributeDictionary.Of(
        [
            new("tier", "silver", Core.Profiles.AttributeLayer.FirstParty, "a", at),
            new("age", 40d, Core.Profiles.AttributeLayer.ZeroParty, "a", at),
            new("tier", "gold", Core.Profiles.AttributeLayer.ZeroParty, "b", at),
        ]);

        Assert.Equal(["age", "tier"], attributes.Keys.ToArray());
        Assert.Equal("gold", attributes["tier"].Value);
        var updated = attributes.SetItem("city", new Core.Profiles.ProfileAttribute("city", "York", Core.Profiles.AttributeLayer.ZeroParty, "c", at));
        Assert.Equal(["age", "city", "tier"], updated.Keys.ToArray());
        Assert.Equal(2, attributes.Count);
        Assert.False(attributes.ContainsKey("city"));
        Assert.Throws<ArgumentException>(() => attributes.SetItem("x", updated["city"]));
    }
}
