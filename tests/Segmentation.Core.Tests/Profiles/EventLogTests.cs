using System.Text;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Tests.Profiles;

/// <summary>The columnar event log gives back exactly the events it was given, whatever their strings hold.</summary>
public sealed class EventLogTests
{
    private static readonly long T0 = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks;

    private static StoredEvent Event(string id, long minute, string session = "s1", string type = EventTypes.PageView, double value = 0, int quantity = 1,
        string? category = null, string? product = null, string? campaign = null, string? country = "GB", string source = "web", string pageType = "home") =>
        new(id, type, T0 + (minute * TimeSpan.TicksPerMinute), value, quantity, session, source, pageType, category, product, campaign, country);

    [Fact]
    public void Round_trips_every_field_of_every_event()
    {
        var longValue = new string('x', 300); // too long for the string pool
        StoredEvent[] events =
        [
            Event("e1", 0),
            Event("e2", 1, type: EventTypes.Purchase, value: 129.95, quantity: 3, category: "kitchen", product: "sku-1", pageType: "checkout"),
            Event("é-日本-🙂", 2, session: "sess-ü", category: longValue, product: longValue + "p", campaign: longValue + "c", country: null, source: longValue + "s"),
            Event("e4", 3, session: "s1", type: "custom_" + longValue, value: -0.0, quantity: -5, pageType: "pt-" + longValue),
            Event("lone-\ud800-surrogate", 4, session: "sess-\udc00"),
            Event("e6", 5, session: "s1", value: double.Epsilon, quantity: int.MaxValue, campaign: "camp-1"),
        ];

        var log = EventLog.Of(events);

        Assert.Equal(events, log.ToArray());
        Assert.Equal(events.Length, log.Count);
        for (var i = 0; i < events.Length; i++)
        {
            Assert.Equal(events[i], log[i]);
            Assert.Equal(events[i].Ticks, log.TicksAt(i));
            Assert.Equal(events[i].Type, log.TypeAt(i));
            Assert.Equal(events[i].PageType, log.PageTypeAt(i));
            Assert.Equal(events[i].Category, log.CategoryAt(i));
            Assert.Equal(events[i].ProductId, log.ProductIdAt(i));
            Assert.True(log.Contains(events[i].EventId));
        }

        Assert.False(log.Contains("e3"));
        Assert.False(log.Contains("lone-\ud801-surrogate"));
    }

    [Theory]
    [InlineData(false, 6)]
    [InlineData(true, 6)] // out of time order: the ids are decoded and the events sorted
    [InlineData(false, 64)] // the most session ids compared as bytes
    [InlineData(false, 65)] // past that: decoded and compared as strings
    [InlineData(false, 5000)] // past the hot limit: an archive run
    public void A_log_built_from_utf8_ids_equals_one_built_from_the_strings_they_decode_to(bool shuffled, int count)
    {
        // What a restore does: the ids (and session ids) stay in the snapshot's bytes. Invalid UTF-8 becomes what
        // decoding makes of it: two different invalid session ids that decode alike are one session.
        var ids = new List<byte[]>();
        var sessions = new List<byte[]>();
        var events = new List<StoredEvent>();
        for (var i = 0; i < count; i++)
        {
            byte[] id = (i % 3) switch
            {
                0 => Encoding.UTF8.GetBytes($"é-日本-🙂-{i}"),
                1 => [.. Encoding.UTF8.GetBytes($"bad-{i}-"), 0xC3, 0x28, 0xFF],
                _ => Encoding.UTF8.GetBytes($"e{i}"),
            };
            byte[] session = (i % 7) switch
            {
                5 => [], // no session
                3 or 4 when count == 6 => [0x73, (byte)(0xF0 + (i % 2)), 0x28], // invalid, and both variants decode to "s\uFFFD("
                _ => Encoding.UTF8.GetBytes($"s-日本-{i / 3}"),
            };
            ids.Add(id);
            sessions.Add(session);
            events.Add(Event(Encoding.UTF8.GetString(id), shuffled ? (i * 7) % count : i, session: Encoding.UTF8.GetString(session), value: i));
        }

        var buffer = new byte[1 + ids.Sum(id => id.Length) + sessions.Sum(x => x.Length)]; // a byte before the first id: starts are not 0
        var utf8 = new Utf8EventIds();
        utf8.Reset(buffer);
        var at = 1;
        for (var i = 0; i < count; i++)
        {
            ids[i].CopyTo(buffer, at);
            sessions[i].CopyTo(buffer, at + ids[i].Length);
            utf8.Add(at, ids[i].Length, at + ids[i].Length, sessions[i].Length);
            at += ids[i].Length + sessions[i].Length;
        }

        var placeholders = events.Select(e => e with { EventId = "", SessionId = "" }).ToList();
        var fromBytes = EventLog.Of(placeholders, utf8);
        var fromStrings = EventLog.Of(events);

        Assert.Equal(fromStrings.ToArray(), fromBytes.ToArray());
        Assert.Equal(fromStrings.Sessions, fromBytes.Sessions);
        Assert.Equal(events.Select(e => e.SessionId).Where(x => x.Length > 0).Distinct(StringComparer.Ordinal).Count(), fromBytes.Sessions);
        Assert.Equal(count > EventLog.HotLimit, fromBytes.HasArchive);
        Assert.All(events, e => Assert.True(fromBytes.Contains(e.EventId)));
        Assert.False(fromBytes.Contains("bad-1-"));
        Assert.Contains(fromBytes, e => e.EventId.Contains('\uFFFD', StringComparison.Ordinal)); // the invalid bytes, replaced

        // The next event of the same session continues it, whichever way the log was built.
        var last = events.MaxBy(e => e.Ticks);
        var next = Event("next", count + 1, session: last.SessionId);
        Assert.Equal(fromStrings.Add(next).Sessions, fromBytes.Add(next).Sessions);
    }

