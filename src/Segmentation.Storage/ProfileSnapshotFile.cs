using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.IO.Hashing;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Storage;

/// <summary>One profile of a snapshot with the ids linked to it.</summary>
/// <param name="Profile">The profile as it was captured.</param>
/// <param name="LinkedIds">Anonymous ids stitched to it.</param>
public sealed record SnapshotEntry(Profile Profile, IReadOnlyList<string> LinkedIds);

/// <summary>What writing or reading a snapshot did.</summary>
/// <param name="Segment">The first log segment the snapshot does not cover (replay starts there).</param>
/// <param name="Profiles">Profiles in the snapshot.</param>
/// <param name="Bytes">File size.</param>
/// <param name="Elapsed">Time taken.</param>
public sealed record SnapshotInfo(long Segment, long Profiles, long Bytes, TimeSpan Elapsed)
{
    /// <summary>The store's state besides profiles at the snapshot (the recent RFM models), replayed before the log.</summary>
    public IReadOnlyList<ChangeRecord> Preamble { get; init; } = [];

    /// <summary>The highest profile version handed out when the snapshot was taken (erased profiles' included).</summary>
    public long VersionFloor { get; init; }
}

/// <summary>
/// The snapshot file: every profile of the store at one point of the change log, so that restore reads
/// it and replays only the log segments written after it. Layout: an 8-byte magic, then frames
/// <c>[u32 length][u32 CRC-32][payload]</c> whose first payload byte is the kind: a header (format version,
/// segment, creation time), chunks of up to <see cref="ChunkProfiles"/> profiles each with its own string
/// table (types, sources, categories... are stored once per chunk and shared by the profiles read back),
/// and a trailer with the profile count. The header also carries the store's state besides profiles
/// (<see cref="SnapshotState"/>: format 2; format 1 files, without it, are still read). Chunks decode in parallel on restore. Aggregates are not stored:
/// they are a pure function of the events and are rebuilt on read. PII attribute values are sealed with
/// the <see cref="PiiProtector"/>. Files are written to a temporary name, flushed to disk and renamed, so
/// a crash never leaves a partial snapshot under the real name.
/// </summary>
public static class ProfileSnapshotFile
{
    /// <summary>Profiles per chunk.</summary>
    public const int ChunkProfiles = 1024;

    private const int FormatVersion = 2;
    private const byte KindHeader = 1;
    private const byte KindChunk = 2;
    private const byte KindTrailer = 3;
    private const string Prefix = "snapshot-";
    private const string Suffix = ".snap";
    private static readonly byte[] Magic = "SEGSNAP\n"u8.ToArray();

    /// <summary>The path of the snapshot that covers the log up to <paramref name="segment"/> (exclusive).</summary>
    public static string PathFor(string directory, long segment) =>
        Path.Combine(directory, FormattableString.Invariant($"{Prefix}{segment:D8}{Suffix}"));

    /// <summary>The snapshots in <paramref name="directory"/> by segment, ascending.</summary>
    public static IReadOnlyList<(long Segment, string Path)> Find(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }

