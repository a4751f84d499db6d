using System.Runtime;
using System.Security.Cryptography;
using Segmentation.Core.Events;
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

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_collector_stays_off_inside_the_region_and_runs_again_after_it()
    {
        var collections = GC.CollectionCount(0);
        var hold = RestoreCollectorHold.TryBegin(snapshotBytes: 40L << 20);
        Assert.NotNull(hold);
        try
        {
            Assert.Equal(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
            Assert.Equal((long)((40L << 20) * RestoreCollectorHold.AllocatedPerSnapshotByte), hold.Bytes);
            collections = GC.CollectionCount(0); // opening the region may collect once, to make room
            Allocate(megabytes: 32);
            Assert.Equal(collections, GC.CollectionCount(0));
        }
        finally
        {
            hold.Dispose();
        }

        Assert.True(hold.Held);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        hold.Dispose(); // a second dispose changes nothing
    }

    [Fact]
    public void A_restore_that_allocates_past_the_region_ends_it_without_an_error()
    {
        var hold = RestoreCollectorHold.TryBegin(snapshotBytes: 1, minSnapshotBytes: 0);
        Assert.NotNull(hold);
        Assert.Equal(RestoreCollectorHold.MinRegionBytes, hold.Bytes);
        var collections = GC.CollectionCount(0);
        Allocate(megabytes: 3 * (int)(RestoreCollectorHold.MinRegionBytes >> 20));
        Assert.True(GC.CollectionCount(0) > collections);

        hold.Dispose();
        Assert.False(hold.Held);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }

    [Fact]
    public void Small_snapshots_and_a_second_region_are_restored_with_the_collector_as_usual()
    {
        Assert.Null(RestoreCollectorHold.TryBegin(RestoreCollectorHold.MinSnapshotBytes - 1));
        Assert.Null(RestoreCollectorHold.TryBegin(0, minSnapshotBytes: 0));

        using var first = RestoreCollectorHold.TryBegin(RestoreCollectorHold.MinSnapshotBytes);
        Assert.NotNull(first);
        Assert.Null(RestoreCollectorHold.TryBegin(RestoreCollectorHold.MinSnapshotBytes)); // one region per process
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

        var hold = second.Compactor.Last!.CollectorHold;
        Assert.NotNull(hold);
        Assert.True(hold.Held);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        Assert.Equal(expected.Count, second.World.Store.Count);
        foreach (var (user, (version, events, revenue)) in expected)
        {
            var p = second.World.Store.Get(user)!;
            Assert.Equal((version, events, revenue), (p.Version, p.Events.Count, p.Revenue));
        }
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
