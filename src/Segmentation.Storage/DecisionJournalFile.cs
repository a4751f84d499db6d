using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;

namespace Segmentation.Storage;

/// <summary>
/// The write-ahead journal of served decisions (<c>decisions/decisions-NNNNNNNN.log</c> in the data directory), so that
/// the decisions the ledger remembers survive a crash and outcomes reported after it are still credited to them. A
/// writer thread reads the ledger every <see cref="Interval"/> (the request path does nothing for it: a decision is a
/// slot write, as without the journal), appends what was remembered since as one frame (<see cref="Framing"/>) and
/// flushes it to disk (fsync): group commit, one flush for every decision of the interval. A decision is therefore
/// on disk at most one interval (20 ms by default) after it was served; a crash loses at most that much.
/// </summary>
/// <remarks>
/// <para>The measurement checkpoint (<see cref="MeasurementCheckpointFile"/>) keeps the journal short: each save starts
/// a new file (<see cref="Rotate"/>) before it reads the ledger, records that file's number, and deletes the files
/// before it once saved. A restore reads the checkpoint, then the journal files from that number on
/// (<see cref="Replay"/>); decisions the checkpoint already holds are written to the same slot again, and those after it
/// are counted into the KPIs by the next drain, as if served again, with their own time.</para>
/// <para>A file starts with a header frame (format, and the process bits every decision id of the ledger shares); each
/// later frame is a batch: the segments and decision keys first used in it, then its decisions (sequence, time,
/// user, key). A frame cut short at the end of the last file (a crash mid-write) ends the replay there; anything
/// unreadable is reported and skipped, never a reason to refuse to start: these are derived data.</para>
/// <para>Erasure: a forgotten decision is never written again, and the checkpoint saved after an erasure deletes the
/// files that held the user's earlier decisions.</para>
/// </remarks>
public sealed class DecisionJournalFile : IDisposable
{
    /// <summary>The folder of the journal in the data directory.</summary>
    public const string FolderName = "decisions";

    private const string Prefix = "decisions-";
    private const string Suffix = ".log";
    private const byte KindHeader = 1;
    private const byte KindBatch = 2;
    private const int Format = 1;

    private readonly DecisionMeasurement _measurement;
    private readonly CatalogProvider _catalogs;
    private readonly OutcomeRecorder? _outcomes;
    private readonly List<OutcomeCredit> _credits = []; // taken from the recorder, not yet written
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly ManualResetEventSlim _stop = new();
    private readonly MemoryStream _buffer = new(); // a batch's head: its kind, then the segments and keys it introduces
    private readonly BinaryWriter _writer;
    private readonly MemoryStream _body = new(); // a batch's decisions and outcome credits, written after the head
    private readonly BinaryWriter _bodyWriter;
    private readonly Dictionary<Segment, int> _segments = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<DecisionKey, int> _keys = new(ReferenceEqualityComparer.Instance);
    private readonly List<Segment> _newSegments = [];
    private readonly List<DecisionKey> _newKeys = [];
    private FileStream? _file;
    private long _fileNumber = 1;
    private long _durableLength;
    private LedgerCursor _next = new(0); // the decision written next
    private long _written;
    private Thread? _thread;
    private Exception? _failure;

    /// <summary>Creates the journal kept in <paramref name="dataDirectory"/>'s <see cref="FolderName"/> folder; nothing is read or written before <see cref="Replay"/> or <see cref="Rotate"/>.</summary>
    /// <param name="dataDirectory">The data directory.</param>
    /// <param name="measurement">The ledger whose decisions are journaled.</param>
    /// <param name="catalogs">The serving catalog, whose segments replayed decisions resolve to.</param>
    /// <param name="logger">Where failures and skipped data are reported.</param>
    /// <param name="interval">How often remembered decisions are written and flushed (default 20 ms).</param>
    /// <param name="outcomes">The recorder whose credits are journaled too (null: decisions only).</param>
    public DecisionJournalFile(string dataDirectory, DecisionMeasurement measurement, CatalogProvider catalogs, ILogger? logger = null, TimeSpan? interval = null, OutcomeRecorder? outcomes = null)
    {
        Directory = Path.Combine(dataDirectory, FolderName);
        _measurement = measurement ?? throw new ArgumentNullException(nameof(measurement));
        _catalogs = catalogs ?? throw new ArgumentNullException(nameof(catalogs));
        _logger = logger ?? NullLogger.Instance;
        Interval = interval ?? TimeSpan.FromMilliseconds(20);
        _writer = new BinaryWriter(_buffer, Encoding.UTF8, leaveOpen: true);
        _bodyWriter = new BinaryWriter(_body, Encoding.UTF8, leaveOpen: true);
        _outcomes = outcomes;
        if (outcomes is not null)
        {
            outcomes.JournalsCredits = true;
        }
    }