        var list = new List<(long, string)>();
        foreach (var file in Directory.EnumerateFiles(directory, Prefix + "*" + Suffix))
        {
            var digits = Path.GetFileName(file)[Prefix.Length..^Suffix.Length];
            if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                list.Add((n, file));
            }
        }

        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>Writes a snapshot atomically (temporary file, fsync, rename).</summary>
    /// <param name="path">Final path (see <see cref="PathFor"/>).</param>
    /// <param name="segment">First log segment the snapshot does not cover.</param>
    /// <param name="entries">The profiles, each captured consistently with its links.</param>
    /// <param name="pii">Seals PII attribute values; null stores them as they are.</param>
    /// <param name="state">What the store holds besides profiles (null: nothing).</param>
    /// <remarks>A failed write removes its temporary file: it may hold personal data, some of it already erased.</remarks>
    public static SnapshotInfo Write(string path, long segment, IEnumerable<SnapshotEntry> entries, PiiProtector? pii, SnapshotState? state = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        state ??= SnapshotState.None;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var temporary = path + ".tmp";
        long profiles = 0;
        try
        {
            profiles = WriteTemporary(temporary, segment, entries, pii, state);
            File.Move(temporary, path, overwrite: true);
            DataDirectory.SyncDirectory(Path.GetDirectoryName(path)!);
        }
        catch
        {
            DataDirectory.TryDelete(temporary);
            throw;
        }

        return new SnapshotInfo(segment, profiles, new FileInfo(path).Length, System.Diagnostics.Stopwatch.GetElapsedTime(started)) { Preamble = state.Preamble, VersionFloor = state.VersionFloor };
    }

    private static long WriteTemporary(string temporary, long segment, IEnumerable<SnapshotEntry> entries, PiiProtector? pii, SnapshotState state)
    {
        long profiles = 0;
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            file.Write(Magic);
            using var header = new ChunkWriter();
            header.Writer.Write(KindHeader);
            header.Writer.Write(FormatVersion);
            header.Writer.Write(segment);
            header.Writer.Write(DateTime.UtcNow.Ticks);
            header.Writer.Write(state.VersionFloor);
            header.Writer.Write(state.Preamble.Count);
            foreach (var record in state.Preamble)
            {
                var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(record, ChangeRecordJson.Default.ChangeRecord);
                header.Writer.Write(json.Length);
                header.Writer.Write(json);
            }

            WriteFrame(file, header.Body());

            using var chunk = new ChunkWriter(); // one for every chunk: its buffers are reused
            foreach (var entry in entries)
            {
                chunk.Add(entry, pii);
                profiles++;
                if (chunk.Count == ChunkProfiles)
                {
                    chunk.WriteChunk(file);
                }
            }

            if (chunk.Count > 0)
            {
                chunk.WriteChunk(file);
            }

            using var trailer = new ChunkWriter();
            trailer.Writer.Write(KindTrailer);
            trailer.Writer.Write(profiles);
            WriteFrame(file, trailer.Body());
            file.Flush(flushToDisk: true);
        }

        return profiles;
    }

    /// <summary>
    /// Reads a snapshot, decoding chunks on up to <paramref name="parallelism"/> threads and passing each
    /// profile to <paramref name="load"/> (called concurrently).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is damaged or incomplete, or a PII value cannot be decrypted.</exception>
    public static SnapshotInfo Read(string path, PiiProtector? pii, Action<SnapshotEntry> load, int parallelism)
    {
        ArgumentNullException.ThrowIfNull(load);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var magic = new byte[Magic.Length];
        if (file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) != magic.Length || !magic.AsSpan().SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path} is not a profile snapshot");
        }

        var header = ReadFrame(file, path) ?? throw new InvalidDataException($"snapshot {path} has no header");
        long segment;
        long versionFloor = 0;
        var preamble = new List<ChangeRecord>();
        try
        {
            var reader = new ByteReader(header.Buffer, header.Length);
            var format = reader.Byte() == KindHeader ? reader.Int32() : -1;
            if (format is not (1 or FormatVersion))
            {
                throw new InvalidDataException($"snapshot {path}: unknown header or format version");
            }

            segment = reader.Int64();
            if (format >= 2)
            {
                _ = reader.Int64(); // created
                versionFloor = reader.Int64();
                var count = reader.Int32();
                for (var i = 0; i < count; i++)
                {
                    var json = reader.Take(reader.Int32());
                    preamble.Add(System.Text.Json.JsonSerializer.Deserialize(json, ChangeRecordJson.Default.ChangeRecord)
                        ?? throw new InvalidDataException($"snapshot {path}: empty state record"));
                }
            }
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new InvalidDataException($"snapshot {path}: its state records cannot be read: {ex.Message}", ex);
        }
        finally
        {
            header.Return();
        }

        long? expected = null;
        long profiles = 0;
        var frames = new BlockingCollection<Frame>(boundedCapacity: 4 * Math.Max(1, parallelism));
        var failures = new ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, Math.Max(1, parallelism)).Select(_ => Task.Factory.StartNew(
            () =>
            {
                var chunk = new ChunkReader(pii); // one per thread, reused across its chunks
                foreach (var frame in frames.GetConsumingEnumerable())
                {
                    try
                    {
                        chunk.Load(frame);
                        var count = chunk.ReadChunk(load);
                        Interlocked.Add(ref profiles, count);
                    }
                    catch (Exception ex)
                    {
                        failures.Enqueue(ex);
                    }
                    finally
                    {
                        chunk.Unload();
                        frame.Return();
                    }
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default)).ToArray();
        try
        {
            while (ReadFrame(file, path) is { } frame)
            {
                var kind = frame.Span[0];
                if (kind == KindTrailer)
                {
                    expected = BinaryPrimitives.ReadInt64LittleEndian(frame.Span[1..]);
                    frame.Return();
                    break;
                }

                if (kind != KindChunk)
                {
                    frame.Return();
                    throw new InvalidDataException($"snapshot {path}: unknown frame kind {kind}");
                }

                if (!failures.IsEmpty)
                {
                    frame.Return();
                    break;
                }

                frames.Add(frame);
            }
        }
        finally
        {
            frames.CompleteAdding();
            Task.WaitAll(workers);
            frames.Dispose();
        }

        if (failures.TryDequeue(out var failure))
        {
            throw new InvalidDataException($"snapshot {path} cannot be read: {failure.Message}", failure);
        }

        if (expected is null || expected != profiles)
        {
            throw new InvalidDataException($"snapshot {path} is incomplete: {profiles} profiles read, trailer {(expected is null ? "missing" : $"says {expected}")}");
        }

        return new SnapshotInfo(segment, profiles, file.Length, System.Diagnostics.Stopwatch.GetElapsedTime(started)) { Preamble = preamble, VersionFloor = versionFloor };
    }

    private static void WriteFrame(FileStream file, ReadOnlySpan<byte> payload) => WriteFrame(file, payload, []);

    // One frame whose payload is first then second (written without joining them).
    private static void WriteFrame(FileStream file, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var crc = new Crc32();
        crc.Append(first);
        crc.Append(second);
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(head, checked((uint)(first.Length + second.Length)));
        BinaryPrimitives.WriteUInt32LittleEndian(head[4..], crc.GetCurrentHashAsUInt32());
        file.Write(head);
        file.Write(first);
        file.Write(second);
    }

    // A frame's payload in a pooled buffer (a chunk is ~1 MB: allocating each would fill the large object
    // heap with garbage during a restore). Cleared on return: it holds personal data.
    private readonly record struct Frame(byte[] Buffer, int Length)
    {
        public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);

        public void Return() => ArrayPool<byte>.Shared.Return(Buffer, clearArray: true);
    }

    private static Frame? ReadFrame(FileStream file, string path)
    {
        Span<byte> head = stackalloc byte[8];
        var read = file.ReadAtLeast(head, 8, throwOnEndOfStream: false);
        if (read == 0)
        {
            return null;
        }

        var size = BinaryPrimitives.ReadUInt32LittleEndian(head);
        if (read < 8 || size == 0 || size > file.Length - file.Position)
        {
            throw new InvalidDataException($"snapshot {path} is truncated or damaged at byte {file.Position - read}");
        }

        var frame = new Frame(ArrayPool<byte>.Shared.Rent((int)size), (int)size);
        file.ReadExactly(frame.Buffer, 0, frame.Length);
        if (Crc32.HashToUInt32(frame.Span) != BinaryPrimitives.ReadUInt32LittleEndian(head[4..]))
        {
            frame.Return();
            throw new InvalidDataException($"snapshot {path}: checksum mismatch in the frame at byte {file.Position - size - 8}");
        }

        return frame;
    }

    // Value kinds of attributes; Sealed marks a PII value encrypted with its kind inside.
    private const byte ValueString = 1;
    private const byte ValueNumber = 2;
    private const byte ValueBool = 3;
    private const byte ValueTime = 4;
    private const byte ValueList = 5;
    private const byte ValueSealed = 0x80;

    // Builds a chunk: the profiles into one buffer, the strings they use into a table written before them.
    // Reused from chunk to chunk (a fresh ~1 MB buffer per chunk would be large-object garbage); its
    // buffers hold personal data, so they are cleared when it is disposed.
    private sealed class ChunkWriter : IDisposable
    {
        private readonly MemoryStream _body = new();
        private readonly MemoryStream _table = new();
        private readonly BinaryWriter _tableWriter;
        private readonly Dictionary<string, int> _symbols = new(StringComparer.Ordinal);
        private readonly List<string> _symbolList = [];

        public ChunkWriter()
        {
            Writer = new BinaryWriter(_body);
            _tableWriter = new BinaryWriter(_table);
        }

        public BinaryWriter Writer { get; }

        public int Count { get; private set; }

        public void Dispose()
        {
            Writer.Flush();
            _tableWriter.Flush();
            Array.Clear(_body.GetBuffer());
            Array.Clear(_table.GetBuffer());
            Writer.Dispose();
            _tableWriter.Dispose();
        }

        public ReadOnlySpan<byte> Body()
        {
            Writer.Flush();
            return _body.GetBuffer().AsSpan(0, (int)_body.Length);
        }

        // Writes the chunk as one frame, [kind][symbol count][symbols][profile count][profiles], and starts the next.
        public void WriteChunk(FileStream file)
        {
            var w = _tableWriter;
            w.Write(KindChunk);
            w.Write7BitEncodedInt(_symbolList.Count);
            foreach (var s in _symbolList)
            {
                w.Write(s);
            }

            w.Write7BitEncodedInt(Count);
            w.Flush();
            WriteFrame(file, _table.GetBuffer().AsSpan(0, (int)_table.Length), Body());
            _table.SetLength(0);
            _body.SetLength(0);
            _symbols.Clear();
            _symbolList.Clear();
            Count = 0;
        }

        public void Add(SnapshotEntry entry, PiiProtector? pii)
        {
            var p = entry.Profile;
            var w = Writer;
            w.Write(p.UserId);
            w.Write(p.Version);
            Symbol(p.CurrentSegment);
            w.Write7BitEncodedInt(entry.LinkedIds.Count);
            foreach (var id in entry.LinkedIds)
            {
                w.Write(id);
            }

            w.Write7BitEncodedInt(p.Attributes.Count);
            foreach (var a in p.Attributes.Values)
            {
                Symbol(a.Name);
                w.Write((byte)a.Layer);
                Symbol(a.Source);
                Time(w, a.UpdatedAt);
                if (pii is not null && pii.IsPii(a.Name))
                {
                    using var inner = new MemoryStream();
                    using (var iw = new BinaryWriter(inner, System.Text.Encoding.UTF8, leaveOpen: true))
                    {
                        Value(iw, a);
                    }

                    var sealedValue = pii.Seal(a.Name, inner.ToArray());
                    w.Write(ValueSealed);
                    w.Write7BitEncodedInt(sealedValue.Length);
                    w.Write(sealedValue);
                }
                else
                {
                    Value(w, a);
                }
            }

            w.Write7BitEncodedInt(p.Events.Count);
            foreach (var e in p.Events)
            {
                w.Write(e.EventId);
                Symbol(e.Type);
                w.Write(e.Ticks);
                w.Write(e.Value);
                w.Write(e.Quantity);
                Symbol(e.SessionId);
                Symbol(e.Source);
                Symbol(e.PageType);
                Symbol(e.Category);
                Symbol(e.ProductId);
                Symbol(e.CampaignId);
                Symbol(e.Country);
            }

            w.Write7BitEncodedInt(p.SegmentHistory.Count);
            foreach (var change in p.SegmentHistory)
            {
                Symbol(change.From);
                Symbol(change.To);
                Time(w, change.At);
                Symbol(change.Cause);
            }

            w.Write7BitEncodedInt(p.ConsentTrail.Count);
            foreach (var consent in p.ConsentTrail)
            {
                w.Write((byte)consent.Purpose);
                w.Write(consent.Granted);
                Symbol(consent.Source);
                Time(w, consent.At);
            }

            Count++;
        }

        private static void Time(BinaryWriter w, DateTimeOffset t)
        {
            w.Write(t.Ticks);
            w.Write((short)t.Offset.TotalMinutes);
        }

        private static void Value(BinaryWriter w, ProfileAttribute a)
        {
            switch (a.Value)
            {
                case string s:
                    w.Write(ValueString);
                    w.Write(s);
                    break;
                case double d:
                    w.Write(ValueNumber);
                    w.Write(d);
                    break;
                case bool b:
                    w.Write(ValueBool);
                    w.Write(b);
                    break;
                case DateTimeOffset t:
                    w.Write(ValueTime);
                    Time(w, t);
                    break;
                case IReadOnlyList<string> list:
                    w.Write(ValueList);
                    w.Write7BitEncodedInt(list.Count);
                    foreach (var item in list)
                    {
                        w.Write(item);
                    }

                    break;
                default:
                    throw new ArgumentException($"attribute '{a.Name}' has a value of unsupported type {a.Value.GetType().Name}", nameof(a));
            }
        }

        // 0 for null, else 1 + the index in the chunk's string table.
        private void Symbol(string? value)
        {
            if (value is null)
            {
                Writer.Write7BitEncodedInt(0);
                return;
            }

            if (!_symbols.TryGetValue(value, out var index))
            {
                index = _symbolList.Count;
                _symbols.Add(value, index);
                _symbolList.Add(value);
            }

            Writer.Write7BitEncodedInt(index + 1);
        }
    }

    // Reads the layout BinaryWriter wrote (little-endian numbers, 7-bit encoded lengths, UTF-8 strings) in
    // place, from a frame or a decrypted PII value.
    private sealed class ByteReader(byte[] data, int length)
    {
        private byte[] _data = data;
        private int _length = length;
        private int _at;

        public int Position => _at;

        public void Reset(byte[] data, int length)
        {
            _data = data;
            _length = length;
            _at = 0;
        }

        public ReadOnlySpan<byte> Take(int count)
        {
            if (count < 0 || _length - _at < count)
            {
                throw new InvalidDataException("a snapshot chunk ends inside a record");
            }

            var span = _data.AsSpan(_at, count);
            _at += count;
            return span;
        }

        public byte Byte() => Take(1)[0];

        public bool Boolean() => Byte() != 0;

        public short Int16() => BinaryPrimitives.ReadInt16LittleEndian(Take(2));

        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

        public double Double() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

        // As BinaryReader.Read7BitEncodedInt.
        public int Count()
        {
            uint result = 0;
            for (var shift = 0; shift < 35; shift += 7)
            {
                var b = Byte();
                result |= (uint)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return shift == 28 && b > 0x0F ? throw new InvalidDataException("a 7-bit encoded number in a snapshot chunk is too large") : (int)result;
                }
            }

            throw new InvalidDataException("a 7-bit encoded number in a snapshot chunk is too large");
        }

        // Bytes after their 7-bit encoded length (a string's UTF-8, a sealed value).
        public ReadOnlySpan<byte> Prefixed() => Take(Count());

        // The length-prefixed bytes at position, without moving.
        public ReadOnlySpan<byte> PrefixedAt(int position)
        {
            var at = _at;
            _at = position;
            var bytes = Prefixed();
            _at = at;
            return bytes;
        }

        public string String() => System.Text.Encoding.UTF8.GetString(Prefixed());

        public DateTimeOffset Time()
        {
            var ticks = Int64();
            return new DateTimeOffset(ticks, TimeSpan.FromMinutes(Int16()));
        }

        public object Value(byte kind) => kind switch
        {
            ValueString => String(),
            ValueNumber => Double(),
            ValueBool => Boolean(),
            ValueTime => Time(),
            ValueList => List(),
            _ => throw new InvalidDataException($"unknown attribute value kind {kind}"),
        };

        private string[] List()
        {
            var list = new string[Count()];
            for (var i = 0; i < list.Length; i++)
            {
                list[i] = String();
            }

            return list;
        }
    }

    // Decodes a chunk frame. String-table entries become strings only when read as one, through the string
    // pool (so "product_view" is not allocated again for every chunk).
    private sealed class ChunkReader(PiiProtector? pii)
    {
        private readonly ByteReader _in = new([], 0);
        private int[] _symbolAt = [];
        private string?[] _symbolStrings = [];
        private int _symbolCount;
        private StoredEvent[] _events = new StoredEvent[64];
        private SegmentChange[] _history = new SegmentChange[8];

        public void Load(Frame frame) => _in.Reset(frame.Buffer, frame.Length);

        // Drops every reference into the frame and to its strings before the buffer goes back to the pool.
        public void Unload()
        {
            Array.Clear(_symbolStrings, 0, _symbolCount);
            Array.Clear(_events);
            Array.Clear(_history);
            _symbolCount = 0;
            _in.Reset([], 0);
        }

        public int ReadChunk(Action<SnapshotEntry> load)
        {
            var r = _in;
            if (r.Byte() != KindChunk)
            {
                throw new InvalidDataException("not a profile chunk");
            }

            _symbolCount = r.Count();
            if (_symbolAt.Length < _symbolCount)
            {
                _symbolAt = new int[_symbolCount];
                _symbolStrings = new string?[_symbolCount];
            }

            for (var i = 0; i < _symbolCount; i++)
            {
                _symbolAt[i] = r.Position;
                r.Prefixed();
            }

            var count = r.Count();
            for (var i = 0; i < count; i++)
            {
                load(ReadProfile());
            }

            return count;
        }

        private SnapshotEntry ReadProfile()
        {
            var r = _in;
            var userId = r.String();
            var version = r.Int64();
            var current = Symbol();
            var linkCount = r.Count();
            var links = linkCount == 0 ? [] : new string[linkCount];
            for (var i = 0; i < links.Length; i++)
            {
                links[i] = r.String();
            }

            var attributeCount = r.Count();
            var attributes = new ProfileAttribute[attributeCount];
            for (var i = 0; i < attributeCount; i++)
            {
                var name = Symbol()!;
                var layer = (AttributeLayer)r.Byte();
                var source = Symbol()!;
                var updated = r.Time();
                var kind = r.Byte();
                object value;
                if (kind == ValueSealed)
                {
                    var sealedValue = r.Prefixed().ToArray();
                    if (pii is null)
                    {
                        throw new InvalidDataException($"the snapshot holds encrypted PII (attribute '{name}') and no encryption key is configured (Segmentation:EncryptionKey)");
                    }

                    var opened = pii.Open(name, sealedValue);
                    var inner = new ByteReader(opened, opened.Length);
                    value = inner.Value(inner.Byte());
                }
                else
                {
                    value = r.Value(kind);
                }

                attributes[i] = new ProfileAttribute(name, value, layer, source, updated);
            }

            // Decoded into a buffer reused across the chunk's profiles: the log keeps them in its own form.
            var eventCount = r.Count();
            if (_events.Length < eventCount)
            {
                _events = new StoredEvent[Math.Max(eventCount, _events.Length * 2)];
            }

            for (var i = 0; i < eventCount; i++)
            {
                _events[i] = new StoredEvent(
                    r.String(),
                    Symbol()!,
                    r.Int64(),
                    r.Double(),
                    r.Int32(),
                    Symbol()!,
                    Symbol()!,
                    Symbol()!,
                    Symbol(),
                    Symbol(),
                    Symbol(),
                    Symbol());
            }

            var events = new ArraySegment<StoredEvent>(_events, 0, eventCount);
            var historyCount = r.Count();
            if (_history.Length < historyCount)
            {
                _history = new SegmentChange[Math.Max(historyCount, _history.Length * 2)];
            }

            for (var i = 0; i < historyCount; i++)
            {
                _history[i] = new SegmentChange(Symbol(), Symbol()!, r.Time(), Symbol()!);
            }

            var consentCount = r.Count();
            var consents = consentCount == 0 ? null : ImmutableList.CreateBuilder<ConsentRecord>();
            for (var i = 0; i < consentCount; i++)
            {
                consents!.Add(new ConsentRecord((ConsentPurpose)r.Byte(), r.Boolean(), Symbol()!, r.Time()));
            }

            var profile = new Profile(userId)
            {
                Attributes = AttributeDictionary.OfSorted(attributes),
                CurrentSegment = current,
                SegmentHistory = SegmentHistory.Of(new ArraySegment<SegmentChange>(_history, 0, historyCount)),
                ConsentTrail = consents?.ToImmutable() ?? [],
            }.WithEvents(events, version);
            return new SnapshotEntry(profile, links);
        }

        // 0 for null, else 1 + the index in the chunk's string table.
        private string? Symbol()
        {
            var index = _in.Count();
            if (index == 0)
            {
                return null;
            }

            if ((uint)(index - 1) >= (uint)_symbolCount)
            {
                throw new InvalidDataException($"string {index} is not in the chunk's table of {_symbolCount}");
            }

            return _symbolStrings[index - 1] ??= StringPool.Decode(_in.PrefixedAt(_symbolAt[index - 1]));
        }
    }
}