    [Fact]
    public void Logs_built_whole_read_back_every_value_whichever_instance_carries_it()
    {
        // Building a log whole remembers pool ids by string instance, per thread: values repeated as one instance,
        // equal values as other instances, values the pool refuses (too long), and more distinct values than the memo
        // has room for, so that instances share its slots. Each log reads back as built, and equals the one built an
        // event at a time (which looks every value up).
        var tooLong = new string('c', 65);
        var shared = "cat-shared";
        for (var round = 0; round < 3; round++)
        {
            var events = new StoredEvent[3000];
            for (var i = 0; i < events.Length; i++)
            {
                var category = (i % 4) switch
                {
                    0 => shared,
                    1 => new string("cat-shared".AsSpan()), // equal, another instance
                    2 => tooLong,
                    _ => $"cat-{round}-{i}", // distinct: 3,000 values through 1,024 slots
                };
                events[i] = Event($"e{i}", i, category: category, product: i % 3 == 0 ? tooLong + i : $"p{i % 50}", country: i % 5 == 0 ? null : (i % 2 == 0 ? "GB" : new string("FR".AsSpan())), source: i % 7 == 0 ? tooLong : "web");
            }

            var whole = EventLog.Of(events);
            var oneByOne = events.Aggregate(EventLog.Empty, (log, e) => log.Add(e));

            Assert.Equal(events, whole.ToArray());
            Assert.Equal(oneByOne.ToArray(), whole.ToArray());
        }
    }

    [Fact]
    public void Building_a_log_keeps_no_value_the_pool_refused_once_the_log_is_gone()
    {
        // A value too long for the pool lives only in its profile's log (and goes with it on erasure): the thread's
        // memo of pool ids must not keep it.
        var refused = BuildLogAndDropIt();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.False(refused.IsAlive);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference BuildLogAndDropIt()
    {
        var product = new string('p', 100) + Guid.NewGuid().ToString("N"); // longer than the pool takes
        var log = EventLog.Of([Event("e1", 0, product: product), Event("e2", 1, product: product)]);
        Assert.Equal(product, log[1].ProductId);
        return new WeakReference(product);
    }

    [Fact]
    public void Adding_one_event_at_a_time_equals_building_at_once_and_late_events_go_in_time_order()
    {
        var log = EventLog.Empty;
        var expected = new List<StoredEvent>();
        var random = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var minute = random.Next(0, 1000);
            var e = Event($"e{i}", minute, session: $"s{minute / 100}", value: i % 3 == 0 ? i * 1.5 : 0, quantity: 1 + (i % 4), category: i % 2 == 0 ? "c" + (i % 5) : null);
            log = log.Add(e);
            expected.Insert(expected.FindLastIndex(x => x.Ticks <= e.Ticks) + 1, e); // after every event not later than it
        }

        Assert.Equal(expected, log.ToArray());
        Assert.Equal(expected, EventLog.Of(expected).ToArray());
        Assert.Equal(expected.Select(e => e.Ticks), Enumerable.Range(0, log.Count).Select(log.TicksAt));
        Assert.Equal(expected.Select(e => e.SessionId).Distinct().Count(), log.Sessions);
        Assert.Equal(log.Sessions, EventLog.Of(expected).Sessions);
    }

