using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Privacy;
using Segmentation.Core.Storage;

namespace Segmentation.Core.Tests;

/// <summary>
/// A <see cref="TestWorld"/> with durable storage in a directory, wired as the server wires it: the log and
/// the compactor seal PII by the catalog's schema, and snapshots carry the recent RFM models.
/// </summary>
internal sealed class Durable : IDisposable
{
    public Durable(string dir, byte[] key, DateTimeOffset? now = null, bool acceptDataLoss = false, RetentionPolicy? retention = null)
    {
        Pii = new PiiProtector(key, name => World!.Catalogs.Current.Traits.TryGetValue(name, out var t) && t.Pii);
        Log = new FileChangeLog(DataDirectory.Open(dir, Pii, acceptDataLoss: acceptDataLoss), pii: Pii, ownsDirectory: true);
        World = new TestWorld(now: now ?? new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero), changeLog: Log, retention: retention);
        Compactor = new StoreCompactor(
            World.Store,
            Log,
            Pii,
            state: () => new SnapshotState([.. World.Rfm.Recent.Where(m => m.Version > 0).Select(RfmModelChange.From)], 0));
        Rights = new DataSubjectRights(World.Ingestion, World.Store, World.Catalogs, World.Rfm, World.Memberships, World.Cache, World.Clock, Compactor);
    }

    /// <summary>The data subject's rights, erasure compacting this store (as the server wires it).</summary>
    public DataSubjectRights Rights { get; }

    public TestWorld World { get; }

    public FileChangeLog Log { get; }

    public PiiProtector Pii { get; }

    public StoreCompactor Compactor { get; }

    /// <summary>The server's start-up restore (snapshot, its state, the log after it, RFM when it changed).</summary>
    public (SnapshotInfo? Snapshot, ChangeLogRecovery Log) Restore()
    {
        var restored = World.Ingestion.Restore(Compactor, Log);
        World.Ingestion.EvaluateNewMemberships();
        return (restored.Snapshot, restored.Log);
    }

    public void Dispose()
    {
        Log.Dispose();
        Compactor.Dispose();
        World.Dispose();
    }
}
