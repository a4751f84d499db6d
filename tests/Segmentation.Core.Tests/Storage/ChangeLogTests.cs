using Segmentation.Core.Application.Changes;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

public sealed class ChangeLogTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-log-").FullName;

    private string LogPath => FileChangeLog.SegmentPath(_dir, 1);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static BehaviourEvent Event(string id, string user, string type, DateTimeOffset at, double value = 0, string anonymous = "") => TestEvents.Make(id, user, type, at, value, anonymous);

    // A mixed workload: events for 20 users (some late, some duplicates), traits, and identity merges.
    private static void Write(TestWorld world)
    {
        var types = new[] { EventTypes.PageView, EventTypes.ProductView, EventTypes.AddToCart, EventTypes.Purchase, EventTypes.Search };
        for (var i = 0; i < 400; i++)
        {
            var user = $"u{i % 20}";
            var type = types[i % types.Length];
            world.Ingestion.Track(Event($"e{i}", user, type, Now.AddHours(-(i * 7 % 500)), value: type == EventTypes.Purchase ? 10 + i : 0));
        }

        world.Ingestion.Track(Event("e3", "u3", EventTypes.Purchase, Now.AddHours(-1), value: 13)); // duplicate
        for (var i = 0; i < 5; i++)
        {
            world.Ingestion.Track(Event($"anon-e{i}", "", EventTypes.PageView, Now.AddMinutes(-i), anonymous: $"anon{i}"));
        }

        world.Ingestion.Identify("anon0", "u0");
        world.Ingestion.Identify("anon1", "u1");
        world.Ingestion.Track(Event("after-merge", "", EventTypes.PageView, Now, anonymous: "anon0"));
        world.Ingestion.SetTraits("u2", new Dictionary<string, object?> { ["preferred_category"] = "toys", ["vip"] = true }, "crm", AttributeLayer.ZeroParty, Now.AddDays(-1));
        world.Ingestion.SetTraits("u2", new Dictionary<string, object?> { ["preferred_category"] = "books" }, "quiz", AttributeLayer.ZeroParty, Now);
        world.Ingestion.SetTraits("u5", new Dictionary<string, object?> { ["preferred_category"] = "garden" }, "enrich", AttributeLayer.FirstParty, null);
    }

    private static void AssertSame(TestWorld expected, TestWorld actual)
    {
        var users = expected.Store.Snapshot().Select(p => p.UserId).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(users, actual.Store.Snapshot().Select(p => p.UserId).Order(StringComparer.Ordinal));
        Assert.Equal(23, users.Count); // 20 users + 3 unmerged anonymous visitors
        foreach (var user in users)
        {
            var a = expected.Store.Get(user)!;
            var b = actual.Store.Get(user)!;
            Assert.Equal(a.Events.Select(e => e.ToString()), b.Events.Select(e => e.ToString()));
            Assert.Equal(a.EventIds.Order(StringComparer.Ordinal), b.EventIds.Order(StringComparer.Ordinal));
            Assert.Equal(
                (a.TotalEvents, a.Orders, a.Revenue, a.CartItems, a.FirstSeenTicks, a.LastSeenTicks, a.FirstPurchaseTicks, a.LastPurchaseTicks, a.Sessions),
                (b.TotalEvents, b.Orders, b.Revenue, b.CartItems, b.FirstSeenTicks, b.LastSeenTicks, b.FirstPurchaseTicks, b.LastPurchaseTicks, b.Sessions));
            Assert.Equal(
                a.Attributes.Values.Select(x => (x.Name, Value: x.Value.ToString(), x.Layer, x.Source, x.UpdatedAt)).OrderBy(x => x.Name, StringComparer.Ordinal),
                b.Attributes.Values.Select(x => (x.Name, Value: x.Value.ToString(), x.Layer, x.Source, x.UpdatedAt)).OrderBy(x => x.Name, StringComparer.Ordinal));
            Assert.Equal(a.CurrentSegment, b.CurrentSegment);
            Assert.Equal(expected.Store.LinkedIds(user), actual.Store.LinkedIds(user));
        }
    }

    private TestWorld Reopen(out LogReplay recovery, out FileChangeLog log)
    {
        log = new FileChangeLog(_dir);
        var world = new TestWorld(now: Now, changeLog: log);
        recovery = log.Recover(world.Ingestion.Replay);
        return world;
    }

    [Fact]
    public void Changes_written_then_replayed_rebuild_identical_profiles()
    {
        using var first = Reopen(out var empty, out var log);
        Assert.Equal(0, empty.Records);
        Write(first);
        log.Dispose();
        Assert.Equal(400 + 5 + 2 + 1 + 3, FileChangeLog.ReadAll(_dir, out var dropped).Count); // the duplicate is not logged
        Assert.Equal(0, dropped);

        using var second = Reopen(out var recovery, out var log2);
        using (log2)
        {
            Assert.Equal(411, recovery.Records);
            Assert.Equal(0, recovery.DroppedBytes);
            AssertSame(first, second);
            Assert.True(second.Ingestion.Track(Event("e10", "u10", EventTypes.PageView, Now)).Duplicate);
        }
    }

    [Fact]
    public void Garbage_after_the_last_record_is_truncated_and_earlier_records_are_kept()
    {
        using (var world = Reopen(out _, out var log))
        {
            Write(world);
            log.Dispose();
        }

        var good = new FileInfo(LogPath).Length;
        var garbage = "\u0007garbage from a torn write that never finished"u8.ToArray();
        using (var f = new FileStream(LogPath, FileMode.Append))
        {
            f.Write(garbage);
        }

        using var reopened = Reopen(out var recovery, out var log2);
        using (log2)
        {
            Assert.Equal(411, recovery.Records);
            Assert.Equal(garbage.Length, recovery.DroppedBytes);
            Assert.Equal(good, new FileInfo(LogPath).Length);
            reopened.Ingestion.Track(Event("new", "u1", EventTypes.PageView, Now));
        }

        Assert.Equal(412, FileChangeLog.ReadAll(_dir, out var dropped).Count);
        Assert.Equal(0, dropped);
    }

    [Fact]
    public void A_record_cut_mid_write_is_truncated_and_the_records_before_it_are_kept()
    {
        using (var world = Reopen(out _, out var log))
        {
            Write(world);
            log.Dispose();
        }

        var length = new FileInfo(LogPath).Length;
        using (var f = new FileStream(LogPath, FileMode.Open))
        {
            f.SetLength(length - 10); // the last record loses its end
        }

        using var reopened = Reopen(out var recovery, out var log2);
        using (log2)
        {
            Assert.Equal(410, recovery.Records);
            Assert.True(recovery.DroppedBytes > 0);
            Assert.Equal(length - 10 - recovery.DroppedBytes, new FileInfo(LogPath).Length);
            Assert.Equal(0, reopened.Store.Get("u5")!.Attributes.Values.Count(a => a.Source == "enrich")); // the torn traits write is gone
            Assert.Equal(20, reopened.Store.Get("u0")!.Events.Count(e => e.EventId.StartsWith('e')));
        }
    }

    [Fact]
    public void A_corrupt_record_before_the_tail_stops_recovery_and_changes_nothing()
    {
        using (var world = Reopen(out _, out var log))
        {
            Write(world);
            log.Dispose();
        }

        var bytes = File.ReadAllBytes(LogPath);
        bytes[bytes.Length / 2] ^= 0x20; // flip one bit in a record in the middle
        File.WriteAllBytes(LogPath, bytes);

        using var log2 = new FileChangeLog(_dir);
        using var world2 = new TestWorld(now: Now, changeLog: log2);
        var ex = Assert.Throws<ChangeLogCorruptException>(() => log2.Recover(world2.Ingestion.Replay));
        Assert.Contains("corrupt at byte", ex.Message);
        Assert.Equal(bytes, File.ReadAllBytes(LogPath));
        Assert.Throws<ChangeLogCorruptException>(() => FileChangeLog.ReadAll(_dir, out _));
    }

    [Fact]
    public void Concurrent_writers_share_fsyncs_and_every_acknowledged_record_is_in_the_log()
    {
        using (var log = new FileChangeLog(_dir))
        {
            log.Recover(_ => { });
            log.BeforeFlush = () => Thread.Sleep(2); // a slow disk, so that writers queue up behind each fsync
            // Eight threads of their own, not Parallel.For: on a busy thread pool (the other tests of the run) that ran
            // every iteration on the calling thread, one writer at a time, and there was nothing to share.
            using var ready = new Barrier(8);
            var writers = Enumerable.Range(0, 8).Select(w => new Thread(() =>
            {
                ready.SignalAndWait();
                for (var i = 0; i < 200; i++)
                {
                    log.Append(new MergeChange($"a{w}-{i}", $"u{w}"));
                }
            })).ToList();
            writers.ForEach(t => t.Start());
            writers.ForEach(t => t.Join());
            Assert.True(log.Commits < 1600, $"{log.Commits} fsyncs for 1600 records: no group commit");
        }

        var records = FileChangeLog.ReadAll(_dir, out _).Cast<MergeChange>().ToList();
        Assert.Equal(1600, records.Select(r => r.AnonymousId).Distinct().Count());
        for (var w = 0; w < 8; w++)
        {
            Assert.Equal(Enumerable.Range(0, 200).Select(i => $"a{w}-{i}"), records.Where(r => r.UserId == $"u{w}").Select(r => r.AnonymousId)); // per-writer order kept
        }
    }

    [Fact]
    public async Task After_a_failed_write_whose_cut_back_failed_too_the_next_write_cuts_back_first_and_no_refused_record_is_replayed()
    {
        using (var log = new FileChangeLog(_dir))
        {
            log.Recover(_ => { });
            log.Append(new MergeChange("a-0", "u"));

            // The next batch is held at its fsync while two more records queue behind it, to be written as one batch.
            using var held = new ManualResetEventSlim();
            using var release = new ManualResetEventSlim();
            var (flushes, cutBacks) = (0, 0);
            log.BeforeFlush = () =>
            {
                switch (Interlocked.Increment(ref flushes))
                {
                    case 1:
                        held.Set();
                        release.Wait();
                        break;
                    case 2:
                        throw new IOException("the disk failed the fsync"); // a-2 and a-3 are in the file, not durable
                }
            };
            log.BeforeCutBack = () =>
            {
                if (Interlocked.Increment(ref cutBacks) == 1)
                {
                    throw new IOException("the disk failed the cut-back too");
                }
            };

            var first = Task.Run(() => log.Append(new MergeChange("a-1", "u")));
            held.Wait();
            var refused = new[] { Task.Run(() => log.Append(new MergeChange("a-2", "u"))), Task.Run(() => log.Append(new MergeChange("a-3", "u"))) };
            SpinWait.SpinUntil(() => log.PendingRecords == 2, TimeSpan.FromSeconds(30));
            Assert.Equal(2, log.PendingRecords);
            release.Set();
            await first;
            foreach (var task in refused)
            {
                await Assert.ThrowsAnyAsync<Exception>(() => task);
            }

            log.Append(new MergeChange("a-4", "u")); // as long as a-2: written over it, a-3 would follow intact
        }

        Assert.Equal(["a-0", "a-1", "a-4"], FileChangeLog.ReadAll(_dir, out _).Cast<MergeChange>().Select(r => r.AnonymousId));
    }

    [Fact]
    public void A_rotation_whose_manifest_was_renamed_but_not_flushed_keeps_the_segment_the_manifest_names_and_every_record()
    {
        using (var log = new FileChangeLog(_dir))
        {
            log.Recover(_ => { });
            log.Append(new MergeChange("a-0", "u"));

            // The manifest naming segment 2 is renamed into place; flushing the directory after the rename fails.
            log.Data.BeforeDirectorySync = () => throw new IOException("the disk failed the directory flush");
            Assert.ThrowsAny<IOException>(() => log.Rotate());
            log.Data.BeforeDirectorySync = null;

            log.Append(new MergeChange("a-1", "u"));
        }

        // The restart finds every file the manifest names (it named segment 2, which was deleted) and every record.
        using var reopened = new FileChangeLog(_dir);
        var replayed = new List<string>();
        reopened.Recover(change => replayed.Add(((MergeChange)change).AnonymousId));
        Assert.Equal(["a-0", "a-1"], replayed);
    }

    [Fact]
    public void Append_before_recover_is_refused()
    {
        using var log = new FileChangeLog(_dir);
        Assert.Throws<InvalidOperationException>(() => log.Append(new MergeChange("a", "b")));
    }

    [Fact]
    public async Task A_rotation_is_not_held_off_by_writers_arriving_during_every_fsync()
    {
        // Regression: a rotation waited for the writer to be idle with nothing pending, but appends went on joining the
        // next batch meanwhile; with a writer arriving during every fsync (a busy server) it never started, and the
        // compaction (and an erasure waiting for it) waited as long as the traffic lasted.
        using var log = new FileChangeLog(_dir);
        log.Recover(_ => { });
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        using var waiting = new ManualResetEventSlim();
        var (flushes, fed) = (0, 0);
        var appends = new System.Collections.Concurrent.ConcurrentQueue<Task>();
        log.AppendWaitsForRotation = waiting.Set;
        log.BeforeFlush = () =>
        {
            if (Interlocked.Increment(ref flushes) == 1)
            {
                held.Set();
                release.Wait();
            }

            if (log.Segment == 1 && Volatile.Read(ref fed) < 50) // until the rotation has switched segments
            {
                // A writer arrives during this fsync: it joins the next batch, or waits for the rotation.
                var n = Interlocked.Increment(ref fed);
                waiting.Reset();
                appends.Enqueue(Task.Run(() => log.Append(new MergeChange($"fed-{n}", "u"))));
                SpinWait.SpinUntil(() => log.PendingRecords > 0 || waiting.IsSet, TimeSpan.FromSeconds(30));
            }
        };

        var first = Task.Run(() => log.Append(new MergeChange("a-0", "u")));
        held.Wait(); // a batch is at its fsync when the rotation starts
        var rotation = Task.Run(log.Rotate);
        SpinWait.SpinUntil(() => log.RotationsWaiting > 0, TimeSpan.FromSeconds(30));
        release.Set();

        Assert.Equal(2, await rotation);
        await first;
        await Task.WhenAll(appends);
        Assert.True(fed <= 3, $"{fed} writers arrived before the rotation started");
        Assert.Equal(1 + fed, FileChangeLog.ReadAll(_dir, out _).Count);
    }
}
