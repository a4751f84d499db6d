using System.Runtime;

namespace Segmentation.Storage;

/// <summary>
/// Holds the garbage collector off while a snapshot is restored. A restore allocates what it keeps: nearly every
/// byte it allocates is a restored profile that lives as long as the process, so each collection during it only
/// marks and copies live profiles from one generation to the next (at a million profiles, ten collections of which
/// three of the whole heap, and a quarter of the restore's processor time). Inside a no-GC region sized from the
/// snapshot none runs; the first collection after it promotes what was restored once, while decisions are served.
/// </summary>
/// <remarks>
/// A region the runtime refuses (another is open, or the size is out of its range), a snapshot too small for it
/// to matter, or a restore that allocates past the region (the collector then runs and the region ends) only
/// loses the saving. The region is at most half the memory the collector may use, so garbage that is not
/// collected inside it cannot fill the memory.
/// </remarks>
public sealed class RestoreCollectorHold : IDisposable
{
    /// <summary>
    /// Bytes a restore allocates per byte of snapshot, with room to spare: 2.8 measured (2,009 B allocated per
    /// profile restored from a snapshot of 710 MiB holding 1,000,200 profiles).
    /// </summary>
    public const double AllocatedPerSnapshotByte = 3.5;

    /// <summary>Smaller snapshots restore in well under a second and are restored with the collector as usual.</summary>
    public const long MinSnapshotBytes = 32L << 20;

    /// <summary>The smallest region opened: room for the restore's fixed costs (buffers, the first chunks) whatever the snapshot.</summary>
    public const long MinRegionBytes = 64L << 20;

    private RestoreCollectorHold(long bytes) => Bytes = bytes;

    /// <summary>The region's size in bytes: what may be allocated before the collector runs again.</summary>
    public long Bytes { get; }

    /// <summary>
    /// Whether the collector stayed off until <see cref="Dispose"/> (false when the restore allocated past the
    /// region, or anything else ended it). Read after disposing.
    /// </summary>
    public bool Held { get; private set; }

    /// <summary>
    /// Opens a no-GC region for restoring a snapshot of <paramref name="snapshotBytes"/>, or returns null when
    /// the snapshot is smaller than <paramref name="minSnapshotBytes"/> or the runtime refuses the region.
    /// </summary>
    /// <param name="snapshotBytes">The snapshot file's length.</param>
    /// <param name="minSnapshotBytes">Snapshots below this size are restored with the collector as usual.</param>
    public static RestoreCollectorHold? TryBegin(long snapshotBytes, long minSnapshotBytes = MinSnapshotBytes)
    {
        if (snapshotBytes < minSnapshotBytes || snapshotBytes <= 0)
        {
            return null;
        }

        var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var bytes = (long)Math.Min(Math.Max(snapshotBytes * AllocatedPerSnapshotByte, MinRegionBytes), available / 2.0);
        try
        {
            return GC.TryStartNoGCRegion(bytes) ? new RestoreCollectorHold(bytes) : null;
        }
        catch (ArgumentOutOfRangeException)
        {
            return null; // larger than the runtime allows a region to be
        }
        catch (InvalidOperationException)
        {
            return null; // a region is already open in this process
        }
    }

    /// <summary>Ends the region if it is still open (the collector runs again as usual).</summary>
    public void Dispose()
    {
        if (GCSettings.LatencyMode != GCLatencyMode.NoGCRegion)
        {
            return;
        }

        try
        {
            GC.EndNoGCRegion();
            Held = true;
        }
        catch (InvalidOperationException)
        {
            // The region ended on its own (a collection ran inside it): the collector is already running as usual.
        }
    }
}
