using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Profiles;

namespace Segmentation.Storage;

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
    private readonly ISnapshotStateSource? _state;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Creates the compactor for a store and its log (both in the log's directory).</summary>
    /// <param name="store">The profiles.</param>
    /// <param name="log">The change log, whose directory holds the snapshots.</param>
    /// <param name="pii">Seals PII attribute values in snapshots.</param>
    /// <param name="logger">Where snapshots are reported.</param>
    /// <param name="state">What the store holds besides profiles, taken right after each rotation (null: nothing).</param>
    public StoreCompactor(IProfileStore store, FileChangeLog log, PiiProtector? pii = null, ILogger? logger = null, ISnapshotStateSource? state = null)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _log = log ?? throw new ArgumentNullException(nameof(log));
        _pii = pii;
        _logger = logger ?? NullLogger.Instance;
        _state = state;
    }

    /// <summary>The last snapshot written or restored, or null.</summary>
    public SnapshotInfo? Last { get; private set; }

    /// <summary>
    /// Snapshots from this size on are restored with the garbage collector held off (<see cref="RestoreCollectorHold"/>);
    /// <see cref="long.MaxValue"/> turns the hold off.
    /// </summary>
    public long CollectorHoldFrom { get; internal set; } = RestoreCollectorHold.MinSnapshotBytes;

    /// <summary>
    /// Restores the snapshot the directory's manifest names into the store (profiles decoded on every core, a
    /// large snapshot with the garbage collector held off, see <see cref="RestoreCollectorHold"/>; then identity
    /// links), raises the store's version counter past every version it handed out, and returns
    /// it (its <see cref="SnapshotInfo.Preamble"/> is replayed before the log); null when there is none.
    /// Leftovers of an interrupted compaction (temporary files, snapshots and segments the manifest does not
    /// expect) are removed. Call before <see cref="FileChangeLog.Recover"/>, passing the result's <see cref="SnapshotInfo.Segment"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The snapshot is damaged; start-up must stop rather than lose data.</exception>
    public SnapshotInfo? Restore()
    {
        var directory = _log.Directory;
        RemoveTemporaryFiles();
        var plan = _log.Data.Plan;
        foreach (var (other, otherPath) in ProfileSnapshotFile.Find(directory))
        {
            if (other > plan.SnapshotSegment)
            {
                File.Delete(otherPath); // complete, but written just before a crash and never recorded: the log it covers is still there
            }
        }

        if (plan.SnapshotPath is not { } path)
        {
            RemoveCovered(plan.Segments.Count > 0 ? plan.Segments[0] : 1);
            return null;
        }

        var segment = plan.SnapshotSegment;
        var links = new System.Collections.Concurrent.ConcurrentQueue<(string Key, IReadOnlyList<string> Aliases, long Version)>();
        SnapshotInfo info;
        var hold = RestoreCollectorHold.TryBegin(new FileInfo(path).Length, CollectorHoldFrom);
        try
        {
            info = ProfileSnapshotFile.Read(path, _pii, entry =>
            {
                _store.Restore(entry.Profile);
                if (entry.LinkedIds.Count > 0)
                {
                    links.Enqueue((entry.Profile.UserId, entry.LinkedIds, entry.Profile.Version));
                }
            }, Environment.ProcessorCount);
        }
        finally
        {
            hold?.Dispose();
        }

        if (hold is not null)
        {
            info = info with { CollectorHold = hold.Outcome, CollectorHoldBytes = hold.Bytes };
            LogHold(hold);
        }

        // Links as the profiles were merged, oldest first, and only those of the copy restored when a user is held twice
        // (chunks are read in parallel; a user merged into during the capture is held before and after the merge).
        var restored = links.Where(l => _store.Get(l.Key)?.Version == l.Version).OrderBy(l => l.Version).ToList();
        foreach (var (key, aliases, _) in restored)
        {
            _store.RestoreLinks(key, aliases);
        }

        _store.RaiseVersion(info.VersionFloor);
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
        var segments = FileChangeLog.Segments(_log.Directory).Where(n => n >= from).ToList();
        AfterListingSegments?.Invoke();
        return segments.Sum(n => new FileInfo(FileChangeLog.SegmentPath(_log.Directory, n)) is { Exists: true } file ? file.Length : 0); // one a compaction (an erasure's) deleted since counts nothing
    }

    /// <summary>Test hook: runs between the listing of the segments and the reading of their lengths.</summary>
    internal Action? AfterListingSegments { get; set; }

    /// <summary>Releases the gate.</summary>
    public void Dispose() => _gate.Dispose();

    private void LogHold(RestoreCollectorHold hold)
    {
        var mebibytes = hold.Bytes >> 20;
        switch (hold.Outcome)
        {
            case CollectorHoldOutcome.Held:
                _logger.LogInformation("Snapshot restored with the garbage collector held off (a no-GC region of {RegionMiB} MiB)", mebibytes);
                break;
            case CollectorHoldOutcome.EndedEarly:
                _logger.LogInformation("Snapshot restored past its no-GC region of {RegionMiB} MiB: the garbage collector ran during the restore", mebibytes);
                break;
            case CollectorHoldOutcome.NoRoom:
                _logger.LogInformation("No room for a no-GC region ({RegionMiB} MiB left of half the memory the collector may use): the snapshot was restored with the garbage collector as usual", mebibytes);
                break;
            default:
                _logger.LogInformation("The runtime refused a no-GC region of {RegionMiB} MiB for restoring the snapshot: restored with the garbage collector as usual", mebibytes);
                break;
        }
    }

    private void CompactNow()
    {
        var segment = _log.Rotate();
        var state = (_state?.Capture() ?? SnapshotState.None) with { VersionFloor = _store.Version };
        var info = ProfileSnapshotFile.Write(ProfileSnapshotFile.PathFor(_log.Directory, segment), segment, Capture(), _pii, state);
        _log.Data.RecordSnapshot(segment);
        var removed = RemoveCovered(segment) + RemoveTemporaryFiles(storesOnly: true);
        Last = info;
        SegmentationTelemetry.SnapshotDuration.Record(info.Elapsed.TotalSeconds);
        SegmentationTelemetry.SnapshotSize.Record(info.Bytes);
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
    // A merge during the walk is logged after the rotation, and its replay finds the merged profile only if the snapshot
    // holds it. But the walk reads one profile at a time: the merged profile's key may leave the store before the walk
    // reaches it, while the target was read before the merge or is new and behind the walk. So the store records every
    // merge's target while the walk runs, and the targets are read again after it; a user read at a later version than
    // before is written again, and a restore keeps each user's latest version. A merge after the walk needs no second
    // read (its source was read by the walk or written after the rotation), so the recording stops with the walk, and
    // the reads after it end even under a steady stream of merges.
    private IEnumerable<SnapshotEntry> Capture()
    {
        var merges = _store.RecordMerges();
        var captured = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            foreach (var key in _store.Keys())
            {
                if (CaptureNewer(key, captured) is { } entry)
                {
                    yield return entry;
                }
            }
        }
        finally
        {
            merges.Dispose();
        }

        while (merges.TryTake(out var target))
        {
            if (CaptureNewer(target, captured) is { } entry)
            {
                yield return entry;
            }
        }
    }

    // The profile under key (or the one it was merged into) with its linked ids, unless that version was captured already.
    private SnapshotEntry? CaptureNewer(string key, Dictionary<string, long> captured)
    {
        var (profile, links) = _store.Capture(key);
        if (profile is null || (captured.TryGetValue(profile.UserId, out var earlier) && profile.Version <= earlier))
        {
            return null;
        }

        captured[profile.UserId] = profile.Version;
        return new SnapshotEntry(profile, links);
    }

    // Temporary files of writes that failed or were cut short (their data may include erased users). At a restore,
    // before anything else writes, every one in the directory (a crash leaves the audit trail's and the measurements'
    // too); at a compaction only the store's own (snapshots and the manifest): the others may be being written by their
    // own components at that moment.
    private int RemoveTemporaryFiles(bool storesOnly = false)
    {
        var removed = 0;
        foreach (var temporary in Directory.EnumerateFiles(_log.Directory, "*.tmp"))
        {
            var name = Path.GetFileName(temporary);
            if (storesOnly && !ProfileSnapshotFile.IsTemporary(name) && name != DataDirectory.ManifestName + ".tmp")
            {
                continue;
            }

            File.Delete(temporary);
            removed++;
        }

        return removed;
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
