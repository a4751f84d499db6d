using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Storage;

/// <summary>
/// Snapshots and compaction of the durable store. A compaction rotates the change log to a new segment,
/// captures every profile under its own write lock (so each profile includes every change logged before
/// the rotation), writes the snapshot atomically, then deletes older snapshots and the log segments the
/// new snapshot covers. Writes continue meanwhile; those that land after the rotation are replayed on
/// top of the snapshot at restore, which is idempotent (event ids de-duplicate, traits and merges
/// re-apply to the same state). Compactions run one at a time.
/// </summary>
public sealed class StoreCompactor : IStoreCompaction, IDisposable
{
    private readonly IProfileStore _store;
    private readonly FileChangeLog _log;
    private readonly PiiProtector? _pii;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Creates the compactor for a store and its log (both in the log's directory).</summary>
    public StoreCompactor(IProfileStore store, FileChangeLog log, PiiProtector? pii = null, ILogger? logger = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _log = log ?? throw new ArgumentNullException(nameof(log));
        _pii = pii;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The last snapshot written or restored, or null.</summary>
    public SnapshotInfo? Last { get; private set; }

    /// <summary>
    /// Restores the latest snapshot of the log's directory into the store (profiles decoded on every core,
    /// then identity links), and returns it; null when there is none. Leftovers of an interrupted
    /// compaction (temporary files, snapshots and segments a newer snapshot covers) are removed. Call
    /// before <see cref="FileChangeLog.Recover"/>, passing the result's <see cref="SnapshotInfo.Segment"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The latest snapshot is damaged; start-up must stop rather than lose data.</exception>
    public SnapshotInfo? Restore()
    {
        var directory = _log.Directory;
        if (!Directory.Exists(directory))
        {
            return null;
        }

        foreach (var temporary in Directory.EnumerateFiles(directory, "*.tmp"))
        {
            File.Delete(temporary);
        }

        var snapshots = ProfileSnapshotFile.Find(directory);
        if (snapshots.Count == 0)
        {
            return null;
        }

        var (segment, path) = snapshots[^1];
        var links = new System.Collections.Concurrent.ConcurrentQueue<(string Key, IReadOnlyList<string> Aliases)>();
        var info = ProfileSnapshotFile.Read(path, _pii, entry =>
        {
            _store.Restore(entry.Profile);
            if (entry.LinkedIds.Count > 0)
            {
                links.Enqueue((entry.Profile.UserId, entry.LinkedIds));
            }
        }, Environment.ProcessorCount);
        foreach (var (key, aliases) in links)
        {
            _store.RestoreLinks(key, aliases);
        }

        RemoveCovered(segment);
        Last = info;
        return info;
    }

    /// <inheritdoc />
    public async Task CompactAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await Task.Run(CompactNow, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Bytes of log written since the last snapshot (what a restore would have to replay).</summary>
    public long LogBytesSinceSnapshot()
    {
        var from = Last?.Segment ?? 1;
        return FileChangeLog.Segments(_log.Directory)
            .Where(n => n >= from)
            .Sum(n => new FileInfo(FileChangeLog.SegmentPath(_log.Directory, n)).Length);
    }

    /// <summary>Releases the gate.</summary>
    public void Dispose() => _gate.Dispose();

    private void CompactNow()
    {
        var segment = _log.Rotate();
        var info = ProfileSnapshotFile.Write(ProfileSnapshotFile.PathFor(_log.Directory, segment), segment, Capture(), _pii);
        var removed = RemoveCovered(segment);
        Last = info;
        _logger.LogInformation(
            "Snapshot of {Profiles} profiles written ({Bytes} bytes) in {Elapsed} ms; {Removed} older files removed; the log continues at segment {Segment}",
            info.Profiles,
            info.Bytes,
            (long)info.Elapsed.TotalMilliseconds,
            removed,
            segment);
    }

    // Every profile with the ids linked to it, each pair read under the profile's lock after the rotation.
    // Keys, not profiles, are listed: a user's first write holds the lock while its record is logged and
    // before its profile exists; Capture waits for it, so a record logged before the rotation (whose
    // segment this snapshot replaces) is never left out.
    private IEnumerable<SnapshotEntry> Capture()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in _store.Keys())
        {
            var (profile, links) = _store.Capture(key);
            if (profile is not null && seen.Add(profile.UserId))
            {
                yield return new SnapshotEntry(profile, links);
            }
        }
    }

    private int RemoveCovered(long segment)
    {
        var removed = 0;
        foreach (var (older, path) in ProfileSnapshotFile.Find(_log.Directory))
        {
            if (older < segment)
            {
                File.Delete(path);
                removed++;
            }
        }

        return removed + _log.DeleteSegmentsBefore(segment);
    }
}