    [Fact]
    public void Appending_in_place_leaves_every_older_snapshot_as_it_was_and_branches_stay_apart()
    {
        // Appends at the end write past the snapshot's events into arrays with room; a snapshot must never see an
        // event of a later snapshot, and two appends to one snapshot (a write that was discarded, a what-if) must
        // not overwrite each other. Every seventh event has a key value the string pool does not take.
        var longValue = new string('k', 300);
        var snapshots = new List<EventLog> { EventLog.Empty };
        var expected = new List<StoredEvent>();
        for (var i = 0; i < 300; i++)
        {
            var e = Event($"e{i}", i, session: $"s{i / 10}", value: i % 3 == 0 ? i : 0, category: i % 7 == 0 ? longValue + i : "c" + (i % 4), product: $"p{i % 11}");
            expected.Add(e);
            snapshots.Add(snapshots[^1].Add(e));
        }

        for (var i = 0; i < snapshots.Count; i++)
        {
            Assert.Equal(expected.Take(i), snapshots[i].ToArray());
            Assert.Equal(i, snapshots[i].Count);
            Assert.Equal(i == 0 ? 0 : ((i - 1) / 10) + 1, snapshots[i].Sessions);
            Assert.Equal(i == 0 ? long.MinValue : expected[i - 1].Ticks, snapshots[i].LastTicks);
        }

        // Branches from snapshots that later ones have appended to, and from the newest one twice.
        foreach (var at in new[] { 0, 1, 5, 150, 299, 300, 300 })
        {
            var branchEvent = Event($"branch-{at}", 400, session: "other", category: at == 299 ? longValue : null);
            var branch = snapshots[at].Add(branchEvent).Add(Event($"branch-{at}-2", 401, session: "other"));
            Assert.Equal([.. expected.Take(at), branchEvent, Event($"branch-{at}-2", 401, session: "other")], branch.ToArray());
            Assert.False(snapshots[at].Contains(branchEvent.EventId));
            Assert.True(branch.Contains(branchEvent.EventId));
            Assert.Equal(expected.Take(at), snapshots[at].ToArray());
        }

        Assert.Equal(expected, snapshots[^1].ToArray());
        Assert.Equal(expected.Take(151), snapshots[151].ToArray());
    }

    [Theory]
    [InlineData(1, 7)]          // a visit: a page a minute
    [InlineData(24 * 60, 0)]    // a page a day: no visit
    public void A_short_log_gets_room_to_grow_in_place_only_during_a_visit(long minutesApart, int expectedInPlace)
    {
        // Twelve events, fewer than the size from which every log gets room: during a visit most writes append in place
        // (copies at 1, 2, 4, 7 and 11 events, each with room for half as many again), outside one every write copies exactly.
        var log = EventLog.Empty;
        var inPlace = 0;
        for (var i = 0; i < 12; i++)
        {
            var next = log.Add(Event($"e{i}", i * minutesApart));
            inPlace += next.SharesHotRun(log) ? 1 : 0;
            log = next;
        }

        Assert.Equal(expectedInPlace, inPlace);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => Event($"e{i}", i * minutesApart)), log.ToArray());
    }

    [Fact]
    public void Concurrent_appends_to_one_snapshot_each_get_their_own_event()
    {
        var log = EventLog.Empty;
        for (var i = 0; i < 40; i++)
        {
            log = log.Add(Event($"e{i}", i));
        }

        var baseEvents = log.ToArray();
        var results = new EventLog[64];
        Parallel.For(0, results.Length, i => results[i] = log.Add(Event($"t{i}", 100 + i, session: $"t{i}")).Add(Event($"t{i}-b", 200 + i)));

        for (var i = 0; i < results.Length; i++)
        {
            Assert.Equal([.. baseEvents, Event($"t{i}", 100 + i, session: $"t{i}"), Event($"t{i}-b", 200 + i)], results[i].ToArray());
            Assert.Equal(2, results[i].Sessions);
        }

        Assert.Equal(baseEvents, log.ToArray());
    }

    [Fact]
    public void The_default_log_is_empty_and_takes_events()
    {
        var log = default(EventLog).Add(Event("a", 1, session: "s")).Add(Event("b", 2, session: "s"));

        Assert.Empty(default(EventLog));
        Assert.False(default(EventLog).Contains("a"));
        Assert.Equal(["a", "b"], log.Select(e => e.EventId));
        Assert.Equal(1, log.Sessions);
    }

    [Fact]
    public void Of_orders_events_by_time_keeping_arrival_order_for_ties()
    {
        var log = EventLog.Of([Event("b", 5), Event("a", 1), Event("c", 5)]);

        Assert.Equal(["a", "b", "c"], log.Select(e => e.EventId));
    }

    [Fact]
    public void Events_of_one_session_share_one_session_string_when_read()
    {
        var log = EventLog.Of([Event("a", 1, session: "s-long-session-id"), Event("b", 2, session: "s-long-session-id"), Event("c", 3, session: "other")]).Add(Event("d", 4, session: "other"));

        var events = log.ToArray();

        Assert.Same(events[0].SessionId, events[1].SessionId);
        Assert.Same(events[2].SessionId, events[3].SessionId);
        Assert.Equal("other", events[3].SessionId);
        Assert.Equal(2, log.Sessions);
        Assert.Equal(3, log.Add(Event("e", 5, session: "third")).Add(Event("f", 6, session: "other")).Add(Event("g", 7, session: "s-long-session-id")).Sessions);
    }

    [Fact]
    public void Ids_with_the_same_hash_are_still_told_apart()
    {
        // Event ids are first compared by a 32-bit hash; find two ids that share one (birthday bound: a few
        // hundred thousand candidates are plenty) and check the log confirms against the stored id.
        var seen = new Dictionary<uint, string>();
        (string A, string B)? pair = null;
        for (var i = 0; pair is null && i < 2_000_000; i++)
        {
            var id = $"evt-{i}";
            if (!seen.TryAdd(EventLog.HashId(id), id))
            {
                pair = (seen[EventLog.HashId(id)], id);
            }
        }

        Assert.NotNull(pair);
        var (a, b) = pair.Value;
        var log = EventLog.Of([Event("x", 0), Event(a, 1), Event("y", 2)]);

        Assert.True(log.Contains(a));
        Assert.False(log.Contains(b));
        Assert.True(log.Add(Event(b, 3)).Contains(b));
    }
}

