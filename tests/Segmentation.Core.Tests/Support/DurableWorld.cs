using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Support;

/// <summary>
/// A <see cref="TestWorld"/> with durable storage in a directory, wired as the server wires it: the file
/// store seals PII by the catalog's schema, and snapshots carry what the profile writer captures.
/// </summary>
internal sealed class Durable : IDisposable
{
    public Durable(string dir, byte[] key, DateTimeOffset? now = null, bool acceptDataLoss = false, RetentionPolicy? retention = null, Core.Catalog.ICatalogSource? catalog = null, Core.Application.ChangeStream.IChangeFeedJournal? journal = null)
    {
        Pii = new PiiProtector(key, name => World!.Catalogs.Current.Traits.TryGetValue(name, out var t) && t.Pii);
        var store = new InMemoryProfileStore();
        var state = new DeferredState();
        Files = new FileStore(dir, store, Pii, state, acceptDataLoss: acceptDataLoss);
        World = new TestWorld(catalog, now: now ?? new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero), changeLog: Files, retention: retention, store: store, journal: journal);
        state.Source = World.Ingestion;
        Rights = new DataSubjectRights(World.Ingestion, World.Store, World.Catalogs, World.Rfm, World.Memberships, World.Cache, World.Clock, Files);
    }

    public TestWorld World { get; }

    public FileStore Files { get; }

    public FileChangeLog Log => Files.Log;

    public StoreCompactor Compactor => Files.Compactor;

    public PiiProtector Pii { get; }

    /// <summary>The data subject's rights, erasure compacting this store (as the server wires it).</summary>
    public DataSubjectRights Rights { get; }

    /// <summary>The server's start-up restore (snapshot, its state, the log after it, RFM when it changed, retention).</summary>
    public (RestoredSnapshot? Snapshot, LogReplay Log) Restore()
    {
        var restored = World.Ingestion.Restore(Files);
        World.Ingestion.EvaluateNewMemberships();
        return (restored.Snapshot, restored.Log);
    }

    public void Dispose()
    {
        Files.Dispose();
        World.Dispose();
    }

    private sealed class DeferredState : ISnapshotStateSource
    {
        public Core.Application.Profiles.ProfileIngestion? Source { get; set; }

        public SnapshotState Capture() => Source?.Capture() ?? SnapshotState.None;
    }
}
