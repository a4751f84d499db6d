using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.ChangeStream;

namespace Segmentation.Storage;

/// <summary>
/// The change stream on disk, in the data directory's <c>changes/</c> folder: segment files
/// <c>stream-&lt;first offset&gt;.log</c> of frames (one per append: a batch of entries, each with its offset), a new
/// segment after 16 MiB, whole segments deleted once every entry in them is older than the retention window (the
/// newest segment is always kept, so offsets continue after a restart even when every entry has expired), and the
/// pending triggers in <c>triggers.bin</c> (written to a temporary file, flushed and renamed over the old one).
/// A torn frame at the end of the newest segment (a crash mid-write) is cut off when the journal is opened; a
/// damaged frame elsewhere is skipped with a warning, and the intact frames after it are read on, so that their
/// offsets are never handed out again (the stream is derived data: a consumer that misses entries is told to
/// resynchronise, never served wrong ones).
/// </summary>
public sealed class ChangeStreamJournal : IChangeFeedJournal, IDisposable
{
    /// <summary>The folder in the data directory.</summary>
    public const string FolderName = "changes";

    private const string Prefix = "stream-";
    private const string TriggersName = "triggers.bin";
    private const string MembershipsName = "memberships.bin";
    private const string StreamIdName = "stream.id";
    private const byte Format = 1;

    // The memberships file's format: a user's segment count as a 7-bit encoded integer (Format wrote a byte).
    private const byte MembershipsFormat = 2;
    private const int MinEntryBytes = 8 + 1 + 8 + 8 + 4; // offset, kind, time, version and four empty strings

    private readonly string _folder;
    private readonly ILogger _logger;
    private readonly long _segmentBytes;
    private readonly Lock _gate = new();
    private bool _closed;
    private readonly List<(IReadOnlySet<string> Ids, long Through)> _erased = []; // until the journal has appended past Through
    private long _lastAppended;
    private FileStream? _current;
    private long _currentFirst;
    private bool _rollNext; // the current segment holds entries past the window: the next append starts a new one

    /// <summary>Opens (creating) the journal in <paramref name="dataDirectory"/>; a new segment file starts after <paramref name="segmentBytes"/>.</summary>
    public ChangeStreamJournal(string dataDirectory, ILogger? logger = null, long segmentBytes = 16 << 20)
    {
        _segmentBytes = segmentBytes;
        _folder = Path.Combine(dataDirectory, FolderName);
        DataDirectory.CreateDurably(_folder);
        _logger = logger ?? NullLogger.Instance;
        foreach (var leftover in Directory.EnumerateFiles(_folder, "*.tmp"))
        {
            DataDirectory.TryDelete(leftover); // a save a crash interrupted: it may hold user ids and is never read
        }

        StreamId = ReadOrCreateStreamId();
    }

    /// <inheritdoc />
    public string StreamId { get; }

    // The stream's identity, written when the folder first holds a stream (a folder of a version before it gets one now:
    // its consumers had none to compare). Unreadable, it is replaced: consumers that pass the old one resynchronise.
    private string ReadOrCreateStreamId()
    {
        var path = Path.Combine(_folder, StreamIdName);
        try
        {
            if (File.Exists(path) && File.ReadAllText(path, Encoding.ASCII).Trim() is { Length: 32 } kept && kept.All(char.IsAsciiHexDigitLower))
            {
                return kept;
            }
        }
        catch (IOException ex)
        {
            _logger.LogWarning("Change stream identity {File} could not be read ({Reason}); the stream gets a new one", path, ex.Message);
        }

        var id = ChangeFeed.NewStreamId();
        DataDirectory.WriteAtomically(path, file => file.Write(Encoding.ASCII.GetBytes(id)));
        return id;
    }

