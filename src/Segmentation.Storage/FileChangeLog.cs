using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Telemetry;

namespace Segmentation.Storage;

/// <summary>
/// An append-only change log on local disk with group commit, kept as numbered segment files
/// (<c>changes-00000001.log</c>, ...) in one <see cref="DataDirectory"/>. Each record is framed as
/// a frame (<see cref="Framing"/>) whose payload is the record as UTF-8 JSON.
/// Writers enqueue their record and wait; one writer thread appends everything pending, flushes it to
/// the device (<see cref="FileStream.Flush(bool)"/> with <c>flushToDisk: true</c>, i.e. fsync) and then
/// releases all the waiters of that batch. A write is therefore acknowledged only once it is on disk,
/// and concurrent writers share one fsync.
/// </summary>
/// <remarks>
/// Call <see cref="Recover"/> once before the first <see cref="Append"/>: it replays the good records of
/// the segments the directory's manifest expects from the one a snapshot left off at, truncates a torn tail
/// of the last segment (a crash mid-write) and opens it for appending. A bad record followed by a good one,
/// or a bad record in a segment that is not the last, is corruption, not a torn write, and fails with
/// <see cref="ChangeLogCorruptException"/>. <see cref="Rotate"/> starts a new segment (the snapshot
/// boundary) and <see cref="DeleteSegmentsBefore"/> removes segments a snapshot covers.
/// <para>
/// A failed write or fsync (a full disk, an I/O error) fails only the batch it was writing: its writers
/// get <see cref="StorageUnavailableException"/> (their changes are not applied), the segment is cut back
/// to the end of the last durable batch, and the next append tries again, so writes resume by themselves
/// when the disk has room again. While writes fail, <see cref="Failure"/> says why; with no write coming, the writer
/// checks the disk every second (as many bytes as the failed batch written to a file of its own, then deleted) and clears
/// it once the disk takes them.
/// </para>
/// PII attributes are sealed with the <see cref="PiiProtector"/> before they reach the disk.
/// </remarks>
public sealed class FileChangeLog : IChangeLog, IDisposable
{
    /// <summary>Largest payload accepted; a larger length field marks a corrupt frame.</summary>
    public const int MaxPayload = 16 * 1024 * 1024;

    private const int HeaderSize = Framing.HeaderSize;

    private const string SegmentPrefix = "changes-";
    private const string SegmentSuffix = ".log";
    private const string ProbeFile = "write-probe";

    private readonly DataDirectory _data;
    private readonly bool _ownsData;
    private readonly string _directory;
    private readonly ILogger _logger;
    private readonly PiiProtector? _pii;
    private string _path;
    private long _segment;
    private readonly object _gate = new();
    private Batch _pending = new();
    private bool _writing;
    private long _durableLength;
    private Exception? _failure;
    private long _failedBytes; // the size of the batch that failed last: what the disk must take again
    private bool _stopping;
    private FileStream? _file;
    private Thread? _writer;
    private long _commits;

    // The records of one group commit and how it ended.
    private sealed class Batch
    {
        public List<byte[]> Frames { get; } = [];

        public bool Done { get; set; }

        public Exception? Error { get; set; }
    }

    private int _rotating; // rotations waiting for the writer to go idle; appends wait for them (under the gate)

    /// <summary>Test hook: runs on the writer thread before each fsync (to simulate a slow or failing disk).</summary>
    internal Action? BeforeFlush { get; set; }

    /// <summary>Test hook: runs on the writer thread before the segment is cut back after a failed write.</summary>
    internal Action? BeforeCutBack { get; set; }

    /// <summary>Test hook: runs (under the log's lock) when an append waits for a rotation to end.</summary>
    internal Action? AppendWaitsForRotation { get; set; }

    /// <summary>For tests: rotations waiting for the writer to go idle.</summary>
    internal int RotationsWaiting
    {
        get
        {
            lock (_gate)
            {
                return _rotating;
            }
        }
    }

    /// <summary>For tests: records waiting for the next group commit.</summary>
    internal int PendingRecords
    {
        get
        {
            lock (_gate)
            {
                return _pending.Frames.Count;
            }
        }
    }

    // The writer thread's own: a failed write whose cut-back failed too. The next batch is written only after the
    // cut-back succeeds; written over the refused batch's bytes instead, it could leave whole frames of the refused
    // batch after it, which a restart would replay.
    private bool _cutBackOwed;

