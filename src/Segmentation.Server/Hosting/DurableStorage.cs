using Segmentation.Core.Application.Changes;
using Segmentation.Core.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>The durable side of the profile store: its change log and snapshot compaction (both off without a data directory).</summary>
internal sealed class DurableStorage(IChangeLog changeLog, IStoreCompaction compaction)
{
    /// <summary>Durability off: nothing is written.</summary>
    public static readonly DurableStorage Off = new(NoChangeLog.Instance, NoStoreCompaction.Instance);

    public IChangeLog ChangeLog { get; } = changeLog;

    public IStoreCompaction Compaction { get; } = compaction;

    /// <summary>The file-backed log and compactor, or null when durability is off.</summary>
    public (FileChangeLog Log, StoreCompactor Compactor)? Files =>
        ChangeLog is FileChangeLog log && Compaction is StoreCompactor compactor ? (log, compactor) : null;
}