    /// <inheritdoc />
    public (IReadOnlyList<FeedEntry> Entries, long LastOffset) Load(DateTimeOffset notBefore, int max)
    {
        var kept = new Queue<FeedEntry>();
        var last = 0L;
        void Take(IReadOnlyList<FeedEntry> entries)
        {
            foreach (var e in entries)
            {
                last = Math.Max(last, e.Offset);
                if (e.At >= notBefore)
                {
                    kept.Enqueue(e);
                    if (kept.Count > max)
                    {
                        kept.Dequeue();
                    }
                }
            }
        }

        var segments = Segments();
        for (var i = 0; i < segments.Count; i++)
        {
            var (first, path) = segments[i];
            using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            var good = 0L;
            try
            {
                while (Framing.ReadNext(file, path) is { } frame)
                {
                    try
                    {
                        Take(Decode(frame.Span));
                    }
                    finally
                    {
                        frame.Return();
                    }

                    good = file.Position;
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
            {
                // Intact frames after the bad one make it damage, not a torn last write: they are read on, so that their
                // offsets are never handed out again (the feed serves only the contiguous tail after the gap).
                var after = ReadOnAfterDamage(file, good, last, Take);
                if (after == 0 && i == segments.Count - 1)
                {
                    _logger.LogWarning("Change stream journal {File}: a torn write at byte {Offset} was cut off ({Reason})", path, good, ex.Message);
                    file.SetLength(good);
                }
                else
                {
                    _logger.LogWarning(
                        "Change stream journal {File} is damaged at byte {Offset} ({Reason}); the entries in the damaged part are lost, {Frames} intact frames after it were read",
                        path,
                        good,
                        ex.Message,
                        after);
                }
            }

            last = Math.Max(last, first - 1);
        }

        lock (_gate)
        {
            _lastAppended = Math.Max(_lastAppended, last); // what is on disk, for trimming and erasures after a restart
        }

        return (kept.ToList(), last);
    }

    // Looks for intact frames after the bad one at offset (a frame whose length fits, whose checksum matches and which
    // decodes to entries numbered after every entry read so far), hands their entries to take and returns how many.
    private static int ReadOnAfterDamage(FileStream file, long offset, long last, Action<IReadOnlyList<FeedEntry>> take)
    {
        var rest = new byte[file.Length - offset];
        file.Seek(offset, SeekOrigin.Begin);
        file.ReadExactly(rest);
        var frames = 0;
        var at = 1;
        while (at + Framing.HeaderSize < rest.Length)
        {
            // The payload starts with the format: a cheap test before the checksum of a possible frame is computed.
            if (rest[at + Framing.HeaderSize] == Format && Framing.IsFrameAt(rest, at))
            {
                var size = (int)Framing.Header(rest.AsSpan(at)).Size;
                var entries = TryDecode(rest.AsSpan(at + Framing.HeaderSize, size));
                if (entries is { Count: > 0 } && entries[0].Offset > last)
                {
                    take(entries);
                    last = entries[^1].Offset;
                    frames++;
                    at += Framing.HeaderSize + size;
                    continue;
                }
            }

            at++;
        }

        return frames;
    }

    private static List<FeedEntry>? TryDecode(ReadOnlySpan<byte> payload)
    {
        try
        {
            return Decode(payload);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or ArgumentException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public void Append(IReadOnlyList<FeedEntry> entries)
    {
        lock (_gate)
        {
            // Closed at shutdown, after which the data directory may already be another server's: nothing is written then.
            ObjectDisposedException.ThrowIf(_closed, this);
            AppendLocked(BlankErased(entries));
            if (entries.Count > 0)
            {
                _lastAppended = Math.Max(_lastAppended, entries[^1].Offset);
                _erased.RemoveAll(r => r.Through <= _lastAppended);
            }
        }
    }

    private void AppendLocked(IReadOnlyList<FeedEntry> entries)
    {
        if (entries.Count == 0)
        {
            return;
        }

        if (_current is null || _current.Length >= _segmentBytes || _rollNext)
        {
            Roll(entries[0].Offset);
        }

        var payload = Encode(entries);
        var at = _current!.Position;
        try
        {
            Framing.Write(_current, payload);
            _current.Flush(flushToDisk: true);
        }
        catch
        {
            // A half-written frame (a full disk) would read as a torn tail and cut off what later retries append:
            // take it back; if even that fails, the next append starts a new segment file.
            try
            {
                _current.SetLength(at);
            }
            catch (IOException)
            {
                _current.Dispose();
                _current = null;
            }

            throw;
        }
    }

    /// <inheritdoc />
    public void Redact(IReadOnlySet<string> userIds, long throughOffset)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            if (throughOffset > _lastAppended)
            {
                _erased.Add((new HashSet<string>(userIds, StringComparer.Ordinal), throughOffset));
            }

            foreach (var (first, path) in Segments())
            {
                RedactSegment(first, path, userIds, throughOffset);
            }

            // Saved memberships and pending triggers without the users; a copy set aside as damaged is deleted (it may
            // name them, and it is kept only for diagnosis).
            foreach (var damaged in Directory.EnumerateFiles(_folder, "*.damaged-*"))
            {
                DataDirectory.TryDelete(damaged);
            }

            var membershipsPath = Path.Combine(_folder, MembershipsName);
            if (LoadMemberships() is { } memberships)
            {
                if (memberships.Users.Any(u => userIds.Contains(u.UserId)))
                {
                    WriteMemberships(memberships with { Users = [.. memberships.Users.Where(u => !userIds.Contains(u.UserId))] });
                }
            }
            else if (File.Exists(membershipsPath))
            {
                DataDirectory.TryDelete(membershipsPath); // unreadable: useless, and it may name them
            }

            if (LoadTriggers() is { } triggers && triggers.Pending.Any(t => userIds.Contains(t.UserId)))
            {
                WriteTriggers(triggers with { Pending = [.. triggers.Pending.Where(t => !userIds.Contains(t.UserId))] });
            }
        }
    }

    // Rewrites one segment file with the users' entries blanked, when it holds any (temporary file, fsync, rename).
    // Only entries up to the erasure's offset: a later one under the id is a new profile's, named in memory too.
    private void RedactSegment(long first, string path, IReadOnlySet<string> userIds, long throughOffset)
    {
        var entries = new List<FeedEntry>();
        var found = false;
        void Take(IReadOnlyList<FeedEntry> frame)
        {
            foreach (var e in frame)
            {
                var erased = e.Offset <= throughOffset && userIds.Contains(e.UserId);
                found |= erased;
                entries.Add(erased ? Erased(e) : e);
            }
        }

        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            long good = 0;
            try
            {
                while (Framing.ReadNext(file, path) is { } frame)
                {
                    try
                    {
                        Take(Decode(frame.Span));
                    }
                    finally
                    {
                        frame.Return();
                    }

                    good = file.Position;
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
            {
                // The damaged part may name the user and is never served (see Load): the file is rewritten without it,
                // keeping the intact frames after it as Load reads them, so their entries and offsets are not lost.
                found = true;
                ReadOnAfterDamage(file, good, entries.Count > 0 ? entries[^1].Offset : first - 1, Take);
            }
        }

        if (!found)
        {
            return;
        }

        var current = first == _currentFirst && _current is not null;
        if (current)
        {
            _current!.Dispose();
            _current = null;
        }

        try
        {
            DataDirectory.WriteAtomically(path, file =>
            {
                if (entries.Count > 0)
                {
                    Framing.Write(file, Encode(entries));
                }
            });
        }
        finally
        {
            if (current)
            {
                Roll(first); // appends go on at the end of the rewritten file
            }
        }
    }

    // Entries of erased users up to the stream's offset at their erasure are written blanked (an append that read them
    // before the erasure); a later entry is a new profile's under the same id.
    private IReadOnlyList<FeedEntry> BlankErased(IReadOnlyList<FeedEntry> entries) =>
        _erased.Count == 0 ? entries : [.. entries.Select(e => IsErased(e.UserId, e.Offset) ? Erased(e) : e)];

    private bool IsErased(string userId, long offset = long.MinValue) =>
        _erased.Any(r => offset <= r.Through && r.Ids.Contains(userId));

    // One frame's payload: the format, the count, then each entry.
    private static byte[] Encode(IReadOnlyList<FeedEntry> entries)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Format);
            writer.Write(entries.Count);
            foreach (var e in entries)
            {
                writer.Write(e.Offset);
                writer.Write((byte)e.Kind);
                writer.Write(e.At.UtcTicks);
                writer.Write(e.CatalogVersion);
                writer.Write(e.UserId);
                writer.Write(e.SegmentId);
                writer.Write(e.Cause);
                writer.Write(e.Trigger ?? "");
            }

            // After the entries (where a version before this one stops reading, telling "announced again" by the cause's
            // text alone): which of them were announced again, by index, so that a caller's text ending in ":again" is
            // not taken for it.
            var again = entries.Count(e => e.Again);
            writer.Write7BitEncodedInt(again);
            for (var i = 0; again > 0 && i < entries.Count; i++)
            {
                if (entries[i].Again)
                {
                    writer.Write7BitEncodedInt(i);
                    again--;
                }
            }
        }

        return buffer.ToArray();
    }