    /// <summary>Creates the log kept in <paramref name="directory"/>, opening and locking it; nothing is read until <see cref="Recover"/>.</summary>
    /// <param name="directory">Directory of the segment files (created when missing).</param>
    /// <param name="logger">Where truncations and failures are reported.</param>
    /// <param name="pii">Seals PII attribute values in the records; null writes them as they are.</param>
    /// <exception cref="DataDirectoryLockedException">Another process holds the directory.</exception>
    /// <exception cref="StoreDamagedException">Files the manifest expects are missing, or the key is not the directory's.</exception>
    public FileChangeLog(string directory, ILogger? logger = null, PiiProtector? pii = null)
        : this(DataDirectory.Open(directory, pii, logger), logger, pii, ownsDirectory: true)
    {
    }

    /// <summary>Creates the log kept in an opened data directory.</summary>
    /// <param name="data">The opened, locked directory.</param>
    /// <param name="logger">Where truncations and failures are reported.</param>
    /// <param name="pii">Seals PII attribute values in the records; null writes them as they are.</param>
    /// <param name="ownsDirectory">Dispose the directory (its lock) with the log.</param>
    public FileChangeLog(DataDirectory data, ILogger? logger = null, PiiProtector? pii = null, bool ownsDirectory = false)
    {
        _data = data ?? throw new ArgumentNullException(nameof(data));
        _ownsData = ownsDirectory;
        _directory = data.Path;
        _logger = logger ?? NullLogger.Instance;
        _pii = pii;
        _path = SegmentPath(_directory, 1);
    }

    /// <summary>The data directory the log is kept in.</summary>
    public DataDirectory Data => _data;

    /// <summary>Why the last write failed, while writes fail; null when the log is writable.</summary>
    public Exception? Failure
    {
        get
        {
            lock (_gate)
            {
                return _failure;
            }
        }
    }

    /// <summary>Directory of the segment files.</summary>
    public string Directory => _directory;

    /// <summary>Full path of the segment being appended to.</summary>
    public string FilePath => _path;

    /// <summary>Number of the segment being appended to.</summary>
    public long Segment => Interlocked.Read(ref _segment);

    /// <summary>The path of segment <paramref name="number"/> in <paramref name="directory"/>.</summary>
    public static string SegmentPath(string directory, long number) =>
        Path.Combine(directory, FormattableString.Invariant($"{SegmentPrefix}{number:D8}{SegmentSuffix}"));

    /// <summary>The segment numbers present in <paramref name="directory"/>, ascending.</summary>
    public static IReadOnlyList<long> Segments(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            return [];
        }

        var list = new List<long>();
        foreach (var file in System.IO.Directory.EnumerateFiles(directory, SegmentPrefix + "*" + SegmentSuffix))
        {
            var name = Path.GetFileName(file);
            var digits = name[SegmentPrefix.Length..^SegmentSuffix.Length];
            if (long.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
            {
                list.Add(n);
            }
        }

        list.Sort();
        return list;
    }

