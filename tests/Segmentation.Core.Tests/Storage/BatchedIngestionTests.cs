using System.Security.Cryptography;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Events;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Storage;

/// <summary>
/// A batch of events with durability on: its changes reach the change log in one group commit, and none is applied (or
/// seen) before that commit is on disk; a refused commit refuses the whole batch; batches never deadlock each other.
/// </summary>
public sealed class BatchedIngestionTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-batch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static BehaviourEvent Event(string id, string user, string type = EventTypes.PageView, double value = 0) =>
        TestEvents.Make(id, user, type, Start.AddMinutes(-5), value);

    private static List<BehaviourEvent> OnePerUser(int users, string prefix = "e") =>
        [.. Enumerable.Range(0, users).Select(i => Event($"{prefix}{i}", $"u{i}", EventTypes.Purchase, 10 + i))];

    // A page's decision request for a user, with no request context.
    private static DecisionRequest PageOf(string user) => new(user, "", Segmentation.Core.Requests.RequestContext.Empty);

    private static EventRecorder.BatchItem[] ThreeUsers() =>
        [new(0, Event("e-a", "u-a"), "events[0]"), new(1, Event("e-b", "u-b"), "events[1]"), new(2, Event("e-c", "u-c"), "events[2]")];

    // The change log's first commit held at its fsync until released (and, with failSecond, the second refused as by a
    // full disk); every commit counted.
    private sealed class HeldFirstFlush : IDisposable
    {
        private readonly ManualResetEventSlim _held = new();
        private readonly ManualResetEventSlim _release = new();
        private int _count;

        public HeldFirstFlush(Segmentation.Storage.FileChangeLog log, bool failSecond = false) => log.BeforeFlush = () =>
        {
            switch (Interlocked.Increment(ref _count))
            {
                case 1:
                    _held.Set();
                    _release.Wait(TimeSpan.FromSeconds(30));
                    break;
                case 2 when failSecond:
                    throw new IOException("no space left on device");
            }
        };

        public int Count => Volatile.Read(ref _count);

        public void WaitHeld() => Assert.True(_held.Wait(TimeSpan.FromSeconds(30)));

        public void Release() => _release.Set();

        public void Dispose()
        {
            _release.Set();
            _held.Dispose();
            _release.Dispose();
        }
    }

    // Another writer holding a profile's lock (a write that waits inside it) until released.
    private sealed class HeldProfile : IDisposable
    {
        private readonly ManualResetEventSlim _release = new();
        private readonly Task _writer;

        public HeldProfile(Segmentation.Core.Profiles.InMemoryProfileStore store, string key)
        {
            using var holding = new ManualResetEventSlim();
            _writer = Task.Run(() => store.Update(key, (p, _) =>
            {
                holding.Set();
                _release.Wait(TimeSpan.FromSeconds(30));
                return p;
            }));
            Assert.True(holding.Wait(TimeSpan.FromSeconds(30)));
        }

        public Task ReleaseAsync()
        {
            _release.Set();
            return _writer;
        }

        public void Dispose()
        {
            _release.Set();
            _writer.Wait(TimeSpan.FromSeconds(30));
            _release.Dispose();
        }
    }

    // Writes that fail unexpectedly (a defect, not a rejection) for events sent under an anonymous id linked to
    // `user`: the event with a given id for such a write.
    private static Func<string, BehaviourEvent> FailingWrites(TestWorld world, string user)
    {
        world.Ingestion.Identify("a-bad", user);
        world.Store.AfterResolve = key =>
        {
            if (key == "a-bad")
            {
                throw new InvalidOperationException("a defect in this event's write");
            }
        };

        return id => Event(id, "") with { AnonymousId = "a-bad" };
    }

    private Durable Open()
    {
        var durable = new Durable(_dir, Key, Start);
        durable.Restore();
        return durable;
    }

    [Fact]
    public void A_batch_of_events_for_many_users_is_made_durable_with_one_flush_and_restarts_as_acknowledged()
    {
        Dictionary<string, (long Version, int Events)> acknowledged;
        using (var durable = Open())
        {
            var flushes = 0;
            durable.Log.BeforeFlush = () => Interlocked.Increment(ref flushes);

            var results = durable.World.Ingestion.TrackMany(OnePerUser(64)).ToList();

            Assert.All(results, r => Assert.Equal(EventStatus.Accepted, r.Status));
            Assert.Equal(1, flushes); // one per event before: each waited for its own fsync under its user's lock
            acknowledged = results.ToDictionary(r => r.Profile!.UserId, r => (r.Profile!.Version, r.Profile.Events.Count));
        }

        using var restarted = Open();
        Assert.Equal(64, restarted.World.Store.Count);
        foreach (var (user, (version, events)) in acknowledged)
        {
            var profile = restarted.World.Store.Get(user)!;
            Assert.Equal((version, events), (profile.Version, profile.Events.Count));
        }
    }

    [Fact]
    public async Task A_batch_is_neither_seen_nor_counted_until_its_commit_is_on_disk()
    {
        using var durable = Open();
        var world = durable.World;
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        durable.Log.BeforeFlush = () =>
        {
            held.Set();
            release.Wait(TimeSpan.FromSeconds(30));
        };

        var batch = Task.Run(() => world.Ingestion.TrackMany(OnePerUser(8)).ToList());
        Assert.True(held.Wait(TimeSpan.FromSeconds(30)));

        Assert.Null(world.Store.Get("u0"));
        Assert.Equal(0, world.Store.Count);
        Assert.Empty(world.Memberships.SegmentsOf("u7"));
        Assert.Equal(0, world.Ingestion.Events.Quality.Read().Accepted);

        release.Set();
        var results = await batch;

        Assert.All(results, r => Assert.Equal(EventStatus.Accepted, r.Status));
        Assert.Equal(8, world.Store.Count);
        Assert.NotEmpty(world.Memberships.SegmentsOf("u7"));
        Assert.Equal(8, world.Ingestion.Events.Quality.Read().Accepted);
    }

    [Fact]
    public void A_refused_commit_refuses_every_event_of_the_batch_and_the_same_batch_is_taken_whole_once_the_disk_recovers()
    {
        using (var durable = Open())
        {
            var world = durable.World;
            var fail = true;
            durable.Log.BeforeFlush = () =>
            {
                if (fail)
                {
                    throw new IOException("no space left on device");
                }
            };

            Assert.Throws<StorageUnavailableException>(() => world.Ingestion.TrackMany(OnePerUser(16)).ToList());

            Assert.Equal(0, world.Store.Count);
            Assert.Empty(world.Memberships.SegmentsOf("u3"));
            Assert.Equal(0, world.Ingestion.Events.Quality.Read().Accepted);

            fail = false;
            var again = world.Ingestion.TrackMany(OnePerUser(16)).ToList();
            Assert.All(again, r => Assert.Equal(EventStatus.Accepted, r.Status)); // not duplicates: nothing of the refused batch stayed
            Assert.Equal(16, world.Store.Count);
        }

        using var restarted = Open();
        Assert.Equal(16, restarted.World.Store.Count);
        Assert.All(restarted.World.Store.Snapshot(), p => Assert.Single(p.Events));
    }

    [Fact]
    public void In_a_batch_a_user_written_twice_and_a_repeated_event_id_read_as_they_would_one_at_a_time()
    {
        var batch = new[]
        {
            Event("a", "u1"),
            Event("b", "u1", EventTypes.Purchase, 30),
            Event("a", "u1"),
            Event("c", "u2"),
            Event("d", "u1", EventTypes.AddToCart),
        };

        List<EventResult> results;
        using (var durable = Open())
        {
            results = durable.World.Ingestion.TrackMany(batch).ToList();
        }

        Assert.Equal([EventStatus.Accepted, EventStatus.Accepted, EventStatus.Duplicate, EventStatus.Accepted, EventStatus.Accepted], results.Select(r => r.Status));
        Assert.Equal([1, 2, 2, 1, 3], results.Select(r => r.Profile!.Events.Count));
        Assert.True(results[0].Profile!.Version < results[1].Profile!.Version && results[1].Profile!.Version < results[4].Profile!.Version);

        // The same events one at a time, without durability, end in the same profile; the restart replays to it too.
        using var alone = new TestWorld(now: Start);
        foreach (var e in batch)
        {
            alone.Ingestion.Track(e);
        }

        using var restarted = Open();
        var replayed = restarted.World.Store.Get("u1")!;
        var expected = alone.Store.Get("u1")!;
        Assert.Equal(expected.Events.Select(e => e.EventId), replayed.Events.Select(e => e.EventId));
        Assert.Equal(expected.Revenue, replayed.Revenue);
        Assert.Equal(expected.CurrentSegment, replayed.CurrentSegment);
        Assert.Equal(results[4].Profile!.Version, replayed.Version);
    }

    [Fact]
    public void An_event_past_the_profile_limit_in_a_batch_is_rejected_by_itself()
    {
        using var durable = Open();
        durable.World.Ingestion.Events.EventLimit = 2;

        var results = durable.World.Ingestion.TrackMany([Event("a", "u1"), Event("b", "u1"), Event("c", "u1"), Event("d", "u2")]).ToList();

        Assert.Equal([EventStatus.Accepted, EventStatus.Accepted, EventStatus.Rejected, EventStatus.Accepted], results.Select(r => r.Status));
        Assert.Equal("events[2]", Assert.Single(results[2].Violations).Field);
        Assert.Equal(2, durable.World.Store.Get("u1")!.Events.Count);
    }

    [Fact]
    public async Task Batches_writing_the_same_users_in_opposite_orders_and_single_writes_between_them_all_finish_and_lose_nothing()
    {
        const int Rounds = 40, Users = 12;
        using (var durable = Open())
        {
            var world = durable.World;
            durable.Log.BeforeFlush = () => Thread.Sleep(1); // a slow disk, so that batches hold their users while others wait
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
            {
                for (var round = 0; round < Rounds; round++)
                {
                    var users = Enumerable.Range(0, Users).Select(u => w % 2 == 0 ? u : Users - 1 - u);
                    var events = users.Select(u => Event($"w{w}-r{round}-u{u}", $"u{u}")).ToList();
                    if (w == 3)
                    {
                        foreach (var e in events)
                        {
                            world.Ingestion.Track(e); // one at a time, between the batches
                        }
                    }
                    else
                    {
                        Assert.All(world.Ingestion.TrackMany(events), r => Assert.Equal(EventStatus.Accepted, r.Status));
                    }
                }
            })).ToArray();

            await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(world.Store.Snapshot(), p => Assert.Equal(4 * Rounds, p.Events.Count));
        }

        using var restarted = Open();
        Assert.Equal(Users, restarted.World.Store.Count);
        Assert.All(restarted.World.Store.Snapshot(), p => Assert.Equal(4 * Rounds, p.Events.Count));
    }

    [Fact]
    public async Task Single_events_of_concurrent_callers_that_wait_meanwhile_share_one_commit_each_answered_as_Track_would()
    {
        using (var durable = Open())
        {
            var ingestion = durable.World.Ingestion;
            ingestion.Events.EventLimit = 1;
            using var flush = new HeldFirstFlush(durable.Log);

            var first = ingestion.TrackAsync(Event("first", "u-first"));
            flush.WaitHeld();
            var waiting = Enumerable.Range(0, 40).Select(i => ingestion.TrackAsync(Event($"e{i}", $"u{i}"))).ToList();
            var invalid = ingestion.TrackAsync(Event("bad", "u-bad", type: ""));
            var overLimit = ingestion.TrackAsync(Event("second", "u-first"));
            var again = ingestion.TrackAsync(Event("first", "u-first"));
            flush.Release();

            Assert.False((await first).Duplicate);
            Assert.All(await Task.WhenAll(waiting), r => Assert.False(r.Duplicate));
            Assert.Equal("event.type", Assert.Single((await Assert.ThrowsAsync<Validation.ValidationException>(() => invalid)).Violations).Field);
            await Assert.ThrowsAsync<Validation.LimitExceededException>(() => overLimit);
            Assert.True((await again).Duplicate);
            Assert.Equal(2, flush.Count); // the first event's commit, then one for the 40 that waited behind it
        }

        using var restarted = Open();
        Assert.Equal(41, restarted.World.Store.Count);
    }

    [Fact]
    public async Task A_refused_commit_fails_every_waiting_caller_and_applies_none_of_their_events()
    {
        using var durable = Open();
        var ingestion = durable.World.Ingestion;
        using var flush = new HeldFirstFlush(durable.Log, failSecond: true);

        var first = ingestion.TrackAsync(Event("first", "u-first"));
        flush.WaitHeld();
        var refused = Enumerable.Range(0, 10).Select(i => ingestion.TrackAsync(Event($"e{i}", $"u{i}"))).ToList();
        flush.Release();

        await first;
        foreach (var call in refused)
        {
            await Assert.ThrowsAsync<StorageUnavailableException>(() => call);
        }

        Assert.Equal(1, durable.World.Store.Count);
        Assert.False((await ingestion.TrackAsync(Event("e0", "u0"))).Duplicate); // the disk is back: taken, not a duplicate
    }

    [Fact]
    public async Task A_commit_that_fails_after_a_split_refuses_only_its_own_events_and_those_after_them_and_the_earlier_commit_keeps_its_results()
    {
        using var durable = Open();
        var world = durable.World;
        var flushes = 0;
        durable.Log.BeforeFlush = () =>
        {
            if (Interlocked.Increment(ref flushes) == 2)
            {
                throw new IOException("no space left on device");
            }
        };

        // Another writer holds u-b's lock, so the batch commits what it prepared before u-b (flush 1), then waits for it.
        using var held = new HeldProfile(world.Store, "u-b");

        var refusals = new Exception?[3];
        var batch = Task.Run(() => world.Ingestion.Events.TrackAll(ThreeUsers(), refusals));
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref flushes) == 1, TimeSpan.FromSeconds(30)));
        await held.ReleaseAsync();
        var results = await batch;

        Assert.Equal([EventStatus.Accepted, EventStatus.Rejected, EventStatus.Rejected], results.Select(r => r.Status));
        Assert.Null(refusals[0]);
        Assert.IsType<StorageUnavailableException>(refusals[1]);
        Assert.Same(refusals[1], refusals[2]);
        Assert.Empty(results[1].Violations);
        Assert.NotNull(world.Store.Get("u-a"));
        Assert.Null(world.Store.Get("u-b"));
        Assert.Null(world.Store.Get("u-c"));
        Assert.Equal(1, world.Ingestion.Events.Quality.Read().Accepted);
    }

    [Fact]
    public async Task A_commit_that_a_split_makes_early_and_that_fails_refuses_the_event_waiting_and_every_event_after_it()
    {
        using var durable = Open();
        var world = durable.World;
        durable.Log.BeforeFlush = () => throw new IOException("no space left on device");
        using var held = new HeldProfile(world.Store, "u-b");

        var refusals = new Exception?[3];
        var results = world.Ingestion.Events.TrackAll(ThreeUsers(), refusals);
        await held.ReleaseAsync();

        Assert.All(results, r => Assert.Equal(EventStatus.Rejected, r.Status));
        Assert.All(refusals, r => Assert.IsType<StorageUnavailableException>(r));
        Assert.Equal(0, world.Store.Count);
    }

    [Fact]
    public void An_event_whose_write_fails_unexpectedly_is_refused_alone_and_queues_nothing_for_the_commit()
    {
        using (var durable = Open())
        {
            var world = durable.World;
            world.Store.AfterResolve = key =>
            {
                if (key == "u-bad")
                {
                    throw new InvalidOperationException("a defect in this event's write");
                }
            };

            var refusals = new Exception?[3];
            var results = world.Ingestion.Events.TrackAll(
                [new(0, Event("e-a", "u-a"), "events[0]"), new(1, Event("e-bad", "u-bad"), "events[1]"), new(2, Event("e-c", "u-c"), "events[2]")], refusals);

            Assert.Equal([EventStatus.Accepted, EventStatus.Rejected, EventStatus.Accepted], results.Select(r => r.Status));
            Assert.Equal("a defect in this event's write", Assert.IsType<InvalidOperationException>(refusals[1]).Message);
            Assert.Null(refusals[0]);
            Assert.Null(refusals[2]);
        }

        using var restarted = Open();
        Assert.Equal(["u-a", "u-c"], restarted.World.Store.Snapshot().Select(p => p.UserId).Order());
    }

    [Fact]
    public async Task Decisions_carrying_a_page_view_wait_for_their_commit_together_and_decide_on_what_was_recorded()
    {
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        using var flush = new HeldFirstFlush(durable.Log);

        var first = world.Ingestion.TrackAsync(Event("first", "u-first"));
        flush.WaitHeld();
        var decisions = Enumerable.Range(0, 20)
            .Select(i => decider.DecideAsync(PageOf($"u{i}"), [Event($"pv{i}", $"u{i}", EventTypes.Purchase, 50)]))
            .ToList();
        Assert.All(decisions, d => Assert.False(d.IsCompleted)); // waiting for the commit, not holding a thread each
        flush.Release();
        await first;

        foreach (var (decided, i) in (await Task.WhenAll(decisions)).Select((d, i) => (d, i)))
        {
            Assert.Equal(EventStatus.Accepted, Assert.Single(decided.Events).Status);
            Assert.Equal(world.Store.Get($"u{i}")!.CurrentSegment, decided.Decision.Winner.Id); // decided after the purchase
        }

        Assert.Equal(2, flush.Count); // the held commit, then one for the twenty page views that waited behind it
    }

    [Fact]
    public async Task A_decision_abandoned_while_its_events_commit_is_not_made_and_its_events_stay_recorded()
    {
        // Regression (review): the deadline was checked before the events only; a commit that outlasted the caller's
        // deadline was followed by a decision the caller never received, counted in the KPIs and exposing the user to an
        // experiment arm they never saw.
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        using var flush = new HeldFirstFlush(durable.Log);
        using var abandoned = new CancellationTokenSource();
        var issued = world.Measurement.Ledger.Issued;

        var decision = decider.DecideAsync(PageOf("u1"), [Event("pv", "")], abandoned.Token);
        flush.WaitHeld();
        await abandoned.CancelAsync();
        flush.Release();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decision);
        Assert.Equal("pv", Assert.Single(world.Store.Get("u1")!.Events).EventId); // recorded
        Assert.Equal(issued, world.Measurement.Ledger.Issued); // and no decision issued
    }

    [Fact]
    public async Task A_decision_carrying_several_events_records_them_in_order_with_one_commit()
    {
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        var flushes = 0;
        durable.Log.BeforeFlush = () => Interlocked.Increment(ref flushes);

        var decided = await decider.DecideAsync(
            PageOf("u1"),
            [Event("pv1", "u1"), Event("buy", "", EventTypes.Purchase, 80), Event("other", "u2"), Event("pv1", "u1"), Event("pv2", "")]);

        // Regression: each event waited for its own commit in a row (three here: the duplicate writes nothing).
        Assert.Equal(1, Volatile.Read(ref flushes));
        Assert.Equal([EventStatus.Accepted, EventStatus.Accepted, EventStatus.Rejected, EventStatus.Duplicate, EventStatus.Accepted], decided.Events.Select(r => r.Status));
        Assert.Equal([0, 1, 2, 3, 4], decided.Events.Select(r => r.Index));
        Assert.Equal("events[2].user_id", Assert.Single(decided.Events[2].Violations).Field);
        var profile = world.Store.Get("u1")!;
        Assert.Equal(3, profile.Events.Count);
        Assert.Equal(profile.CurrentSegment, decided.Decision.Winner.Id); // decided on what was recorded
        Assert.Null(world.Store.Get("u2"));
    }

    [Fact]
    public async Task A_decision_whose_event_cannot_be_written_fails_and_applies_none_of_the_events_after_it()
    {
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        var bad = FailingWrites(world, "u1");

        await Assert.ThrowsAsync<InvalidOperationException>(() => decider.DecideAsync(
            PageOf("u1"),
            [Event("pv0", ""), bad("pv1"), Event("pv2", "")]));

        // Regression: the events of one call shared a batch, and those after the failed one were applied although the
        // call failed (one at a time, as before the batch, they were never tried).
        Assert.Equal(["pv0"], world.Store.Get("u1")!.Events.Select(e => e.EventId));
    }

    [Fact]
    public void A_streams_group_of_messages_shares_one_commit_and_each_message_gets_its_own_results_indexed_over_the_stream()
    {
        using var durable = Open();
        var stream = durable.World.Ingestion.OpenStream();
        var flushes = 0;
        durable.Log.BeforeFlush = () => Interlocked.Increment(ref flushes);

        var first = stream.Record([new StreamMessage(Event("s0", "u1"), [])]);
        var group = stream.Record(
        [
            new StreamMessage(Event("s1", "u1"), []),
            new StreamMessage(Event("s2", "u2"), [Event("s3", "u2"), Event("bad", ""), Event("s1", "u1")]),
            new StreamMessage(null, [Event("s4", "u3")]),
        ]);

        Assert.Equal(EventStream.MaxGroupedEvents, stream.GroupLimit);
        Assert.Null(first.Failure);
        Assert.Equal(0, Assert.Single(Assert.Single(first.Answered)).Index);
        Assert.Null(group.Failure);
        Assert.Equal([1, 4, 1], group.Answered.Select(m => m.Count));
        Assert.Equal([1, 2, 3, 4, 5, 6], group.Answered.SelectMany(m => m).Select(r => r.Index));
        Assert.Equal(
            [EventStatus.Accepted, EventStatus.Accepted, EventStatus.Accepted, EventStatus.Rejected, EventStatus.Duplicate, EventStatus.Accepted],
            group.Answered.SelectMany(m => m).Select(r => r.Status));
        Assert.Equal("events[1].user_id", Assert.Single(group.Answered[1][2].Violations).Field); // named within its message
        Assert.Equal(2, Volatile.Read(ref flushes)); // one per group
        Assert.Equal(7, stream.Received);
    }

    [Fact]
    public void A_streams_event_whose_write_fails_unexpectedly_ends_the_group_there_and_no_event_of_a_later_message_is_applied()
    {
        using var durable = Open();
        var world = durable.World;
        var bad = FailingWrites(world, "u1");

        var recorded = world.Ingestion.OpenStream().Record(
        [
            new StreamMessage(Event("m0", "u1"), []),
            new StreamMessage(null, [Event("m1", "u1"), bad("m2"), Event("m3", "u2")]),
            new StreamMessage(Event("m4", "u1"), []),
            new StreamMessage(null, [Event("m5", "u3")]),
        ]);

        // The first message is answered; the stream ends at the second with the failure.
        Assert.Equal(["m0"], recorded.Answered.SelectMany(m => m).Select(r => r.EventId));
        Assert.IsType<InvalidOperationException>(recorded.Failure);

        // Regression: the events after the one that failed were still applied (one client's events did not chain), although
        // the stream ended before answering them, so a client sending them again found duplicates it had never been told of.
        Assert.Equal(["m0", "m1"], world.Store.Get("u1")!.Events.Select(e => e.EventId));
        Assert.Null(world.Store.Get("u2"));
        Assert.Null(world.Store.Get("u3"));
    }

    [Fact]
    public void Without_durability_a_stream_records_each_message_as_it_is_read()
    {
        using var world = new TestWorld(now: Start);
        var stream = world.Ingestion.OpenStream();

        Assert.Equal(1, stream.GroupLimit);
        Assert.Equal(EventStatus.Accepted, stream.RecordOne(Event("e0", "u1")).Status);
        Assert.Equal([1, 2], stream.Record([new StreamMessage(null, [Event("e1", "u1"), Event("e2", "u1")])]).Answered.Single().Select(r => r.Index));
        Assert.Throws<ArgumentException>(() => stream.Record([new StreamMessage(null, [])]));
    }

    [Fact]
    public async Task A_decision_whose_commit_fails_reports_each_of_its_events_not_recorded_and_still_decides()
    {
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        durable.Log.BeforeFlush = () => throw new IOException("no space left on device");

        var decided = await decider.DecideAsync(
            PageOf("u1"),
            [Event("pv1", ""), Event("buy", "", EventTypes.Purchase, 80)]);

        Assert.Equal(["events[0]", "events[1]"], decided.Events.Select(r => Assert.Single(r.Violations).Field));
        Assert.All(decided.Events, r => Assert.Contains("not recorded", Assert.Single(r.Violations).Description, StringComparison.Ordinal));
        Assert.NotNull(decided.Decision.Winner);
        Assert.Null(world.Store.Get("u1"));
    }

    [Fact]
    public async Task A_decisions_events_are_never_split_between_two_commits_so_a_failed_commit_never_keeps_a_later_event_and_loses_an_earlier()
    {
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        using var flush = new HeldFirstFlush(durable.Log, failSecond: true);

        var first = world.Ingestion.TrackAsync(Event("first", "u-first"));
        flush.WaitHeld();
        // 250 single events wait, then a decision's 10: they do not fit one batch (256) with the singles, so they wait whole
        // for the next one rather than 6 of them sharing the singles' commit.
        var singles = Enumerable.Range(0, 250).Select(i => world.Ingestion.TrackAsync(Event($"s{i}", $"u{i}"))).ToList();
        var decision = decider.DecideAsync(
            PageOf("page-user"),
            [.. Enumerable.Range(0, 10).Select(i => Event($"pv{i}", ""))]);
        flush.Release();
        await first;

        foreach (var single in singles)
        {
            await Assert.ThrowsAsync<StorageUnavailableException>(() => single);
        }

        var decided = await decision;
        Assert.All(decided.Events, r => Assert.Equal(EventStatus.Accepted, r.Status));
        Assert.Equal(10, world.Store.Get("page-user")!.Events.Count);
        Assert.Equal(3, flush.Count);
    }

    [Fact]
    public async Task A_decision_carrying_an_event_while_the_service_stops_still_decides_and_reports_the_event_not_recorded()
    {
        using var durable = Open();
        var world = durable.World;
        var decider = world.Get<TrackAndDecide>();
        world.Ingestion.Dispose(); // the host stops: the event batcher takes nothing more

        var decided = await decider.DecideAsync(PageOf("u1"), [Event("pv", "u1")]);

        var result = Assert.Single(decided.Events);
        Assert.Equal(EventStatus.Rejected, result.Status);
        Assert.Contains("not recorded", Assert.Single(result.Violations).Description, StringComparison.Ordinal);
        Assert.NotNull(decided.Decision.Winner);
        Assert.Null(world.Store.Get("u1"));
    }
}
