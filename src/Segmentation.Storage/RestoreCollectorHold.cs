using System.Runtime;

namespace Segmentation.Storage;

/// <summary>How a snapshot's restore ran with respect to the garbage collector (<see cref="RestoreCollectorHold"/>).</summary>
public enum CollectorHoldOutcome
{
    /// <summary>Not tried: the snapshot is small, the hold is turned off, or nothing was restored.</summary>
    NotTried,

    /// <summary>The runtime refused the no-GC region (too large for the memory it may use, or another is open).</summary>
    Refused,

    /// <summary>Not tried: the memory the collector may still use leaves no room for the smallest region.</summary>
    NoRoom,

    /// <summary>The collector stayed off for the whole snapshot.</summary>
    Held,

    /// <summary>
    /// The region ended before the restore did: the restore allocated past it (the collector then runs), or the
    /// process asked for another region (the runtime then ends the open one).
    /// </summary>
    EndedEarly,
}

/// <summary>
/// Holds the garbage collector off while a snapshot is restored. A restore allocates what it keeps: nearly every
/// byte it allocates is a restored profile that lives as long as the process, so each collection during it only
/// marks and copies live profiles from one generation to the next (at a million profiles, ten collections of which
/// three of the whole heap, and a quarter of the restore's processor time). Inside a no-GC region sized from the
/// snapshot none runs; the collections after it promote what was restored, while decisions are served.
/// </summary>
/// <remarks>
/// A region the runtime refuses, or a restore that allocates past it (the collector then runs and the region ends),
/// only loses the saving. The runtime commits the region's memory when it opens it (touching none of it, with about
/// 5 % to spare), so the region, large-object share included, is at most half the memory the collector may use, less
/// what the heap holds now; garbage that is not collected inside the region cannot fill the memory.
/// </remarks>
public sealed class RestoreCollectorHold : IDisposable
{
    /// <summary>
    /// Bytes a restore allocates per byte of snapshot, with room to spare: 2.7 measured (2,009 B allocated per
    /// profile restored from a snapshot of 710 MiB holding 1,000,200 profiles).
    /// </summary>
    public const double AllocatedPerSnapshotByte = 3.5;

    /// <summary>Smaller snapshots (32 MiB) restore in well under a second and are restored with the collector as usual.</summary>
    public const long MinSnapshotBytes = 32L << 20;

    /// <summary>The smallest region opened (64 MiB): room for the restore's fixed costs (buffers, the first chunks).</summary>
    public const long MinRegionBytes = 64L << 20;

    /// <summary>
    /// The region's share for large objects (85,000 bytes and more: the store's tables as they grow, read buffers):
    /// after a 1M-profile restore 31 MiB of them are live, about half of what the tables' growth allocated.
    /// </summary>
    public const double LargeObjectShare = 0.1;

    private readonly int _collectionsAtStart;
    private bool _open;

    private RestoreCollectorHold(long bytes, CollectorHoldOutcome outcome)
    {
        Bytes = bytes;
        _open = outcome == CollectorHoldOutcome.Held;
        _collectionsAtStart = GC.CollectionCount(0);
        Outcome = outcome;
    }

    /// <summary>The region's size in bytes, large objects included: what may be allocated before the collector runs again.</summary>
    public long Bytes { get; }

    /// <summary>
    /// <see cref="CollectorHoldOutcome.Held"/> while the region is open and once this hold closed it;
    /// <see cref="CollectorHoldOutcome.EndedEarly"/> when it had ended before; or <see cref="CollectorHoldOutcome.Refused"/>
    /// or <see cref="CollectorHoldOutcome.NoRoom"/> when none was opened.
    /// </summary>
    public CollectorHoldOutcome Outcome { get; private set; }

    /// <summary>The region a snapshot of <paramref name="snapshotBytes"/> is restored in, given what the collector may still use.</summary>
    public static long RegionBytes(long snapshotBytes) =>
        (long)Math.Min(Math.Max(snapshotBytes * AllocatedPerSnapshotByte, MinRegionBytes), Room());

    // Half the memory the collector may use, less what the heap holds now (the larger of what it committed at its
    // last collection and what is allocated since), less the runtime's 5 % to spare when it commits a region.
    private static double Room()
    {
        var memory = GC.GetGCMemoryInfo();
        var held = Math.Max(memory.TotalCommittedBytes, GC.GetTotalMemory(forceFullCollection: false));
        return Math.Max(0, ((memory.TotalAvailableMemoryBytes / 2) - held) / 1.05);
    }

    /// <summary>
    /// Opens a no-GC region for restoring a snapshot of <paramref name="snapshotBytes"/>, or returns null when the
    /// snapshot is smaller than <paramref name="minSnapshotBytes"/>. A hold whose <see cref="Outcome"/> is
    /// <see cref="CollectorHoldOutcome.Refused"/> or <see cref="CollectorHoldOutcome.NoRoom"/> holds nothing. Asking
    /// while a region is open is refused, and the runtime then ends the open region too.
    /// </summary>
    /// <param name="snapshotBytes">The snapshot file's length.</param>
    /// <param name="minSnapshotBytes">Snapshots below this size are restored with the collector as usual.</param>
    public static RestoreCollectorHold? TryBegin(long snapshotBytes, long minSnapshotBytes = MinSnapshotBytes)
    {
        if (snapshotBytes < minSnapshotBytes || snapshotBytes <= 0)
        {
            return null;
        }

        var bytes = RegionBytes(snapshotBytes);
        if (bytes < MinRegionBytes)
        {
            return new RestoreCollectorHold(bytes, CollectorHoldOutcome.NoRoom);
        }

        bool opened;
        try
        {
            opened = GC.TryStartNoGCRegion(bytes, (long)(bytes * LargeObjectShare));
        }
        catch (ArgumentOutOfRangeException)
        {
            opened = false; // larger than the runtime allows a region to be
        }
        catch (InvalidOperationException)
        {
            opened = false; // a region is already open in this process (and the runtime has just ended it)
        }

        return new RestoreCollectorHold(bytes, opened ? CollectorHoldOutcome.Held : CollectorHoldOutcome.Refused);
    }

    /// <summary>Ends the region if this hold opened it and it is still open (the collector runs again as usual); once.</summary>
    public void Dispose()
    {
        if (!_open)
        {
            return;
        }

        _open = false;

        // A collection since the region opened means it ended: the runtime collects inside a region only when it is
        // exceeded, and opening any later region collects first, so a region open now is not this one. A request for
        // a region while this one is open is refused and ends this one without a collection: the latency mode says so.
        if (GC.CollectionCount(0) != _collectionsAtStart || GCSettings.LatencyMode != GCLatencyMode.NoGCRegion)
        {
            Outcome = CollectorHoldOutcome.EndedEarly;
            return;
        }

        try
        {
            GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
            // Exceeded between the check above and here: the collection that ran ended the region.
            Outcome = CollectorHoldOutcome.EndedEarly;
        }
    }
}