    /// <summary>Number of fsyncs so far (each one commits a batch of records).</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>
    /// Reads every segment numbered <paramref name="fromSegment"/> or later, verifying each record's
    /// checksum, and passes each good record to <paramref name="apply"/> in order; truncates a torn or
    /// corrupt tail of the last segment with a warning saying how many bytes were dropped; then opens the
    /// last segment for appending (or starts segment <paramref name="fromSegment"/> when there is none).
    /// </summary>
    /// <param name="apply">Receives each good record in log order.</param>
    /// <param name="fromSegment">First segment not covered by the snapshot the store was loaded from (1 without one).</param>
    /// <exception cref="ChangeLogCorruptException">A bad record is followed by good data, or sits in a segment that is not the last.</exception>
    public LogReplay Recover(Action<ChangeRecord> apply, long fromSegment = 1)
    {
        ArgumentNullException.ThrowIfNull(apply);
        ArgumentOutOfRangeException.ThrowIfLessThan(fromSegment, 1);
        if (_file is not null)
        {
            throw new InvalidOperationException("the change log is already open");
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var segments = _data.Plan.Segments.Where(n => n >= fromSegment).ToList();
        long records = 0, bytes = 0;
        for (var i = 0; i < segments.Count - 1; i++)
        {
            var path = SegmentPath(_directory, segments[i]);
            using var sealedSegment = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            var (sealedRecords, sealedGood) = Scan(sealedSegment, apply, _pii);
            if (sealedGood != sealedSegment.Length)
            {
                throw new ChangeLogCorruptException($"change log segment {path} is corrupt at byte {sealedGood} (record {sealedRecords + 1}) and later segments follow; refusing to drop data. Restore the file from a backup or inspect it.");
            }

            records += sealedRecords;
            bytes += sealedGood;
        }

        var last = segments.Count > 0 ? segments[^1] : Math.Max(fromSegment, _data.Manifest.LastSegment);
        _path = SegmentPath(_directory, last);
        if (!File.Exists(_path))
        {
            File.Create(_path).Dispose();
            DataDirectory.SyncDirectory(_directory);
            _data.RecordSegment(last);
        }

        long count, good, dropped;
        using (var read = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
        {
            (count, good) = Scan(read, apply, _pii);
            dropped = read.Length - good;
            if (dropped > 0)
            {
                _logger.LogWarning(
                    "Change log {Path}: torn tail accepted at byte {Offset}: truncated {Dropped} bytes holding {TornRecords} incomplete record(s) after the last good record ({Records} records kept); a write that was cut short was never acknowledged",
                    _path, good, dropped, CountFrames(read, good), count);
            }
        }

        // Unbuffered: batches are written with one positional write each, so a failed write leaves no buffered state behind.
        var file = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            if (dropped > 0)
            {
                file.SetLength(good);
                file.Flush(flushToDisk: true);
            }

            records += count;
            bytes += good;
            _durableLength = good;
            _file = file;
            Interlocked.Exchange(ref _segment, last);
            _writer = new Thread(WriteLoop) { IsBackground = true, Name = "change-log writer" };
            _writer.Start();
            return new LogReplay(records, bytes, dropped, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts a new segment: waits until everything appended so far is on disk, closes the current
    /// segment and appends from now on to the next one, whose number is returned. Every record appended
    /// before the call is in a segment numbered lower than the result. Appends wait meanwhile.
    /// </summary>
    public long Rotate()
    {
        lock (_gate)
        {
            if (_file is null)
            {
                throw new InvalidOperationException("the change log is not open: call Recover first");
            }

            // New appends wait until the rotation is done (into the new segment): otherwise a steady stream of writers,
            // each arriving during the previous fsync, keeps something pending forever and the rotation never starts.
            _rotating++;
            try
            {
                while (_writing || _pending.Frames.Count > 0)
                {
                    ObjectDisposedException.ThrowIf(_stopping, this);
                    Monitor.Wait(_gate);
                }

                ObjectDisposedException.ThrowIf(_stopping, this);
                return RotateLocked();
            }
            finally
            {
                _rotating--;
                Monitor.PulseAll(_gate);
            }
        }
    }

    // The rotation itself, under the gate with the writer idle.
    private long RotateLocked()
    {
        // The writer thread is idle now: nothing is pending and the last batch has ended.
        var next = Interlocked.Read(ref _segment) + 1;
        var path = SegmentPath(_directory, next);
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            file.Flush(flushToDisk: true);
            DataDirectory.SyncDirectory(_directory);
            _data.RecordSegment(next, sealedLength: _durableLength);
        }
        catch (ReplacedNotFlushedException)
        {
            // The manifest in effect names the new segment and the old one's final length: the rotation has
            // happened, and appending on to the old segment would grow it past that length. Only the flush failed.
            SwitchTo(file, path, next);
            throw;
        }
        catch
        {
            file.Dispose();
            DataDirectory.TryDelete(path);
            throw;
        }

        SwitchTo(file, path, next);
        return next;
    }

    // Appends to the new segment from now on, then seals the old one at its durable length (switched first: a failure to
    // seal must not leave appends going on past the length the manifest recorded). Under the gate.
    private void SwitchTo(FileStream file, string path, long segment)
    {
        var sealing = _file!;
        var durable = _durableLength;
        _file = file;
        _path = path;
        _durableLength = 0;
        Interlocked.Exchange(ref _segment, segment);
        using (sealing)
        {
            sealing.SetLength(durable); // nothing after the last durable batch belongs to the sealed segment
        }
    }

    /// <summary>Deletes the segments numbered below <paramref name="segment"/> (covered by a snapshot). Returns how many.</summary>
    public int DeleteSegmentsBefore(long segment)
    {
        var deleted = 0;
        foreach (var n in Segments(_directory))
        {
            if (n < segment && n != Segment)
            {
                File.Delete(SegmentPath(_directory, n));
                deleted++;
            }
        }

        return deleted;
    }

    /// <summary>Reads every record of the log's segments in <paramref name="directory"/> without changing them (tools and tests).</summary>
    /// <exception cref="ChangeLogCorruptException">A bad record is followed by good data.</exception>
    public static IReadOnlyList<ChangeRecord> ReadAll(string directory, out long droppedBytes, PiiProtector? pii = null)
    {
        var list = new List<ChangeRecord>();
        droppedBytes = 0;
        foreach (var n in Segments(directory))
        {
            using var file = new FileStream(SegmentPath(directory, n), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var (_, good) = Scan(file, list.Add, pii);
            droppedBytes += file.Length - good;
        }

        return list;
    }

    /// <inheritdoc />
    /// <exception cref="StorageUnavailableException">The record could not be written (full disk, I/O error); it is not durable and must not be applied. Retrying later may succeed.</exception>
    public void Append(ChangeRecord record) => Commit([Frame(record, _pii)]);

    /// <inheritdoc />
    /// <remarks>
    /// The records join one group commit whole: the writer takes them with the same batch, so they are written and
    /// flushed together, or refused together when the write or the flush fails. A crash during the write can leave the
    /// first of them in the log, unacknowledged, as it can any batch's.
    /// </remarks>
    public void AppendAll(IReadOnlyList<ChangeRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0)
        {
            return;
        }

        var frames = new byte[records.Count][];
        for (var i = 0; i < frames.Length; i++)
        {
            frames[i] = Frame(records[i], _pii);
        }

        Commit(frames);
    }

    // Adds the frames to the pending group commit under the gate and waits until they are on disk.
    private void Commit(ReadOnlySpan<byte[]> frames)
    {
        lock (_gate)
        {
            if (_file is null)
            {
                throw new InvalidOperationException("the change log is not open: call Recover first");
            }

            ObjectDisposedException.ThrowIf(_stopping, this);
            while (_rotating > 0)
            {
                AppendWaitsForRotation?.Invoke();
                Monitor.Wait(_gate);
                ObjectDisposedException.ThrowIf(_stopping, this);
            }

            var batch = _pending;
            batch.Frames.AddRange(frames);

            Monitor.PulseAll(_gate);
            while (!batch.Done)
            {
                Monitor.Wait(_gate);
            }

            if (batch.Error is { } error)
            {
                throw error is ObjectDisposedException
                    ? new ObjectDisposedException(nameof(FileChangeLog), error)
                    : new StorageUnavailableException($"the change could not be written to the change log ({StorageUnavailableException.Describe(error)}); it was not applied: retry later", error);
            }
        }
    }

    /// <summary>Commits what is pending, stops the writer and closes the file.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }

        _writer?.Join();
        _file?.Dispose();
        if (_ownsData)
        {
            _data.Dispose();
        }
    }

    /// <summary>Frames a record: header (length, CRC-32) and JSON payload, PII attribute values sealed.</summary>
    internal static byte[] Frame(ChangeRecord record, PiiProtector? pii = null)
    {
        if (pii is not null && record is TraitsChange traits && traits.Attributes.Any(a => pii.IsPii(a.Name)))
        {
            record = traits with { Attributes = [.. traits.Attributes.Select(a => pii.IsPii(a.Name) ? a.Seal(pii) : a)] };
        }

        var payload = JsonSerializer.SerializeToUtf8Bytes(record, ChangeRecordJson.Default.ChangeRecord);
        if (payload.Length > MaxPayload)
        {
            // A write the log can never take (a traits write of long lists of personal data, sealed and encoded): refused
            // as invalid before anything is stored, never an internal error a retry repeats.
            throw new Core.Validation.ValidationException($"the write is {payload.Length:N0} bytes once encoded for the change log (personal data sealed), more than the {MaxPayload:N0} one change may take: split it into smaller writes");
        }

        return Framing.Of(payload);
    }

    /// <summary>How often, while writes fail and none is waiting, the writer checks whether the disk takes writes again.</summary>
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);

    private void WriteLoop()
    {
        while (true)
        {
            Batch? batch = null;
            lock (_gate)
            {
                var probe = false;
                while (_pending.Frames.Count == 0 && !_stopping && !probe)
                {
                    // While writes fail, the disk is checked now and then even when no write comes: health reports the log
                    // as failing until it can write, and a server taken out of rotation for it would otherwise get no
                    // write to find that out with.
                    probe = !(_failure is null ? Monitor.Wait(_gate, Timeout.Infinite) : Monitor.Wait(_gate, ProbeInterval))
                        && _pending.Frames.Count == 0 && !_stopping;
                }

                if (!probe && _pending.Frames.Count == 0)
                {
                    return;
                }

                if (!probe)
                {
                    batch = _pending;
                    _pending = new Batch();
                }

                _writing = true;
            }

            if (batch is null)
            {
                ProbeAfterFailure();
                continue;
            }

            Exception? error = null;
            long length = 0;
            try
            {
                var buffers = new ReadOnlyMemory<byte>[batch.Frames.Count];
                for (var i = 0; i < buffers.Length; i++)
                {
                    buffers[i] = batch.Frames[i];
                    length += buffers[i].Length;
                }

                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                if (_cutBackOwed)
                {
                    CutBack(); // fails this batch, unwritten, while the segment cannot be cut back
                }

                RandomAccess.Write(_file!.SafeFileHandle, buffers, _durableLength);
                BeforeFlush?.Invoke();
                _file!.Flush(flushToDisk: true);
                Interlocked.Increment(ref _commits);
                SegmentationTelemetry.ChangeLogFsync.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
            }
            catch (Exception ex)
            {
                error = ex;
            }

            if (error is not null)
            {
                Repair(error);
            }

            lock (_gate)
            {
                if (error is null)
                {
                    _durableLength += length;
                    if (_failure is not null)
                    {
                        _logger.LogWarning("Change log {Path}: writes succeed again", _path);
                    }

                    _failure = null;
                }
                else
                {
                    _failure = error;
                    _failedBytes = length;
                }

                batch.Error = error;
                batch.Done = true;
                _writing = false;
                Monitor.PulseAll(_gate);
            }
        }
    }

    // Whether the log can write again after a failure, with no write waiting: the cut-back still owed, then as many
    // bytes as the failed batch written and flushed to a file of its own (never to the segment) and deleted. Clears the
    // failure when all of it worked; a batch written meanwhile waits for the probe, as for another batch.
    private void ProbeAfterFailure()
    {
        Exception? error = null;
        var probe = Path.Combine(_directory, ProbeFile);
        try
        {
            if (_cutBackOwed)
            {
                CutBack();
            }

            // As much as the batch that failed (from a page to 16 MiB): a disk with a few kilobytes free is not yet one that
            // takes the writes waiting.
            var size = Math.Clamp(Volatile.Read(ref _failedBytes), 4096, 16 << 20);
            var zeros = new byte[(int)Math.Min(size, 1 << 16)];
            using (var file = new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                for (long written = 0; written < size; written += zeros.Length)
                {
                    file.Write(zeros);
                }

                file.Flush(flushToDisk: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error = ex;
        }
        finally
        {
            try
            {
                File.Delete(probe);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                error ??= ex;
            }
        }

        lock (_gate)
        {
            if (error is null && _failure is not null)
            {
                _logger.LogWarning("Change log {Path}: the disk takes writes again", _path);
                _failure = null;
            }

            _writing = false;
            Monitor.PulseAll(_gate);
        }
    }

    // After a failed write or fsync: the batch's bytes may be partly in the file (and, after a failed fsync,
    // in an unknown state), so the segment is cut back to the end of the last durable batch before anything
    // else is written. A repair that fails too is logged; the next batch repeats it before writing.
    private void Repair(Exception error)
    {
        _logger.LogError(
            "Change log {Path}: write failed ({Error}); the batch's writers get UNAVAILABLE and nothing of it is applied. Writes are retried as they come",
            _path, error.Message);
        if (_cutBackOwed)
        {
            return; // the batch failed on the cut-back itself: nothing of it was written
        }

        try
        {
            CutBack();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _cutBackOwed = true;
            _logger.LogError("Change log {Path}: could not cut the segment back to {Length} bytes after the failed write ({Error}); the next write tries again first", _path, _durableLength, ex.Message);
        }
    }

    private void CutBack()
    {
        BeforeCutBack?.Invoke();
        _file!.SetLength(_durableLength);
        _file.Flush(flushToDisk: true);
        _cutBackOwed = false;
    }

    // Returns the number of good records and the offset just after the last one.
    private static (long Records, long Good) Scan(FileStream file, Action<ChangeRecord> apply, PiiProtector? pii)
    {
        file.Seek(0, SeekOrigin.Begin);
        var length = file.Length;
        var header = new byte[HeaderSize];
        var buffer = new byte[4096];
        long offset = 0, records = 0;
        while (true)
        {
            var frame = TryReadFrame(file, offset, length, header, ref buffer);
            if (frame is null)
            {
                // Bad or incomplete frame: a torn tail unless a good frame follows it.
                if (offset < length && LooksLikeGoodFrameAfter(file, offset, length))
                {
                    throw new ChangeLogCorruptException($"change log {file.Name} is corrupt at byte {offset} (record {records + 1}) and good records follow; refusing to drop them. Restore the file from a backup or inspect it.");
                }

                return (records, offset);
            }

            ChangeRecord record;
            try
            {
                record = JsonSerializer.Deserialize(buffer.AsSpan(0, frame.Value), ChangeRecordJson.Default.ChangeRecord)
                    ?? throw new InvalidDataException("null record");
            }
            catch (Exception ex) when (ex is JsonException or InvalidDataException or NotSupportedException)
            {
                throw new ChangeLogCorruptException($"change log {file.Name}: record {records + 1} at byte {offset} has a valid checksum but cannot be read: {ex.Message}", ex);
            }

            if (record is TraitsChange traits && traits.Attributes.Any(a => a.Sealed is not null))
            {
                if (pii is null)
                {
                    throw new ChangeLogCorruptException($"change log {file.Name}: record {records + 1} holds encrypted PII and no encryption key is configured (Segmentation:EncryptionKey)");
                }

                record = traits with { Attributes = [.. traits.Attributes.Select(a => a.Sealed is null ? a : a.Open(pii))] };
            }

            apply(record);
            records++;
            offset += HeaderSize + frame.Value;
        }
    }

    // Reads the frame at offset into buffer; returns the payload length, or null when it is incomplete or its checksum fails.
    private static int? TryReadFrame(FileStream file, long offset, long length, byte[] header, ref byte[] buffer)
    {
        if (length - offset < HeaderSize)
        {
            return null;
        }

        file.Seek(offset, SeekOrigin.Begin);
        file.ReadExactly(header);
        var (size, crc) = Framing.Header(header);
        if (size == 0 || size > MaxPayload || size > length - offset - HeaderSize)
        {
            return null;
        }

        if (buffer.Length < size)
        {
            buffer = new byte[Math.Max(size, buffer.Length * 2)];
        }

        file.ReadExactly(buffer, 0, (int)size);
        return Framing.Matches(buffer.AsSpan(0, (int)size), crc) ? (int)size : null;
    }

    // How many frames (complete or not) start in the torn tail from offset: walked by their length fields.
    private static int CountFrames(FileStream file, long offset)
    {
        var header = new byte[HeaderSize];
        var count = 0;
        while (offset < file.Length)
        {
            count++;
            if (file.Length - offset < HeaderSize)
            {
                break;
            }

            file.Seek(offset, SeekOrigin.Begin);
            file.ReadExactly(header);
            var (size, _) = Framing.Header(header);
            if (size == 0 || size > MaxPayload)
            {
                break;
            }

            offset += HeaderSize + size;
        }

        return count;
    }

    /// <summary>Largest tail searched for good frames after a bad one; a longer remainder is never a torn write.</summary>
    private const int MaxTornTail = 64 * 1024 * 1024;

    // True when any intact frame starts after the bad frame at offset: the bad frame is then damage in
    // the middle of the log, not a torn final write (a crash only tears the last batch).
    private static bool LooksLikeGoodFrameAfter(FileStream file, long offset, long length)
    {
        var remaining = length - offset;
        if (remaining > MaxTornTail)
        {
            return true;
        }

        var rest = new byte[remaining];
        file.Seek(offset, SeekOrigin.Begin);
        file.ReadExactly(rest);
        for (var i = 1; i + HeaderSize < rest.Length; i++)
        {
            if (Framing.IsFrameAt(rest, i))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>The change log is damaged before its tail; start-up must stop rather than drop data.</summary>
public sealed class ChangeLogCorruptException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ChangeLogCorruptException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ChangeLogCorruptException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public ChangeLogCorruptException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
