namespace Segmentation.Core.Application.Changes;

/// <summary>
/// Rewrites durable storage so that it holds only the current state of the store: a fresh snapshot of
/// every profile, after which the log segments it covers are deleted. Used periodically (to bound restore
/// time) and right after an erasure, so that an erased user's data no longer exists anywhere on disk.
/// </summary>
public interface IStoreCompaction
{
    /// <summary>
    /// Writes a snapshot of the store as it is now and deletes every older snapshot and log segment it
    /// covers. Changes acknowledged before the call are no longer present on disk in any other form
    /// afterwards. Concurrent writes continue and land in the new log segment.
    /// </summary>
    Task CompactAsync(CancellationToken cancellationToken = default);
}

/// <summary>Compaction when durability is off: nothing is on disk, so there is nothing to do.</summary>
public sealed class NoStoreCompaction : IStoreCompaction
{
    /// <summary>The single instance.</summary>
    public static readonly NoStoreCompaction Instance = new();

    private NoStoreCompaction()
    {
    }

    /// <inheritdoc />
    public Task CompactAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;
}
