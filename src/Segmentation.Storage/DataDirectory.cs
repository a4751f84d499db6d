using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Segmentation.Storage;

/// <summary>
/// What the durable store expects to find in its directory, written by the store itself (never by hand):
/// the snapshot restore starts from, the contiguous range of change log segments replayed after it, and a
/// check value of the encryption key the directory was created with.
/// </summary>
/// <param name="Format">Manifest format (1).</param>
/// <param name="CreatedAt">When the directory was first used.</param>
/// <param name="KeyCheck">HMAC of a fixed text under the encryption key (base64); null without a key.</param>
/// <param name="Snapshot">The snapshot restore starts from (its segment number), 0 when there is none.</param>
/// <param name="FirstSegment">The first log segment restore replays (the snapshot's segment, or 1).</param>
/// <param name="LastSegment">The last log segment created; every segment from the first to this one exists.</param>
/// <param name="Sealed">The length of each segment from the first on that is no longer appended to, recorded when it was sealed.</param>
/// <param name="SegmentFirst">
/// The directory's first segment was created before this manifest (so a manifest naming a segment that is not there means
/// a lost file). False in a manifest an earlier version wrote: it wrote the manifest first, and a first start that stopped
/// in between left one naming a segment never created.
/// </param>
public sealed record StoreManifest(int Format, DateTimeOffset CreatedAt, string? KeyCheck, long Snapshot, long FirstSegment, long LastSegment, IReadOnlyList<SealedSegment>? Sealed = null, bool SegmentFirst = false);

/// <summary>A log segment that is no longer appended to, and its final length.</summary>
/// <param name="Segment">The segment number.</param>
/// <param name="Bytes">Its length when it was sealed.</param>
public sealed record SealedSegment(long Segment, long Bytes);

/// <summary>What restore reads, checked against the manifest.</summary>
/// <param name="SnapshotPath">The snapshot to load first, or null.</param>
/// <param name="SnapshotSegment">Its segment number (0 without a snapshot).</param>
/// <param name="Segments">The log segments to replay after it, ascending.</param>
/// <param name="Lost">Files the manifest expected that are missing (only when the operator accepted the loss).</param>
public sealed record RecoveryPlan(string? SnapshotPath, long SnapshotSegment, IReadOnlyList<long> Segments, IReadOnlyList<string> Lost);

/// <summary>
/// The durable store's directory, owned by one process at a time. Opening it takes an exclusive OS lock
/// (<c>.lock</c>, held for the process lifetime; the holder writes its process id, host and start time to
/// <c>.lock-owner</c>), so a second server on the same directory refuses to start instead of interleaving
/// writes with the first. It then reads the manifest (<c>MANIFEST.json</c>), checks the encryption key
/// against the key check value recorded when the directory was created, and checks that every file the
/// manifest expects is there: a deleted snapshot or a missing log segment stops start-up, naming the
/// files, unless the operator explicitly accepts the loss (<c>acceptDataLoss</c>), in which case restore
/// uses what is there and the manifest is rewritten to match. The log and the compactor record each new
/// segment and snapshot in the manifest as they create them.
/// </summary>
public sealed class DataDirectory : IDisposable
{
    /// <summary>File name of the manifest.</summary>
    public const string ManifestName = "MANIFEST.json";

    /// <summary>File name of the lock file (held with an exclusive OS lock).</summary>
    public const string LockName = ".lock";

    /// <summary>File name of the text naming the lock's holder.</summary>
    public const string LockOwnerName = ".lock-owner";

    private const int ManifestFormat = 1;

    private readonly Lock _gate = new();
    private FileStream? _lock;

    private DataDirectory(string path, FileStream held, StoreManifest manifest, RecoveryPlan plan)
    {
        Path = path;
        _lock = held;
        Manifest = manifest;
        Plan = plan;
    }

    /// <summary>The directory's full path.</summary>
    public string Path { get; }