    /// <summary>The folder of the journal's files.</summary>
    public string Directory { get; }

    /// <summary>How often remembered decisions are written and flushed.</summary>
    public TimeSpan Interval { get; }

    /// <summary>Decisions written since the journal was created.</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Why the last write failed, while writes fail; null when the journal is writable.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>The journal files in <paramref name="directory"/> by number, ascending.</summary>
    public static IReadOnlyList<(long Number, string Path)> Files(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            return [];
        }

        var files = new List<(long, string)>();
        foreach (var file in System.IO.Directory.EnumerateFiles(directory, Prefix + "*" + Suffix))
        {
            var digits = Path.GetFileName(file)[Prefix.Length..^Suffix.Length];
            if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                files.Add((n, file));
            }
        }

        files.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return files;
    }

    /// <summary>
    /// Adds the decisions of the journal files numbered <paramref name="from"/> on to the ledger (after the checkpoint
    /// that names <paramref name="from"/> was restored, or into an empty ledger), deletes the files before it, and
    /// starts the writer. Returns the decisions read.
    /// </summary>
    public int Replay(long from)
    {
        var read = 0;
        lock (_gate)
        {
            var current = _catalogs.Current;
            var replay = new CreditReplay(_outcomes);
            _fileNumber = Math.Max(_fileNumber, from); // files below it are the checkpoint's, deleted at the next restore
            foreach (var (number, path) in Files(Directory))
            {
                _fileNumber = Math.Max(_fileNumber, number + 1); // never append to a file written by another process
                if (number < from)
                {
                    DataDirectory.TryDelete(path); // covered by the checkpoint
                    continue;
                }

                read += ReplayFile(path, current, replay);
            }

            _next = new LedgerCursor(_measurement.Ledger.Issued);
            replay.CreditDue(long.MaxValue); // credits whose decision the journal does not hold (no longer remembered: skipped)
            if (replay.Skipped > 0)
            {
                _logger.LogWarning("{Skipped} of {Credits} journaled outcome credits were not counted again: their decisions are no longer remembered, or their orders were credited already", replay.Skipped, replay.Credits);
            }
        }

        Start();
        return read;
    }

    // The journal's outcome credits, credited as soon as the decision each names is back in the ledger: in the order
    // they were journaled, but a credit may name a decision journaled in a later batch than its own (the decision was
    // being written when its outcome came), so it waits for it.
    private sealed class CreditReplay(OutcomeRecorder? outcomes)
    {
        private readonly List<OutcomeCredit> _waiting = [];

        public int Credits { get; private set; }

        public int Skipped { get; private set; }

        public void Add(List<OutcomeCredit> credits)
        {
            _waiting.AddRange(credits);
            Credits += credits.Count;
        }

        // A file that is not replayed: its credits are not either.
        public void Drop(List<OutcomeCredit> credits)
        {
            _waiting.RemoveRange(_waiting.Count - credits.Count, credits.Count);
            Credits -= credits.Count;
        }

        // Credits every waiting credit whose decision was issued before `issued` (or that names none).
        public void CreditDue(long issued)
        {
            var kept = 0;
            foreach (var credit in _waiting)
            {
                if (credit.Sequence >= issued)
                {
                    _waiting[kept++] = credit; // its decision comes later in the journal
                    continue;
                }

                Skipped += outcomes is null || outcomes.Replay(credit) ? 0 : 1;
            }

            _waiting.RemoveRange(kept, _waiting.Count - kept);
        }
    }

    private int ReplayFile(string path, CatalogSnapshot current, CreditReplay replay)
    {
        var decisions = new List<(long, string, DecisionKey, long)>();
        var credits = new List<OutcomeCredit>();
        ulong? processBits = null;
        var segments = new List<Segment>();
        var keys = new List<DecisionKey>();
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            while (Framing.ReadNext(file, $"decision journal {path}") is { } frame)
            {
                try
                {
                    using var r = new BinaryReader(new MemoryStream(frame.Buffer, 0, frame.Length, writable: false), Encoding.UTF8);
                    var kind = r.ReadByte();
                    if (kind == KindHeader)
                    {
                        processBits = r.ReadInt32() == Format ? r.ReadUInt64() : throw new InvalidDataException("it is of an unknown format");
                        continue;
                    }

                    if (kind != KindBatch || processBits is null)
                    {
                        throw new InvalidDataException($"a frame of kind {kind} where a batch was expected");
                    }

                    for (var n = r.Read7BitEncodedInt(); n > 0; n--)
                    {
                        segments.Add(DecisionKeyCodec.ReadSegment(r, current));
                    }

                    for (var n = r.Read7BitEncodedInt(); n > 0; n--)
                    {
                        keys.Add(DecisionKeyCodec.ReadKey(r, segments, current));
                    }

                    for (var n = r.Read7BitEncodedInt(); n > 0; n--)
                    {
                        var (sequence, ticks, user, key) = (r.ReadInt64(), r.ReadInt64(), r.ReadString(), r.Read7BitEncodedInt());
                        decisions.Add((sequence, user, (uint)key < (uint)keys.Count ? keys[key] : throw new InvalidDataException($"a decision names key {key} of {keys.Count}"), ticks));
                    }

                    for (var n = r.Read7BitEncodedInt(); n > 0; n--)
                    {
                        var (sequence, ticks, type, variant, value, subject, order) = (r.ReadInt64(), r.ReadInt64(), (Core.Outcomes.OutcomeType)r.ReadByte(), r.ReadSByte(), r.ReadDouble(), r.ReadString(), r.ReadString());
                        credits.Add(new OutcomeCredit(sequence, ticks, type, variant < 0 ? null : (Core.Rendering.VariantKind)variant, value, subject, order.Length == 0 ? null : order));
                    }
                }
                finally
                {
                    frame.Return();
                }
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IOException)
        {
            // A crash mid-write leaves a frame cut short at the end; anything else is damage. Either way what was read stays.
            _logger.LogWarning("The decision journal {Path} could not be read to its end ({Reason}); the {Decisions} decisions before that were restored", path, ex.Message, decisions.Count);
        }

        replay.Add(credits);
        if (processBits is not { } bits)
        {
            return 0;
        }

        // In laps of half the ring, each credited and counted (drained) before the next lap can overwrite its decisions:
        // a file may hold more decisions than the ring remembers (a minute of them at a high rate).
        var lap = Math.Max(1, _measurement.Ledger.Capacity / 2);
        for (var start = 0; start < decisions.Count; start += lap)
        {
            if (!_measurement.Ledger.Replay(bits, decisions.GetRange(start, Math.Min(lap, decisions.Count - start))))
            {
                _logger.LogWarning("The decision journal {Path} belongs to another ledger than the restored checkpoint's; its {Decisions} decisions and {Credits} outcome credits were not restored", path, decisions.Count, credits.Count);
                replay.Drop(credits);
                return 0;
            }

            replay.CreditDue(_measurement.Ledger.Issued);
            _measurement.Drain();
        }

        return decisions.Count;
    }

    /// <summary>Starts the writer thread (once); <see cref="Replay"/> does.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_thread is not null || _stop.IsSet)
            {
                return;
            }

            _thread = new Thread(Run) { IsBackground = true, Name = "decision journal writer" };
            _thread.Start();
        }
    }

    /// <summary>Writes and flushes every decision remembered so far (the writer thread does this each interval).</summary>
    /// <exception cref="IOException">The disk refused the write; the decisions are written with the next one.</exception>
    public void Flush()
    {
        lock (_gate)
        {
            WriteLocked();
        }
    }

    /// <summary>
    /// Writes what was remembered so far and starts a new file: every decision written before is in a file numbered
    /// below the result. The measurement checkpoint rotates before it reads the ledger and deletes the files before
    /// the new one (<see cref="DeleteBefore"/>) once saved.
    /// </summary>
    public long Rotate()
    {
        lock (_gate)
        {
            try
            {
                WriteLocked();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Reported by the write. What it did not write is in the state the checkpoint saves next: the decisions
                // in the ledger, the credits in the KPIs (written to the new file as well, they would count twice).
                _credits.Clear();
                _next = new LedgerCursor(Math.Max(_next.Next, _measurement.Ledger.Issued));
            }

            CloseLocked();
            _fileNumber++;
            return _fileNumber;
        }
    }

    /// <summary>Deletes the journal files numbered below <paramref name="number"/> (saved in a checkpoint).</summary>
    public void DeleteBefore(long number)
    {
        foreach (var (n, path) in Files(Directory))
        {
            if (n < number)
            {
                File.Delete(path);
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Set();
        _thread?.Join();
        lock (_gate)
        {
            try
            {
                if (_thread is not null)
                {
                    WriteLocked();
                }
            }
            catch (IOException ex)
            {
                _logger.LogWarning("The last decisions could not be written to the decision journal at shutdown ({Reason})", ex.Message);
            }

            CloseLocked();
        }

        _writer.Dispose();
        _buffer.Dispose();
        _bodyWriter.Dispose();
        _body.Dispose();
        _stop.Dispose();
    }

    private void Run()
    {
        while (!_stop.Wait(Interval))
        {
            lock (_gate)
            {
                try
                {
                    WriteLocked();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Reported once by WriteLocked; retried next interval.
                }
                catch (Exception ex)
                {
                    // Never the end of the process: the decisions stay in the ledger (saved by the next checkpoint).
                    _logger.LogError(ex, "Writing to the decision journal failed unexpectedly; retried next interval");
                }
            }
        }
    }

    // Appends the decisions remembered since the last write as one frame and flushes it. On a failure the file is cut
    // back to its last flushed frame and closed (the next write starts a new file), and the same decisions are written
    // again next time.
    private void WriteLocked()
    {
        var ledger = _measurement.Ledger;
        var issued = ledger.Issued;
        var cursor = _next; // moved on only once the batch is on disk
        var count = 0;
        _buffer.SetLength(0);
        _body.SetLength(0);
        var (w, dw) = (_writer, _bodyWriter);
        w.Write(KindBatch);
        while (cursor.Next < issued)
        {
            var read = cursor.Read(ledger, out var d);
            if (read == LedgerRead.Waiting)
            {
                break; // being written: journaled next time
            }

            if (read == LedgerRead.Remembered)
            {
                dw.Write(d.Sequence);
                dw.Write(d.Ticks);
                dw.Write(d.UserId);
                dw.Write7BitEncodedInt(KeyIndex(d.Key));
                count++;
            }
        }

        _outcomes?.TakeCredits(_credits);
        if (count == 0 && _credits.Count == 0)
        {
            _next = cursor;
            _newSegments.Clear();
            _newKeys.Clear();
            return;
        }

        w.Write7BitEncodedInt(_newSegments.Count);
        foreach (var s in _newSegments)
        {
            DecisionKeyCodec.WriteSegment(w, s);
        }

        w.Write7BitEncodedInt(_newKeys.Count);
        foreach (var k in _newKeys)
        {
            DecisionKeyCodec.WriteKey(w, k, _segments[k.Segment]);
        }

        w.Write7BitEncodedInt(count);
        dw.Write7BitEncodedInt(_credits.Count);
        foreach (var c in _credits)
        {
            dw.Write(c.Sequence);
            dw.Write(c.Ticks);
            dw.Write((byte)c.Type);
            dw.Write((sbyte)(c.Variant is { } v ? (int)v : -1));
            dw.Write(c.Value);
            dw.Write(c.SubjectId);
            dw.Write(c.OrderId ?? "");
        }

        w.Flush();
        dw.Flush();
        try
        {
            var file = _file ?? OpenLocked();
            BeforeWrite?.Invoke();
            Framing.Write(file, _buffer.GetBuffer().AsSpan(0, (int)_buffer.Length), _body.GetBuffer().AsSpan(0, (int)_body.Length));
            file.Flush(flushToDisk: true);
            _durableLength = file.Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (Interlocked.Exchange(ref _failure, ex) is null)
            {
                _logger.LogWarning("Writing to the decision journal failed ({Reason}); the decisions are kept in memory and written again when the disk has room", ex.Message);
            }

            CutBackLocked();
            throw;
        }

        if (Interlocked.Exchange(ref _failure, null) is not null)
        {
            _logger.LogInformation("The decision journal is writable again");
        }

        _next = cursor;
        _newSegments.Clear();
        _newKeys.Clear();
        _credits.Clear();
        Interlocked.Add(ref _written, count);
    }

    // The key's index in the current file, defining it (and its segment) in this batch when it is new there.
    private int KeyIndex(DecisionKey key)
    {
        if (_keys.TryGetValue(key, out var index))
        {
            return index;
        }

        if (!_segments.ContainsKey(key.Segment))
        {
            _segments.Add(key.Segment, _segments.Count);
            _newSegments.Add(key.Segment);
        }

        index = _keys.Count;
        _keys.Add(key, index);
        _newKeys.Add(key);
        return index;
    }

    // The file the journal writes now (or will open next).
    private string CurrentPath => Path.Combine(Directory, FormattableString.Invariant($"{Prefix}{_fileNumber:D8}{Suffix}"));

    private FileStream OpenLocked()
    {
        DataDirectory.CreateDurably(Directory);
        var path = CurrentPath;
        var file = DataDirectory.OpenDurably(path, p => new FileStream(p, FileMode.CreateNew, FileAccess.Write, FileShare.Read, 1 << 16));
        try
        {
            using var header = new MemoryStream();
            using (var hw = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true))
            {
                hw.Write(KindHeader);
                hw.Write(Format);
                hw.Write(_measurement.Ledger.ProcessBits);
            }

            Framing.Write(file, header.GetBuffer().AsSpan(0, (int)header.Length));
        }
        catch
        {
            file.Dispose();
            DataDirectory.TryDelete(path);
            throw;
        }

        _file = file;
        _durableLength = 0;
        return file;
    }

    /// <summary>Test hook: runs before each batch is written (a refused write throws).</summary>
    internal Action? BeforeWrite { get; set; }

    // After a failed write: the file keeps only its flushed frames, and the next write starts a new file (whose
    // batches define their segments and keys again). A file with no batch flushed holds nothing: it is deleted and its
    // number used again, so a disk refusing every write does not collect an empty file per interval.
    private void CutBackLocked()
    {
        if (_file is not null && _durableLength == 0)
        {
            CloseLocked();
            var empty = CurrentPath;
            DataDirectory.TryDelete(empty);
            if (File.Exists(empty))
            {
                _fileNumber++; // not deleted: the next file cannot take its name
            }

            return;
        }

        if (_file is { } file)
        {
            try
            {
                file.SetLength(_durableLength);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A frame cut short ends the file's replay: what was flushed before it is still read.
            }
        }

        CloseLocked();
        _fileNumber++;
    }

    private void CloseLocked()
    {
        try
        {
            _file?.Dispose();
        }
        catch (IOException)
        {
            // Closing flushes nothing new: every batch was flushed when written.
        }

        _file = null;
        _segments.Clear();
        _keys.Clear();
        _newSegments.Clear();
        _newKeys.Clear();
    }
}