    private static FeedEntry Erased(FeedEntry e) => e with { UserId = "", Cause = "erased" };

    /// <inheritdoc />
    public void Trim(long oldest)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            TrimLocked(oldest);
        }
    }

    private void TrimLocked(long oldest)
    {
        // Every entry written is past the window (a stream that receives nothing more): the newest segment, which would
        // keep them until the next write however long that takes, gives way to an empty one named after them, which
        // keeps the numbering for a restart.
        var newest = Segments() is { Count: > 0 } all ? all[^1].First : 0;
        if (_lastAppended > 0 && oldest > _lastAppended && newest <= _lastAppended)
        {
            Roll(_lastAppended + 1);
        }

        var segments = Segments();
        for (var i = 0; i + 1 < segments.Count; i++)
        {
            if (segments[i + 1].First <= oldest && segments[i].First != _currentFirst)
            {
                File.Delete(segments[i].Path); // every entry in it is before the oldest retained
            }
        }

        // The segment being written is never deleted, and a quiet deployment may not fill one in months: once it holds
        // entries past the window it takes no more, so a later trim deletes it (an entry leaves the disk within about
        // two windows once the stream is written to again, not at the next restart or 16 MiB; the newest segment is
        // always kept, as it numbers the offsets after a restart).
        _rollNext = _current is not null && _currentFirst < oldest;
    }

    /// <inheritdoc />
    public TriggerCheckpoint? LoadTriggers()
    {
        var path = Path.Combine(_folder, TriggersName);
        try
        {
            return ReadFile(path, reader =>
            {
                var cursor = reader.ReadInt64();
                var count = reader.ReadInt32();
                var pending = new List<PendingTrigger>(count);
                for (var i = 0; i < count; i++)
                {
                    pending.Add(new PendingTrigger(reader.ReadString(), reader.ReadString(), reader.ReadString(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64()));
                }

                return new TriggerCheckpoint(cursor, pending);
            });
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
        {
            // Rebuilt from the retained stream instead: the triggers of entries before it are lost, and said so.
            _logger.LogWarning("Pending triggers {File} cannot be read ({Reason}); moved aside, triggers are scheduled again from the retained change stream", path, ex.Message);
            File.Move(path, path + ".damaged-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture), overwrite: true);
            return new TriggerCheckpoint(0, []);
        }
    }

    /// <inheritdoc />
    public void SaveTriggers(TriggerCheckpoint checkpoint)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            // Without users being erased (a checkpoint taken before their erasure and saved after it).
            WriteTriggers(_erased.Count == 0 ? checkpoint : checkpoint with { Pending = [.. checkpoint.Pending.Where(p => !IsErased(p.UserId))] });
        }
    }

    private void WriteTriggers(TriggerCheckpoint checkpoint) => WriteFile(Path.Combine(_folder, TriggersName), writer =>
    {
        writer.Write(checkpoint.Cursor);
        writer.Write(checkpoint.Pending.Count);
        foreach (var p in checkpoint.Pending)
        {
            writer.Write(p.UserId);
            writer.Write(p.TriggerId);
            writer.Write(p.SegmentId);
            writer.Write(p.EnteredOffset);
            writer.Write(p.EnteredTicks);
            writer.Write(p.DueTicks);
        }
    });

    /// <inheritdoc />
    public MembershipCheckpoint? LoadMemberships()
    {
        var path = Path.Combine(_folder, MembershipsName);
        try
        {
            return ReadFile(path, MembershipsFormat, (reader, format) =>
            {
                var offset = reader.ReadInt64();
                var count = reader.ReadInt32();
                var users = new List<(string, string[])>(count);
                for (var i = 0; i < count; i++)
                {
                    var user = reader.ReadString();
                    var segments = new string[format == Format ? reader.ReadByte() : reader.Read7BitEncodedInt()];
                    for (var k = 0; k < segments.Length; k++)
                    {
                        segments[k] = string.Intern(reader.ReadString());
                    }

                    users.Add((user, segments));
                }

                return new MembershipCheckpoint(offset, users);
            });
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
        {
            _logger.LogWarning("Membership checkpoint {File} cannot be read ({Reason}); changes while the server was down are not announced this time", path, ex.Message);
            return null;
        }
    }

    /// <inheritdoc />
    public void SaveMemberships(MembershipCheckpoint checkpoint)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            WriteMemberships(_erased.Count == 0 ? checkpoint : checkpoint with { Users = [.. checkpoint.Users.Where(u => !IsErased(u.UserId))] }); // as the triggers
        }
    }

    // Each user's segments whole (a catalog may have 2,000): their count as a 7-bit encoded integer, the memberships
    // file's second format (the first wrote a byte and kept 255 segments; the previous version reads that file as
    // unknown and announces nothing at that start).
    private void WriteMemberships(MembershipCheckpoint checkpoint) => WriteFile(Path.Combine(_folder, MembershipsName), MembershipsFormat, writer =>
    {
        writer.Write(checkpoint.Offset);
        writer.Write(checkpoint.Users.Count);
        foreach (var (user, segments) in checkpoint.Users)
        {
            writer.Write(user);
            writer.Write7BitEncodedInt(segments.Length);
            foreach (var segment in segments)
            {
                writer.Write(segment);
            }
        }
    });

    // One framed, checksummed payload (format byte first) in a file of its own; null when the file does not exist.
    private static T? ReadFile<T>(string path, Func<BinaryReader, T> read)
        where T : class => ReadFile(path, Format, (reader, _) => read(reader));

    // As above; a file of format Format up to `newest` is read, and `read` is told which.
    private static T? ReadFile<T>(string path, byte newest, Func<BinaryReader, byte, T> read)
        where T : class
    {
        if (!File.Exists(path))
        {
            return null;
        }

        using var file = File.OpenRead(path);
        if (Framing.ReadNext(file, path) is not { } frame)
        {
            return null;
        }

        try
        {
            using var reader = new BinaryReader(new MemoryStream(frame.Buffer, 0, frame.Length), Encoding.UTF8);
            var format = reader.ReadByte();
            if (format < Format || format > newest)
            {
                throw new InvalidDataException($"{path}: unknown format");
            }

            return read(reader, format);
        }
        finally
        {
            frame.Return();
        }
    }

    // Writes the payload to a temporary file, flushes it to disk and renames it over the old one: a crash leaves either.
    private static void WriteFile(string path, Action<BinaryWriter> write) => WriteFile(path, Format, write);

    private static void WriteFile(string path, byte format, Action<BinaryWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(format);
            write(writer);
        }

        // Callers hold the journal's lock, so two saves (a shutdown's and a timer's) never share the temporary file.
        DataDirectory.WriteAtomically(path, file => Framing.Write(file, buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _closed = true;
            _current?.Dispose();
        }
    }

    private void Roll(long first)
    {
        _rollNext = false;
        _current?.Dispose();
        _current = null; // until the new segment is open: a failure to open it leaves the next append to try again
        _currentFirst = first;
        // Unbuffered: a refused write leaves nothing waiting in a buffer, so taking it back and closing the file cannot
        // fail again on the same full disk (a buffered close would, and leave a closed file behind for every later append).
        _current = DataDirectory.OpenDurably(Path.Combine(_folder, $"{Prefix}{first:D20}.log"), p => new FileStream(p, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0));
    }

    private List<(long First, string Path)> Segments() =>
        [.. Directory.EnumerateFiles(_folder, Prefix + "*.log")
            .Select(p => (First: long.TryParse(Path.GetFileNameWithoutExtension(p).AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1, Path: p))
            .Where(s => s.First > 0)
            .OrderBy(s => s.First)];

    private static List<FeedEntry> Decode(ReadOnlySpan<byte> payload)
    {
        using var reader = new BinaryReader(new MemoryStream(payload.ToArray()), Encoding.UTF8);
        if (reader.ReadByte() != Format)
        {
            throw new InvalidDataException("unknown change stream journal format");
        }

        var count = reader.ReadInt32();
        if (count < 0 || count > payload.Length / MinEntryBytes)
        {
            throw new InvalidDataException($"a change stream journal frame of {payload.Length} bytes cannot hold {count} entries");
        }

        var entries = new List<FeedEntry>(count);
        for (var i = 0; i < count; i++)
        {
            var offset = reader.ReadInt64();
            var kind = (ChangeKind)reader.ReadByte();
            var at = new DateTimeOffset(reader.ReadInt64(), TimeSpan.Zero);
            var version = reader.ReadInt64();
            var user = reader.ReadString();
            var segment = reader.ReadString();
            var cause = reader.ReadString();
            var trigger = reader.ReadString();
            entries.Add(new FeedEntry(offset, user, segment, kind, at, version, cause, trigger.Length == 0 ? null : trigger));
        }

        if (reader.BaseStream.Position == reader.BaseStream.Length)
        {
            // Written by a version before the list of entries announced again: told by the cause's text, as it was.
            for (var i = 0; i < entries.Count; i++)
            {
                if (entries[i].Kind == ChangeKind.Entered && entries[i].Cause.EndsWith(MembershipIndex.AgainSuffix, StringComparison.Ordinal))
                {
                    entries[i] = entries[i] with { Again = true };
                }
            }

            return entries;
        }

        var again = reader.Read7BitEncodedInt();
        if (again < 0 || again > count)
        {
            throw new InvalidDataException($"a change stream journal frame of {count} entries cannot have {again} announced again");
        }

        for (var i = 0; i < again; i++)
        {
            var index = reader.Read7BitEncodedInt();
            if (index < 0 || index >= count)
            {
                throw new InvalidDataException($"a change stream journal frame of {count} entries has no entry {index}");
            }

            entries[index] = entries[index] with { Again = true };
        }

        return entries;
    }
}
