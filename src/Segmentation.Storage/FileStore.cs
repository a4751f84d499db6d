using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Profiles;

namespace Segmentation.Storage;

/// <summary>
/// The durable store on local disk as the application sees it: one locked <see cref="DataDirectory"/> with
/// its change log (<see cref="IChangeLog"/>), snapshots and compaction (<see cref="IStoreCompaction"/>),
/// and the restore at start-up (<see cref="IStoreRecovery"/>).
/// </summary>
public sealed class FileStore : IChangeLog, IStoreCompaction, IStoreRecovery, IDisposable
{
    private RestoredSnapshot? _snapshot;
    private long _snapshotSegment = 1;

    /// <summary>Opens (and locks) the data directory and wires its log and compactor to <paramref name="store"/>.</summary>
    /// <param name="directory">The data directory.</param>
    /// <param name="store">The in-memory profiles it keeps durable.</param>
    /// <param name="pii">Seals personal-data values at rest; null without a key.</param>
    /// <param name="state">What snapshots carry besides profiles.</param>
    /// <param name="loggers">Where the log and the compactor report.</param>
    /// <param name="acceptDataLoss">Start although files the manifest expects are missing (operator override).</param>
    /// <param name="holdCollectorDuringRestore">Restore a large snapshot with the garbage collector held off (<see cref="RestoreCollectorHold"/>).</param>
    /// <exception cref="DataDirectoryLockedException">Another process holds the directory.</exception>
    /// <exception cref="StoreDamagedException">Files are missing, or the key differs from the directory's.</exception>
    public FileStore(string directory, IProfileStore store, PiiProtector? pii, ISnapshotStateSource? state, ILoggerFactory? loggers = null, bool acceptDataLoss = false, bool holdCollectorDuringRestore = true)
    {
        loggers ??= NullLoggerFactory.Instance;
        Data = DataDirectory.Open(directory, pii, loggers.CreateLogger<FileChangeLog>(), acceptDataLoss);
        _keyCheck = pii?.KeyCheck();
        try
        {
            Log = new FileChangeLog(Data, loggers.CreateLogger<FileChangeLog>(), pii, ownsDirectory: true);
            Compactor = new StoreCompactor(store, Log, pii, loggers.CreateLogger<StoreCompactor>(), state)
            {
                CollectorHoldFrom = holdCollectorDuringRestore ? RestoreCollectorHold.MinSnapshotBytes : long.MaxValue,
            };
        }
        catch
        {
            Data.Dispose();
            throw;
        }
    }

    private readonly string? _keyCheck;

    /// <summary>The locked data directory.</summary>
    public DataDirectory Data { get; }

    /// <summary>The change log.</summary>
    public FileChangeLog Log { get; }

    /// <summary>Snapshots and compaction.</summary>
    public StoreCompactor Compactor { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> Lost => Data.Plan.Lost;

    /// <inheritdoc />
    public void Append(ChangeRecord record) => Log.Append(record);

    /// <inheritdoc />
    public void AppendAll(IReadOnlyList<ChangeRecord> records) => Log.AppendAll(records);

    /// <inheritdoc />
    public Task CompactAsync(CancellationToken cancellationToken = default) => Compactor.CompactAsync(cancellationToken);

    /// <inheritdoc />
    public RestoredSnapshot? RestoreSnapshot()
    {
        var info = Compactor.Restore();
        if (info is null)
        {
            return null;
        }

        _snapshotSegment = info.Segment;
        _snapshot = new RestoredSnapshot(info.Profiles, info.Bytes, info.Elapsed, new SnapshotState(info.Preamble, info.VersionFloor));
        return _snapshot;
    }

    /// <inheritdoc />
    public LogReplay ReplayLog(Action<ChangeRecord> apply)
    {
        var replay = Log.Recover(apply, _snapshotSegment);
        Data.ConfirmKey(_keyCheck); // the snapshot and the log were read with the configured key
        return replay;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Log.Dispose();
        Compactor.Dispose();
    }
}