    /// <summary>The manifest as last written.</summary>
    public StoreManifest Manifest { get; private set; }

    /// <summary>What restore reads (checked when the directory was opened).</summary>
    public RecoveryPlan Plan { get; }

    /// <summary>
    /// Opens (creating when needed) and locks the store directory, checks the key and the files the
    /// manifest expects, and returns what restore should read.
    /// </summary>
    /// <param name="path">The data directory.</param>
    /// <param name="pii">The PII protector of the configured key (its key check value is compared); null without a key.</param>
    /// <param name="logger">Where upgrades of old directories and accepted losses are reported.</param>
    /// <param name="acceptDataLoss">Start with the files that are there although some the manifest expects are missing (operator override).</param>
    /// <exception cref="DataDirectoryLockedException">Another process holds the directory.</exception>
    /// <exception cref="StoreDamagedException">Files are missing, or the key differs from the directory's.</exception>
    public static DataDirectory Open(string path, PiiProtector? pii = null, ILogger? logger = null, bool acceptDataLoss = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        logger ??= NullLogger.Instance;
        var full = System.IO.Path.GetFullPath(path);
        if (File.Exists(full))
        {
            throw new IOException($"the data directory {full} is a file, not a directory: give a directory (created when missing)");
        }

        CreateDurably(full); // a power cut right after a first start could otherwise lose the whole folder, and the next start serve an empty store
        var held = AcquireLock(full);
        try
        {
            var (manifest, plan) = Check(full, pii, logger, acceptDataLoss);
            var directory = new DataDirectory(full, held, manifest, plan);
            if (!Unchanged(full, manifest))
            {
                directory.Save(manifest); // else nothing to write: a start on a full disk serves what is there
            }

            return directory;
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Records that log segment <paramref name="segment"/> now exists (called right after creating it) and,
    /// when it follows a segment that was being appended to, that segment's final length.
    /// </summary>
    public void RecordSegment(long segment, long? sealedLength = null)
    {
        lock (_gate)
        {
            var manifest = Manifest;
            if (sealedLength is { } bytes && segment > 1)
            {
                manifest = manifest with { Sealed = [.. (manifest.Sealed ?? []).Where(s => s.Segment != segment - 1), new SealedSegment(segment - 1, bytes)] };
            }

            if (segment > manifest.LastSegment || !ReferenceEquals(manifest, Manifest))
            {
                Save(manifest with { LastSegment = Math.Max(segment, manifest.LastSegment) });
            }
        }
    }

    /// <summary>
    /// Records that the snapshot of <paramref name="segment"/> is complete (renamed to its final name and on
    /// disk): restore starts from it and replays segments from <paramref name="segment"/> on; older files may
    /// be deleted after this call, not before.
    /// </summary>
    public void RecordSnapshot(long segment)
    {
        lock (_gate)
        {
            Save(Manifest with
            {
                Snapshot = segment,
                FirstSegment = segment,
                LastSegment = Math.Max(segment, Manifest.LastSegment),
                Sealed = [.. (Manifest.Sealed ?? []).Where(s => s.Segment >= segment)],
            });
        }
    }

    /// <summary>
    /// Records <paramref name="keyCheck"/> (the configured key's check value; null without a key) as the directory's key
    /// once restore has read its files with it, when none is recorded yet: a directory with data that names no key (from
    /// before manifests, whose manifest was deleted, or which a start with a wrong key failed to restore) is opened without
    /// recording one, so a wrong key fails its restore without locking the right one out.
    /// </summary>
    public void ConfirmKey(string? keyCheck)
    {
        lock (_gate)
        {
            if (keyCheck is not null && Manifest.KeyCheck is null)
            {
                Save(Manifest with { KeyCheck = keyCheck });
            }
        }
    }

    /// <summary>Releases the lock (the process keeps it until then).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _lock?.Dispose();
            _lock = null;
        }
    }

