using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Membership;

/// <summary>The change stream: offsets, resumption, retention by count and age, and the errors that tell a consumer to resynchronise.</summary>
public sealed class ChangeStreamTests
{
    private static readonly DateTimeOffset T0 = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static ChangeFeed Feed(int capacity = 1000, TimeSpan? retention = null, ManualClock? clock = null) =>
        new(new ChangeFeedOptions { Capacity = capacity, Retention = retention ?? TimeSpan.FromDays(7) }, clock ?? new ManualClock(T0));

    private static List<FeedEntry> After(ChangeFeed feed, long offset, int max = int.MaxValue)
    {
        var into = new List<FeedEntry>();
        feed.ReadAfter(offset, into, max);
        return into;
    }

    [Fact]
    public void Offsets_increase_by_one_and_a_consumer_resumes_after_the_last_it_handled()
    {
        var feed = Feed();
        for (var i = 0; i < 10; i++)
        {
            feed.Append($"u{i % 3}", "s", i % 2 == 0 ? ChangeKind.Entered : ChangeKind.Left, T0.AddSeconds(i), 1, $"event:{i}");
        }

        var firstRead = After(feed, 0, max: 4);
        var resumed = After(feed, firstRead[^1].Offset);

        Assert.Equal([1L, 2, 3, 4], firstRead.Select(e => e.Offset));
        Assert.Equal([5L, 6, 7, 8, 9, 10], resumed.Select(e => e.Offset));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"event:{i}"), firstRead.Concat(resumed).Select(e => e.Cause)); // in the order appended
        Assert.Empty(After(feed, 10));
    }

    [Fact]
    public void Beyond_the_capacity_the_oldest_entries_go_and_asking_for_them_is_out_of_range_naming_the_oldest()
    {
        var feed = Feed(capacity: 3000);
        for (var i = 1; i <= 5000; i++)
        {
            feed.Append("u", "s", ChangeKind.Entered, T0, 1, $"event:{i}");
        }

        var ex = Assert.Throws<FeedOffsetException>(() => After(feed, 100));
        Assert.Equal(2001, ex.Oldest);
        Assert.Equal(5000, ex.Last);
        Assert.Contains("no longer retained", ex.Message, StringComparison.Ordinal);
        var retained = After(feed, 2000);
        Assert.Equal(3000, retained.Count);
        Assert.Equal(Enumerable.Range(2001, 3000).Select(i => $"event:{i}"), retained.Select(e => e.Cause)); // the ring grew and wrapped without mixing entries
    }

    [Fact]
    public void Entries_older_than_the_retention_window_go()
    {
        var clock = new ManualClock(T0);
        var feed = Feed(retention: TimeSpan.FromDays(7), clock: clock);
        feed.Append("u", "s", ChangeKind.Entered, T0, 1, "a");
        feed.Append("u", "s", ChangeKind.Left, T0.AddDays(2), 1, "b");

        clock.Now = T0.AddDays(7).AddMinutes(1);

        Assert.Equal(2, feed.Oldest);
        Assert.Throws<FeedOffsetException>(() => After(feed, 0));
        Assert.Equal(["b"], After(feed, 1).Select(e => e.Cause));
    }

    [Fact]
    public void An_offset_past_the_end_is_out_of_range_as_a_reset_stream()
    {
        var feed = Feed();
        feed.Append("u", "s", ChangeKind.Entered, T0, 1, "a");

        var ex = Assert.Throws<FeedOffsetException>(() => After(feed, 42));

        Assert.Contains("reset", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, ex.Last);
    }

    [Fact]
    public void Restored_entries_are_served_and_numbering_continues_after_them()
    {
        var feed = Feed();
        feed.Restore([new FeedEntry(41, "u", "s", ChangeKind.Entered, T0, 1, "a"), new FeedEntry(42, "u", "s", ChangeKind.Left, T0, 1, "b")], lastOffset: 42);

        var next = feed.Append("u", "s", ChangeKind.Entered, T0, 1, "c");

        Assert.Equal(43, next.Offset);
        Assert.Equal(["a", "b", "c"], After(feed, 40).Select(e => e.Cause));
        Assert.Throws<FeedOffsetException>(() => After(feed, 0)); // 1..40 are gone
        Assert.Equal(42, feed.Journaled); // what was restored is on disk already
    }

    [Fact]
    public void Restoring_only_a_last_offset_keeps_numbering_after_it()
    {
        var feed = Feed();
        feed.Restore([], lastOffset: 500);

        Assert.Equal(501, feed.Append("u", "s", ChangeKind.Entered, T0, 1, "a").Offset);
        Assert.Equal(501, feed.Oldest);
    }

    [Fact]
    public async Task With_a_journal_readers_get_only_what_is_written_so_an_offset_seen_is_never_handed_out_again_after_a_crash_and_wake_when_it_is()
    {
        var feed = new ChangeFeed(new ChangeFeedOptions { Capacity = 100 }, new ManualClock(T0)) { ServeOnlyJournaled = true };
        for (var i = 0; i < 3; i++)
        {
            feed.Append("u", "s", ChangeKind.Entered, T0, 1, $"e{i}");
        }

        Assert.Empty(After(feed, 0)); // appended, not yet on disk: a crash now would hand these offsets out again
        var waiting = feed.WaitAfterAsync(0, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        feed.Append("u", "s", ChangeKind.Entered, T0, 1, "e3");
        Assert.False(waiting.IsCompleted); // an append gives a waiting reader nothing to read: it is not woken for it

        feed.MarkJournaled(2);

        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([1L, 2], After(feed, 0).Select(e => e.Offset));
    }

    [Fact]
    public void With_a_journal_an_offset_past_what_is_written_is_out_of_range_naming_the_newest_written_one()
    {
        // A consumer told to continue from an offset not yet on disk would skip what a crash hands out again under it.
        var feed = new ChangeFeed(new ChangeFeedOptions { Capacity = 100 }, new ManualClock(T0)) { ServeOnlyJournaled = true };
        for (var i = 0; i < 5; i++)
        {
            feed.Append("u", "s", ChangeKind.Entered, T0, 1, $"e{i}");
        }

        feed.MarkJournaled(3);

        var ex = Assert.Throws<FeedOffsetException>(() => After(feed, 6));
        Assert.Equal(3, ex.Last);
        Assert.Contains("past the newest offset 3", ex.Message, StringComparison.Ordinal);

        // A watch "from now" starts after the last appended entry, written or not: no reset, served once written.
        Assert.Empty(After(feed, feed.Last));
        feed.Append("u", "s", ChangeKind.Entered, T0, 1, "e5");
        feed.MarkJournaled(6);
        Assert.Equal([6L], After(feed, 5).Select(e => e.Offset));
    }

    [Fact]
    public void Identify_announces_the_anonymous_id_leaving_under_its_own_id_and_keeps_its_earlier_entries()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")));
        var start = w.Memberships.Feed.Last;
        SetScore(w, "visitor", 80);
        var entered = Assert.Single(w.FeedAfter(start));

        w.Ingestion.Identify("visitor", "u1");

        // A membership refresh that listed the id just before the merge evaluates it after (a race, forced here).
        var writer = (ProfileWriter)typeof(ProfileIngestion).GetField("_writer", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(w.Ingestion)!;
        writer.EvaluateMembership("visitor", w.Clock.Now, null);

        var entries = w.FeedAfter(start);
        Assert.DoesNotContain(entries, e => e.Cause == "erased" || e.UserId.Length == 0); // merged, not erased
        Assert.Equal(entered, entries[0]);
        Assert.Contains(entries, e => (e.UserId, e.SegmentId, e.Kind, e.Cause) == ("visitor", "high", ChangeKind.Left, "identify:u1"));
        Assert.Contains(entries, e => (e.UserId, e.SegmentId, e.Kind) == ("u1", "high", ChangeKind.Entered));
        Assert.Empty(w.Memberships.SegmentsOf("visitor"));
    }

    [Fact]
    public async Task Fired_triggers_reach_only_consumers_that_ask_for_them()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")));
        var start = w.Memberships.Feed.Last;
        SetScore(w, "u1", 80);
        w.Memberships.Feed.Append("u1", "high", ChangeKind.Triggered, T0, 1, "entered:1", "reminder");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        await using var plain = w.Governance.Watch([], start, includeTriggers: false, cancellation: cts.Token).GetAsyncEnumerator(cts.Token);
        await using var all = w.Governance.Watch([], start, includeTriggers: true, cancellation: cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await plain.MoveNextAsync());
        Assert.True(await all.MoveNextAsync());
        Assert.True(await all.MoveNextAsync());

        Assert.Equal(ChangeKind.Entered, plain.Current.Kind);
        Assert.Equal(("reminder", ChangeKind.Triggered), (all.Current.Trigger, all.Current.Kind));
        var next = plain.MoveNextAsync().AsTask();
        SetScore(w, "u1", 10); // the plain consumer's next entry is the leave, not the trigger before it
        Assert.True(await next);
        Assert.Equal(ChangeKind.Left, plain.Current.Kind);
    }

    [Fact]
    public async Task A_watch_whose_batch_waited_for_its_consumer_hands_on_no_id_of_a_user_erased_meanwhile()
    {
        // Regression (review): a watch copies up to 256 entries and hands them on one at a time; an erasure while the
        // consumer was slow blanked the feed, and the copies still went out with the erased user's id.
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }"),
            TestCatalogs.Segment("higher", "value", "{ field: traits.score, gte: 70 }")));
        var start = w.Memberships.Feed.Last;
        SetScore(w, "u1", 80); // two entries: high and higher
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var watch = w.Governance.Watch([], start, cancellation: cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watch.MoveNextAsync());
        Assert.Equal("u1", watch.Current.UserId);

        await w.Rights.ForgetAsync("u1");

        Assert.True(await watch.MoveNextAsync());
        Assert.Equal(("", "erased"), (watch.Current.UserId, watch.Current.Cause));
    }

    [Fact]
    public async Task A_watch_from_the_oldest_entry_whose_first_batch_meets_an_erasure_starts_from_the_oldest_again()
    {
        // Regression (own review): the batch read again after an erasure started after offset 0, no longer "from the
        // oldest": once older entries had expired, the watch failed with OUT_OF_RANGE.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")), feedCapacity: 4);
        for (var i = 0; i < 6; i++)
        {
            SetScore(w, $"u{i}", 80); // six entries; the four newest retained
        }

        var erased = false;
        w.Governance.AfterWatchRead = () =>
        {
            if (!erased)
            {
                erased = true;
                w.Rights.ForgetAsync("u5").GetAwaiter().GetResult();
            }
        };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var watch = w.Governance.Watch([], null, fromOldest: true, cancellation: cts.Token).GetAsyncEnumerator(cts.Token);

        Assert.True(await watch.MoveNextAsync());
        Assert.Equal(("u2", 3L), (watch.Current.UserId, watch.Current.Offset)); // the oldest retained
    }

    [Fact]
    public async Task A_waiting_reader_wakes_when_an_entry_is_appended()
    {
        var feed = Feed();
        var waiting = feed.WaitAfterAsync(0, CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        feed.Append("u", "s", ChangeKind.Entered, T0, 1, "a");

        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(feed.WaitAfterAsync(0, CancellationToken.None).IsCompleted);
    }

    [Fact]
    public async Task Watch_resumes_with_what_the_consumer_missed_then_goes_on_live_filtered_by_segment()
    {
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }"),
            TestCatalogs.Segment("low", "value", "{ field: traits.score, lt: 50 }")));
        SetScore(w, "u1", 80);
        var handled = w.Memberships.Feed.Last; // the consumer handled everything so far, then disconnected
        SetScore(w, "u1", 10); // missed: left high, entered low
        SetScore(w, "u2", 90); // missed: entered high
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var seen = new List<FeedEntry>();
        await using var watch = w.Governance.Watch(["high"], handled, cancellation: cts.Token).GetAsyncEnumerator(cts.Token);
        for (var i = 0; i < 2; i++)
        {
            Assert.True(await watch.MoveNextAsync());
            seen.Add(watch.Current);
        }

        var live = watch.MoveNextAsync();
        SetScore(w, "u3", 70); // live, after the missed ones
        Assert.True(await live);
        seen.Add(watch.Current);

        Assert.Equal([("u1", ChangeKind.Left), ("u2", ChangeKind.Entered), ("u3", ChangeKind.Entered)], seen.Select(e => (e.UserId, e.Kind)));
        Assert.All(seen, e => Assert.Equal("high", e.SegmentId));
        Assert.Equal(seen.Select(e => e.Offset).Order(), seen.Select(e => e.Offset));
    }

    [Fact]
    public async Task Watch_from_an_offset_no_longer_retained_fails_before_returning_anything()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")));
        SetScore(w, "u1", 80);

        await using var watch = w.Governance.Watch([], 99).GetAsyncEnumerator();
        await Assert.ThrowsAsync<FeedOffsetException>(async () => await watch.MoveNextAsync());
        await Assert.ThrowsAsync<Validation.ValidationException>(async () => await w.Governance.Watch([], -5).GetAsyncEnumerator().MoveNextAsync());
    }

    [Fact]
    public async Task Watch_with_an_offset_from_another_stream_fails_and_with_this_streams_id_reads_on()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")));
        SetScore(w, "u1", 80);
        SetScore(w, "u2", 90);

        await using (var other = w.Governance.Watch([], 1, streamId: ChangeFeed.NewStreamId()).GetAsyncEnumerator())
        {
            Assert.Contains("reset", (await Assert.ThrowsAsync<FeedOffsetException>(async () => await other.MoveNextAsync())).Message, StringComparison.Ordinal);
        }

        await using var same = w.Governance.Watch([], 1, streamId: w.Governance.StreamId).GetAsyncEnumerator();
        Assert.True(await same.MoveNextAsync());
        Assert.Equal(("u2", 2L), (same.Current.UserId, same.Current.Offset));
        await Assert.ThrowsAsync<Validation.ValidationException>(async () => await w.Governance.Watch([], 1, streamId: new string('a', 65)).GetAsyncEnumerator().MoveNextAsync());
    }

    internal static void SetScore(TestWorld w, string user, double score) =>
        w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["score"] = score }, "crm", AttributeLayer.ZeroParty, null);
}