/// <summary>The encoded segment history gives back exactly the changes it was given.</summary>
public sealed class SegmentHistoryTests
{
    [Fact]
    public void Round_trips_changes_and_keeps_the_latest()
    {
        var longId = new string('s', 80); // too long for the string pool
        var at = new DateTimeOffset(2026, 11, 29, 23, 59, 59, TimeSpan.FromHours(-5)).AddTicks(1234);
        SegmentChange[] changes =
        [
            new(null, "everyone", at, "event:e-1"),
            new("everyone", longId, at.AddDays(1).ToOffset(TimeSpan.FromMinutes(330)), "traits:crm ü 🙂"),
            new(longId, "vip", at.AddDays(2).ToOffset(TimeSpan.Zero), "catalog:v12"),
        ];

        var history = SegmentHistory.Of(changes);

        Assert.Equal(changes, history.ToArray());
        Assert.Equal(3, history.Count);
        Assert.Equal(changes[1], history[1]);
        Assert.Equal(TimeSpan.FromMinutes(330), history[1].At.Offset);
        Assert.Empty(SegmentHistory.Empty);
        Assert.Empty(default(SegmentHistory));

        var added = history.Add(new SegmentChange("vip", "churned", at.AddDays(3), "time"), keep: 3);
        Assert.Equal([.. changes.Skip(1), new SegmentChange("vip", "churned", at.AddDays(3), "time")], added.ToArray());
    }

    [Fact]
    public void A_history_built_from_utf8_causes_equals_one_built_from_the_strings_they_decode_to()
    {
        // What a restore does: the causes stay in the snapshot's bytes. Invalid UTF-8 becomes what decoding makes of it.
        var at = new DateTimeOffset(2026, 11, 29, 23, 59, 59, TimeSpan.FromHours(2));
        byte[][] causes = [Encoding.UTF8.GetBytes("event:é-日本-🙂-1"), [.. "event:bad-"u8, 0xC3, 0x28, 0xFF], [], Encoding.UTF8.GetBytes("catalog:v12")];
        var buffer = new byte[1 + causes.Sum(c => c.Length)]; // a byte before the first cause: starts are not 0
        var ranges = new (int Start, int Length)[causes.Length];
        var next = 1;
        for (var i = 0; i < causes.Length; i++)
        {
            causes[i].CopyTo(buffer, next);
            ranges[i] = (next, causes[i].Length);
            next += causes[i].Length;
        }

        var changes = causes.Select((c, i) => new SegmentChange(i == 0 ? null : $"s{i - 1}", $"s{i}", at.AddHours(i), Encoding.UTF8.GetString(c))).ToArray();
        var placeholders = changes.Select(c => c with { Cause = "" }).ToArray();

        var fromBytes = SegmentHistory.Of(placeholders, buffer, ranges);

        Assert.Equal(SegmentHistory.Of(changes).ToArray(), fromBytes.ToArray());
        Assert.Equal(changes, fromBytes.ToArray());
        Assert.Contains('\uFFFD', fromBytes[1].Cause); // the invalid bytes, replaced
    }
}