    /// <summary>Called with the directory before each directory sync (tests: what exists when a directory is made durable).</summary>
    internal static event Action<string>? DirectorySyncing;

    /// <summary>
    /// Creates <paramref name="directory"/> if it does not exist, and then makes its name durable (a sync of the folder
    /// holding it, and so for each missing folder above it): a new file in it, synced later, is not lost with a folder a
    /// power cut dropped.
    /// </summary>
    public static void CreateDurably(string directory)
    {
        var full = System.IO.Path.GetFullPath(directory).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        var created = new List<string>(); // the folders this makes, innermost first: each one's name lives in its parent
        for (var missing = full; !string.IsNullOrEmpty(missing) && !Directory.Exists(missing); missing = System.IO.Path.GetDirectoryName(missing))
        {
            created.Add(missing); // up to a folder that exists, or the root (an unreachable share or drive: CreateDirectory then throws)
        }

        if (created.Count == 0)
        {
            return;
        }

        Directory.CreateDirectory(full);
        for (var i = created.Count - 1; i >= 0; i--)
        {
            if (System.IO.Path.GetDirectoryName(created[i]) is { Length: > 0 } parent)
            {
                SyncDirectory(parent);
            }
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> with <paramref name="open"/>; when that created the file, makes its name durable (a
    /// sync of its folder) before anything written to it can count. A failed sync closes and deletes the new, empty file
    /// (the next open makes it again and syncs then) and throws.
    /// </summary>
    internal static FileStream OpenDurably(string path, Func<string, FileStream> open)
    {
        var created = !File.Exists(path);
        var file = open(path);
        if (created)
        {
            try
            {
                SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
            }
            catch
            {
                file.Dispose();
                TryDelete(path);
                throw;
            }
        }

        return file;
    }

    /// <summary>Makes a rename or a new file in <paramref name="directory"/> durable (fsync of the directory; Linux and macOS).</summary>
    public static void SyncDirectory(string directory)
    {
        DirectorySyncing?.Invoke(directory);
        if (OperatingSystem.IsWindows())
        {
            return; // NTFS journals renames; a directory cannot be opened for flushing there
        }

        var fd = NativeMethods.Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory {directory} to flush it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if (NativeMethods.FSync(fd) != 0)
            {
                throw new IOException($"cannot flush directory {directory} (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = NativeMethods.Close(fd);
        }
    }

    private static FileStream AcquireLock(string directory)
    {
        var lockPath = System.IO.Path.Combine(directory, LockName);
        var ownerPath = System.IO.Path.Combine(directory, LockOwnerName);
        FileStream held;
        try
        {
            held = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (File.Exists(lockPath))
        {
            var owner = File.Exists(ownerPath) ? File.ReadAllText(ownerPath).Trim() : "an unknown process";
            throw new DataDirectoryLockedException($"the data directory {directory} is in use by {owner} (lock file {lockPath}); two servers must never share a data directory: stop the other one or configure another Segmentation:DataDirectory", ex);
        }

        try
        {
            var started = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime();
            File.WriteAllText(ownerPath, string.Create(CultureInfo.InvariantCulture, $"process {Environment.ProcessId} on host {Environment.MachineName}, started {started:O}\n"));
            return held;
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    // An empty first log segment, made durable before a manifest names it.
    private static void CreateFirstSegment(string directory)
    {
        File.Create(FileChangeLog.SegmentPath(directory, 1)).Dispose();
        SyncDirectory(directory);
    }

    private static (StoreManifest Manifest, RecoveryPlan Plan) Check(string directory, PiiProtector? pii, ILogger logger, bool acceptDataLoss)
    {
        var segments = FileChangeLog.Segments(directory);
        var snapshots = ProfileSnapshotFile.Find(directory).Select(s => s.Segment).ToList();
        var keyCheck = pii?.KeyCheck();
        var manifest = Read(directory);
        if (manifest is null)
        {
            // A fresh directory (or one whose first start crashed before its manifest was written): its first segment is
            // created before the manifest that expects it, so a manifest never names a segment that was not there.
            var first = FileChangeLog.SegmentPath(directory, 1);
            if (snapshots.Count == 0 && (segments.Count == 0 || (segments is [1] && new FileInfo(first).Length == 0)))
            {
                if (segments.Count == 0)
                {
                    CreateFirstSegment(directory);
                }

                manifest = new StoreManifest(ManifestFormat, DateTimeOffset.UtcNow, keyCheck, 0, 1, 1, SegmentFirst: true);
                return (manifest, new RecoveryPlan(null, 0, [1], []));
            }

            // A directory written before manifests existed: what is there now is taken as what is expected.
            var snapshot = snapshots.Count > 0 ? snapshots[^1] : 0;
            var firstSegment = snapshot > 0 ? snapshot : segments[0];
            manifest = new StoreManifest(ManifestFormat, DateTimeOffset.UtcNow, null, snapshot, firstSegment, Math.Max(firstSegment, segments.Count > 0 ? segments[^1] : firstSegment), SegmentFirst: true);
            logger.LogWarning(
                "Data directory {Directory} has no {Manifest}: one was created from the files present (snapshot {Snapshot}, log segments {First}-{Last}); files missing before this start cannot be detected",
                directory, ManifestName, snapshot, manifest.FirstSegment, manifest.LastSegment);
        }

        if (manifest.KeyCheck is not null && keyCheck != manifest.KeyCheck)
        {
            throw new StoreDamagedException(keyCheck is null
                ? $"the data directory {directory} was created with an encryption key and none is configured: set Segmentation:EncryptionKey to that key"
                : $"the encryption key does not match the key the data directory {directory} was created with (its key check value differs): configure the original Segmentation:EncryptionKey; with another key its encrypted personal data could never be read");
        }

        // Files no key is recorded for (a directory from before manifests, or whose manifest was deleted, or one a start
        // with a wrong key failed to restore): the configured key is recorded once restore has read them with it
        // (ConfirmKey). Recorded now, a wrong key would fail the restore and then lock the right one out.
        var hasData = snapshots.Count > 0 || segments.Any(n => new FileInfo(FileChangeLog.SegmentPath(directory, n)).Length > 0);
        manifest = manifest with { KeyCheck = manifest.KeyCheck ?? (hasData ? null : keyCheck) };

        // An earlier version's first start that stopped between writing its manifest and creating the first segment:
        // nothing was ever written, so the directory starts fresh (and records that its segment now exists).
        if (!manifest.SegmentFirst && segments.Count == 0 && snapshots.Count == 0 && manifest is { Snapshot: 0, FirstSegment: 1, LastSegment: 1 })
        {
            CreateFirstSegment(directory);
            return (manifest with { SegmentFirst = true }, new RecoveryPlan(null, 0, [1], []));
        }

        manifest = manifest with { SegmentFirst = true }; // from here on every segment it names was created before

        // A segment created just before a crash, before the manifest recorded it, is expected too.
        if (segments.Contains(manifest.LastSegment + 1))
        {
            manifest = manifest with { LastSegment = manifest.LastSegment + 1 };
        }

        var missing = new List<string>();
        if (manifest.Snapshot > 0 && !snapshots.Contains(manifest.Snapshot))
        {
            missing.Add(System.IO.Path.GetFileName(ProfileSnapshotFile.PathFor(directory, manifest.Snapshot)));
        }

        // Every segment the manifest names was created before it was named (the first one before the manifest itself).
        for (var n = manifest.FirstSegment; n <= manifest.LastSegment; n++)
        {
            if (!segments.Contains(n))
            {
                missing.Add(System.IO.Path.GetFileName(FileChangeLog.SegmentPath(directory, n)));
            }
        }

        var damaged = new List<(string Path, long Length, long Sealed)>();
        foreach (var sealedSegment in manifest.Sealed ?? [])
        {
            var path = FileChangeLog.SegmentPath(directory, sealedSegment.Segment);
            if (sealedSegment.Segment >= manifest.FirstSegment && File.Exists(path) && new FileInfo(path).Length is var length && length != sealedSegment.Bytes)
            {
                damaged.Add((path, length, sealedSegment.Bytes));
                missing.Add($"{System.IO.Path.GetFileName(path)} (cut or grown: {length} bytes, {sealedSegment.Bytes} when it was sealed)");
            }
        }

        var unknown = segments.Where(n => n > manifest.LastSegment).ToList();
        if (unknown.Count > 0)
        {
            missing.Add($"(the manifest ends at segment {manifest.LastSegment} but segments {string.Join(", ", unknown)} exist: the manifest is older than the log)");
        }

        if (missing.Count == 0)
        {
            return (manifest, new RecoveryPlan(
                manifest.Snapshot > 0 ? ProfileSnapshotFile.PathFor(directory, manifest.Snapshot) : null,
                manifest.Snapshot,
                [.. segments.Where(n => n >= manifest.FirstSegment && n <= manifest.LastSegment)],
                []));
        }

        if (!acceptDataLoss)
        {
            throw new StoreDamagedException(
                $"the data directory {directory} is missing files its manifest expects: {string.Join(", ", missing)}. " +
                "Starting without them would silently lose acknowledged data, so start-up stops. Restore the files from a backup, " +
                "or, to start with the data that is left and accept the loss, set Segmentation:AcceptDataLoss=true for one start.");
        }

        // The operator accepted the loss: restore from the newest snapshot there and every segment after it. A sealed
        // segment that was cut or grown is first made whole again: grown, back to its sealed length (what follows was
        // written after it was sealed, a write whose sync failed and that its caller was told was not applied); cut,
        // back to its last whole frame (what followed is the loss accepted). Replay then reads it to its end.
        foreach (var (path, length, sealedBytes) in damaged)
        {
            var whole = length > sealedBytes ? sealedBytes : Framing.WholeFrames(File.ReadAllBytes(path));
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None);
            file.SetLength(whole);
            file.Flush(flushToDisk: true);
        }

        var kept = snapshots.Count > 0 ? snapshots[^1] : 0;
        var replay = segments.Where(n => n >= kept).ToList();
        var first1 = kept > 0 ? kept : replay.Count > 0 ? replay[0] : 1;
        var rewritten = manifest with
        {
            Snapshot = kept,
            FirstSegment = first1,
            LastSegment = Math.Max(first1, replay.Count > 0 ? replay[^1] : first1),
            Sealed = [.. replay.SkipLast(1).Select(n => new SealedSegment(n, new FileInfo(FileChangeLog.SegmentPath(directory, n)).Length))],
        };
        logger.LogError(
            "Data directory {Directory}: starting without files its manifest expected ({Missing}) because Segmentation:AcceptDataLoss is set; the changes they held are lost. Restoring from snapshot {Snapshot} and log segments {Segments}",
            directory, string.Join(", ", missing), kept, string.Join(", ", replay));
        return (rewritten, new RecoveryPlan(kept > 0 ? ProfileSnapshotFile.PathFor(directory, kept) : null, kept, replay, missing));
    }

    private static StoreManifest? Read(string directory)
    {
        var path = System.IO.Path.Combine(directory, ManifestName);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var manifest = JsonSerializer.Deserialize(File.ReadAllBytes(path), StoreManifestJson.Default.StoreManifest)
                ?? throw new JsonException("empty manifest");
            if (manifest.Format != ManifestFormat || manifest.FirstSegment < 1 || manifest.LastSegment < manifest.FirstSegment || manifest.Snapshot < 0)
            {
                throw new JsonException($"unsupported or inconsistent manifest (format {manifest.Format}, segments {manifest.FirstSegment}-{manifest.LastSegment}, snapshot {manifest.Snapshot})");
            }

            return manifest;
        }
        catch (JsonException ex)
        {
            throw new StoreDamagedException($"the manifest {path} cannot be read ({ex.Message}); it is written only by the store. Restore it from a backup, or delete it to rebuild it from the files present (missing files then cannot be detected for that start)", ex);
        }
    }

    /// <summary>Test hook: runs after the manifest is renamed into place, before its directory is flushed (to simulate a failing flush).</summary>
    internal Action? BeforeDirectorySync { get; set; }

    // A manifest renamed into place is the one in effect even when flushing the directory failed after the rename:
    // the store then goes by it (a rotation keeps the segment it names), and the caller still sees the failure.
    // True when the manifest file holds exactly what would be written.
    private static bool Unchanged(string directory, StoreManifest manifest)
    {
        var path = System.IO.Path.Combine(directory, ManifestName);
        return File.Exists(path) && File.ReadAllBytes(path).AsSpan().SequenceEqual(JsonSerializer.SerializeToUtf8Bytes(manifest, StoreManifestJson.Default.StoreManifest));
    }

    private void Save(StoreManifest manifest)
    {
        try
        {
            WriteAtomically(System.IO.Path.Combine(Path, ManifestName), file => JsonSerializer.Serialize(file, manifest, StoreManifestJson.Default.StoreManifest), beforeSync: BeforeDirectorySync);
        }
        catch (ReplacedNotFlushedException)
        {
            Manifest = manifest;
            throw;
        }

        Manifest = manifest;
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with what <paramref name="write"/> writes, so that a crash leaves either the old
    /// file or the new one: written to a temporary file (<c>path.tmp</c>), flushed to disk, renamed over the file, and
    /// the directory flushed. On a failure before the rename the temporary file is deleted and the old file is
    /// untouched; a failure to flush the directory after the rename throws <see cref="ReplacedNotFlushedException"/>:
    /// the new file is in place (a power loss may still bring the old one back).
    /// </summary>
    internal static void WriteAtomically(string path, Action<FileStream> write, int bufferSize = 1 << 16, Action? beforeSync = null)
    {
        var temporary = path + ".tmp";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
            try
            {
                beforeSync?.Invoke();
                SyncDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
            }
            catch (IOException ex)
            {
                throw new ReplacedNotFlushedException(path, ex);
            }
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>Deletes a file, ignoring a failure (cleanup after another failure).</summary>
    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>The few C library calls .NET has no API for (flushing a directory).</summary>
internal static partial class NativeMethods
{
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    internal static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);
}

/// <summary>
/// A file was replaced (renamed into place), but flushing its directory afterwards failed: the new file is the one
/// in effect, and a power loss may bring the old one back.
/// </summary>
public sealed class ReplacedNotFlushedException : IOException
{
    /// <summary>Creates the exception.</summary>
    public ReplacedNotFlushedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ReplacedNotFlushedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public ReplacedNotFlushedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for <paramref name="path"/>, replaced, whose directory flush failed with <paramref name="cause"/>.</summary>
    internal ReplacedNotFlushedException(string path, IOException cause)
        : base($"{path} was replaced, but flushing its directory failed ({cause.Message}); a power loss may bring the old file back", cause)
    {
    }
}

/// <summary>Another process holds the data directory.</summary>
public sealed class DataDirectoryLockedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DataDirectoryLockedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public DataDirectoryLockedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public DataDirectoryLockedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The durable store cannot be opened as it is (missing files, wrong key): start-up must stop rather than lose data.</summary>
public sealed class StoreDamagedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StoreDamagedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public StoreDamagedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public StoreDamagedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Source-generated JSON metadata for the manifest.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(StoreManifest))]
internal sealed partial class StoreManifestJson : JsonSerializerContext;
