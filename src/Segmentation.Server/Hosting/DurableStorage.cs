using Segmentation.Core.Application.Changes;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>The durable side of the profile store: the file store of the data directory, or nothing without one.</summary>
internal sealed class DurableStorage(FileStore? store)
{
    /// <summary>Durability off: nothing is written.</summary>
    public static readonly DurableStorage Off = new(null);

    public IChangeLog ChangeLog { get; } = (IChangeLog?)store ?? NoChangeLog.Instance;

    public IStoreCompaction Compaction { get; } = (IStoreCompaction?)store ?? NoStoreCompaction.Instance;

    /// <summary>The file store, or null when durability is off.</summary>
    public FileStore? Store { get; } = store;

    /// <summary>The file-backed log and compactor, or null when durability is off.</summary>
    public (FileChangeLog Log, StoreCompactor Compactor)? Files => Store is null ? null : (Store.Log, Store.Compactor);
}
