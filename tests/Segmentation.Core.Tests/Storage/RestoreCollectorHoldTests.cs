using System.Runtime;
using System.Security.Cryptography;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>
/// The no-GC region a large snapshot is restored in. A region is process-wide, so these tests run alone: another
/// test's allocations would count against it (or find it open).
/// </summary>
[Collection(Alone.Name)]
public sealed class RestoreCollectorHoldTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-hold-").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
        {
            GC.EndNoGCRegion(); // a failed assertion must not leave the collector off for the tests after it
        }
    }

    [Fact]
    public void The_collector_stays_off_inside_the_region_and_runs_again_after_it()
    {
        var hold = RestoreCollectorHold.TryBegin(snapshotBytes: 40L << 20);
        Assert.NotNull(hold);
        try
        {
            Assert.Equal(CollectorHoldOutcome.Held, hold.Outcome);
            Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            Assert.InRange(hold.Bytes, RestoreCollectorHold.MinRegionBytes, (long)((40L << 20) * RestoreCollectorHold.AllocatedPerSnapshotByte));
            var collections = GC.CollectionCount(0); // opening the region may collect once, to make room
            Allocate(megabytes: 32);
            Assert.Equal(collections, GC.CollectionCount(0));
        }
        finally
        {
            hold.Dispose();
        }

        Assert.Equal(CollectorHoldOutcome.Held, hold.Outcome);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }

    [Fact]
    public void A_restore_that_allocates_past_the_region_ends_it_without_an_error()
    {
        var hold = RestoreCollectorHold.TryBegin(snapshotBytes: 1, minSnapshotBytes: 0);
        Assert.NotNull(hold);
        Assert.Equal((CollectorHoldOutcome.Held, RestoreCollectorHold.MinRegionBytes), (hold.Outcome, hold.Bytes));
        var collections = GC.CollectionCount(0);
        Allocate(megabytes: 3 * (int)(RestoreCollectorHold.MinRegionBytes >> 20));
        Assert.True(GC.CollectionCount(0) > collections);

        hold.Dispose();
        Assert.Equal(CollectorHoldOutcome.EndedEarly, hold.Outcome);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }

    [Fact]
    public void A_hold_whose_region_ended_leaves_a_region_opened_after_it_open()
    {
        var first = RestoreCollectorHold.TryBegin(snapshotBytes: 1, minSnapshotBytes: 0)!;
        Allocate(megabytes: 3 * (int)(RestoreCollectorHold.MinRegionBytes >> 20)); // the first region ends
        var second = RestoreCollectorHold.TryBegin(snapshotBytes: 1, minSnapshotBytes: 0)!;
        Assert.Equal(CollectorHoldOutcome.Held, second.Outcome);

        first.Dispose();
        Assert.Equal(CollectorHoldOutcome.EndedEarly, first.Outcome);
        Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode); // the second region is still open

        second.Dispose();
        second.Dispose(); // once
        Assert.Equal(CollectorHoldOutcome.Held, second.Outcome);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }

    [Fact]
    public void Small_snapshots_are_not_held_and_a_second_region_is_refused()
    {
        Assert.Null(RestoreCollectorHold.TryBegin(RestoreCollectorHold.MinSnapshotBytes - 1));
        Assert.Null(RestoreCollectorHold.TryBegin(0, minSnapshotBytes: 0));

        var first = RestoreCollectorHold.TryBegin(RestoreCollectorHold.MinSnapshotBytes)!;
        Assert.Equal(CollectorHoldOutcome.Held, first.Outcome);
        var second = RestoreCollectorHold.TryBegin(RestoreCollectorHold.MinSnapshotBytes)!;
        Assert.Equal(CollectorHoldOutcome.Refused, second.Outcome); // one region per process
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode); // and the runtime ends the open one when asked for another

        second.Dispose();
        first.Dispose();
        Assert.Equal((CollectorHoldOutcome.EndedEarly, CollectorHoldOutcome.Refused), (first.Outcome, second.Outcome));
    }

    [Fact]
    public void The_region_leaves_half_the_memory_the_collector_may_use()
    {
        var half = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;
        var largest = RestoreCollectorHold.RegionBytes(long.MaxValue / 8);
        Assert.InRange(largest, 0, half / 1.05);
        Assert.True(largest < half - GC.GetTotalMemory(forceFullCollection: false)); // what the heap holds is not given away

        // Below the cap, the region is the snapshot's bytes times the allowance.
        var snapshot = Math.Min(100L << 20, (long)(largest / RestoreCollectorHold.AllocatedPerSnapshotByte / 2));
        Assert.Equal(Math.Max((long)(snapshot * RestoreCollectorHold.AllocatedPerSnapshotByte), RestoreCollectorHold.MinRegionBytes), RestoreCollectorHold.RegionBytes(snapshot));
    }

    [Fact]
    public async Task A_snapshot_restored_with_the_collector_held_off_holds_the_same_profiles()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var expected = new Dictionary<string, (long Version, int Events, double Revenue)>(StringComparer.Ordinal);
        using (var first = new Durable(_dir, key))
        {
            first.Restore();
            for (var i = 0; i < 300; i++)
            {
                var type = i % 3 == 0 ? EventTypes.Purchase : EventTypes.PageView;
                first.World.Ingestion.Track(TestEvents.Make($"e{i}", $"u{i % 20}", type, Now.AddMinutes(-i), value: type == EventTypes.Purchase ? 5 + i : 0));
            }

            await first.Compactor.CompactAsync();
            foreach (var p in first.World.Store.Snapshot())
            {
                expected[p.UserId] = (p.Version, p.Events.Count, p.Revenue);
            }

            first.Log.Dispose();
        }

        using var second = new Durable(_dir, key);
        second.Compactor.CollectorHoldFrom = 0; // the snapshot is a few kilobytes: hold the collector off all the same
        second.Restore();

        Assert.Equal(CollectorHoldOutcome.Held, second.Compactor.Last!.CollectorHold);
        Assert.Equal(RestoreCollectorHold.MinRegionBytes, second.Compactor.Last.CollectorHoldBytes);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        Assert.Equal(expected.Count, second.World.Store.Count);
        foreach (var (user, (version, events, revenue)) in expected)
        {
            var p = second.World.Store.Get(user)!;
            Assert.Equal((version, events, revenue), (p.Version, p.Events.Count, p.Revenue));
        }
    }

    [Fact]
    public void A_file_store_with_the_hold_turned_off_restores_with_the_collector_as_usual()
    {
        using (var on = new FileStore(Path.Combine(_dir, "on"), new InMemoryProfileStore(), pii: null, state: null))
        {
            Assert.Equal(RestoreCollectorHold.MinSnapshotBytes, on.Compactor.CollectorHoldFrom);
        }

        using var off = new FileStore(Path.Combine(_dir, "off"), new InMemoryProfileStore(), pii: null, state: null, holdCollectorDuringRestore: false);
        Assert.Equal(long.MaxValue, off.Compactor.CollectorHoldFrom);
    }

    // Short-lived garbage, one megabyte at a time.
    private static void Allocate(int megabytes)
    {
        for (var m = 0; m < megabytes; m++)
        {
            for (var i = 0; i < 1024; i++)
            {
                GC.KeepAlive(new byte[1000]);
            }
        }
    }
}
