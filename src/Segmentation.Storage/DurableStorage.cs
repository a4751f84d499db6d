using Segmentation.Core.Application.Changes;

namespace Segmentation.Storage;

/// <summary>The durable side of the profile store: the file store of the data directory, or nothing without one.</summary>
public sealed class DurableStorage(FileStore? store)
{
    /// <summary>Durability off: nothing is written.</summary>
    public static readonly DurableStorage Off = new(null);

    /// <summary>Where changes are logged before memory changes (nothing is written when durability is off).</summary>
    public IChangeLog ChangeLog { get; } = (IChangeLog?)store ?? NoChangeLog.Instance;

    /// <summary>Compaction of the durable store (nothing to do when durability is off).</summary>
    public IStoreCompaction Compaction { get; } = (IStoreCompaction?)store ?? NoStoreCompaction.Instance;

    /// <summary>The file store, or null when durability is off.</summary>
    public FileStore? Store { get; } = store;

    /// <summary>The file-backed log and compactor, or null when durability is off.</summary>
    public (FileChangeLog Log, StoreCompactor Compactor)? Files => Store is null ? null : (Store.Log, Store.Compactor);
}
