using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.IO.Hashing;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Storage;

/// <summary>One profile of a snapshot with the ids linked to it.</summary>
/// <param name="Profile">The profile as it was captured.</param>
/// <param name="LinkedIds">Anonymous ids stitched to it.</param>
public sealed record SnapshotEntry(Profile Profile, IReadOnlyList<string> LinkedIds);

/// <summary>What writing or reading a snapshot did.</summary>
/// <param name="Segment">The first log segment the snapshot does not cover (replay starts there).</param>
/// <param name="Profiles">Profiles in the snapshot.</param>
/// <param name="Bytes">File size.</param>
/// <param name="Elapsed">Time taken.</param>
public sealed record SnapshotInfo(long Segment, long Profiles, long Bytes, TimeSpan Elapsed);

/// <summary>
/// The snapshot file: every profile of the store at one point of the change log, so that restore reads
/// it and replays only the log segments written after it. Layout: an 8-byte magic, then frames
/// <c>[u32 length][u32 CRC-32][payload]</c> whose first payload byte is the kind: a header (format version,
/// segment, creation time), chunks of up to <see cref="ChunkProfiles"/> profiles each with its own string
/// table (types, sources, categories... are stored once per chunk and shared by the profiles read back),
/// and a trailer with the profile count. Chunks decode in parallel on restore. Aggregates are not stored:
/// they are a pure function of the events and are rebuilt on read. PII attribute values are sealed with
/// the <see cref="PiiProtector"/>. Files are written to a temporary name, flushed to disk and renamed, so
/// a crash never leaves a partial snapshot under the real name.
/// </summary>
public static class ProfileSnapshotFile
{
    /// <summary>Profiles per chunk.</summary>
    public const int ChunkProfiles = 1024;

    private const int FormatVersion = 1;
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
    public static SnapshotInfo Write(string path, long segment, IEnumerable<SnapshotEntry> entries, PiiProtector? pii)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var temporary = path + ".tmp";
        long profiles = 0;
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            file.Write(Magic);
            using var header = new ChunkWriter();
            header.Writer.Write(KindHeader);
            header.Writer.Write(FormatVersion);
            header.Writer.Write(segment);
            header.Writer.Write(DateTime.UtcNow.Ticks);
            WriteFrame(file, header.Body());

            var chunk = new ChunkWriter();
            try
            {
                foreach (var entry in entries)
                {
                    chunk.Add(entry, pii);
                    profiles++;
                    if (chunk.Count == ChunkProfiles)
                    {
                        WriteFrame(file, chunk.Chunk());
                        chunk.Dispose();
                        chunk = new ChunkWriter();
                    }
                }

                if (chunk.Count > 0)
                {
                    WriteFrame(file, chunk.Chunk());
                }
            }
            finally
            {
                chunk.Dispose();
            }

            using var trailer = new ChunkWriter();
            trailer.Writer.Write(KindTrailer);
            trailer.Writer.Write(profiles);
            WriteFrame(file, trailer.Body());
            file.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        return new SnapshotInfo(segment, profiles, new FileInfo(path).Length, System.Diagnostics.Stopwatch.GetElapsedTime(started));
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
        using var reader = new ChunkReader(header, null);
        if (reader.Byte() != KindHeader || reader.Int32() != FormatVersion)
        {
            throw new InvalidDataException($"snapshot {path}: unknown header or format version");
        }

        var segment = reader.Int64();
        long? expected = null;
        long profiles = 0;
        var frames = new BlockingCollection<byte[]>(boundedCapacity: 4 * Math.Max(1, parallelism));
        var failures = new ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, Math.Max(1, parallelism)).Select(_ => Task.Factory.StartNew(
            () =>
            {
                foreach (var frame in frames.GetConsumingEnumerable())
                {
                    try
                    {
                        using var chunk = new ChunkReader(frame, pii);
                        var count = chunk.ReadChunk(load);
                        Interlocked.Add(ref profiles, count);
                    }
                    catch (Exception ex)
                    {
                        failures.Enqueue(ex);
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
                if (frame[0] == KindTrailer)
                {
                    expected = BinaryPrimitives.ReadInt64LittleEndian(frame.AsSpan(1));
                    break;
                }

                if (frame[0] != KindChunk)
                {
                    throw new InvalidDataException($"snapshot {path}: unknown frame kind {frame[0]}");
                }

                if (!failures.IsEmpty)
                {
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
            throw failure is InvalidDataException ? failure : new InvalidDataException($"snapshot {path} cannot be read: {failure.Message}", failure);
        }

        if (expected is null || expected != profiles)
        {
            throw new InvalidDataException($"snapshot {path} is incomplete: {profiles} profiles read, trailer {(expected is null ? "missing" : $"says {expected}")}");
        }

        return new SnapshotInfo(segment, profiles, file.Length, System.Diagnostics.Stopwatch.GetElapsedTime(started));
    }

    private static void WriteFrame(FileStream file, ReadOnlySpan<byte> payload)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(head, (uint)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head[4..], Crc32.HashToUInt32(payload));
        file.Write(head);
        file.Write(payload);
    }

    private static byte[]? ReadFrame(FileStream file, string path)
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

        var payload = new byte[size];
        file.ReadExactly(payload);
        if (Crc32.HashToUInt32(payload) != BinaryPrimitives.ReadUInt32LittleEndian(head[4..]))
        {
            throw new InvalidDataException($"snapshot {path}: checksum mismatch in the frame at byte {file.Position - size - 8}");
        }

        return payload;
    }

    // Value kinds of attributes; Sealed marks a PII value encrypted with its kind inside.
    private const byte ValueString = 1;
    private const byte ValueNumber = 2;
    private const byte ValueBool = 3;
    private const byte ValueTime = 4;
    private const byte ValueList = 5;
    private const byte ValueSealed = 0x80;

    private sealed class ChunkWriter : IDisposable
    {
        private readonly MemoryStream _body = new();
        private readonly Dictionary<string, int> _symbols = new(StringComparer.Ordinal);
        private readonly List<string> _symbolList = [];

        public ChunkWriter() => Writer = new BinaryWriter(_body);

        public BinaryWriter Writer { get; }

        public int Count { get; private set; }

        public void Dispose() => Writer.Dispose();

        public ReadOnlySpan<byte> Body()
        {
            Writer.Flush();
            return _body.GetBuffer().AsSpan(0, (int)_body.Length);
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

        // [kind][symbol count][symbols][profile count][profiles]
        public byte[] Chunk()
        {
            using var result = new MemoryStream();
            using var w = new BinaryWriter(result);
            w.Write(KindChunk);
            w.Write7BitEncodedInt(_symbolList.Count);
            foreach (var s in _symbolList)
            {
                w.Write(s);
            }

            w.Write7BitEncodedInt(Count);
            w.Write(Body());
            w.Flush();
            return result.ToArray();
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

    private sealed class ChunkReader(byte[] data, PiiProtector? pii) : IDisposable
    {
        private readonly BinaryReader _reader = new(new MemoryStream(data, writable: false));
        private string[] _symbols = [];
        private StoredEvent[] _events = new StoredEvent[64];

        public void Dispose() => _reader.Dispose();

        public byte Byte() => _reader.ReadByte();

        public int Int32() => _reader.ReadInt32();

        public long Int64() => _reader.ReadInt64();

        public int ReadChunk(Action<SnapshotEntry> load)
        {
            var r = _reader;
            if (r.ReadByte() != KindChunk)
            {
                throw new InvalidDataException("not a profile chunk");
            }

            _symbols = new string[r.Read7BitEncodedInt()];
            for (var i = 0; i < _symbols.Length; i++)
            {
                _symbols[i] = r.ReadString();
            }

            var count = r.Read7BitEncodedInt();
            for (var i = 0; i < count; i++)
            {
                load(ReadProfile());
            }

            return count;
        }

        private SnapshotEntry ReadProfile()
        {
            var r = _reader;
            var userId = r.ReadString();
            var version = r.ReadInt64();
            var current = Symbol();
            var linkCount = r.Read7BitEncodedInt();
            var links = linkCount == 0 ? [] : new string[linkCount];
            for (var i = 0; i < links.Length; i++)
            {
                links[i] = r.ReadString();
            }

            var attributeCount = r.Read7BitEncodedInt();
            var attributes = new ProfileAttribute[attributeCount];
            for (var i = 0; i < attributeCount; i++)
            {
                var name = Symbol()!;
                var layer = (AttributeLayer)r.ReadByte();
                var source = Symbol()!;
                var updated = Time(r);
                var kind = r.ReadByte();
                object value;
                if (kind == ValueSealed)
                {
                    var sealedValue = r.ReadBytes(r.Read7BitEncodedInt());
                    if (pii is null)
                    {
                        throw new InvalidDataException($"the snapshot holds encrypted PII (attribute '{name}') and no encryption key is configured (Segmentation:EncryptionKey)");
                    }

                    using var inner = new BinaryReader(new MemoryStream(pii.Open(name, sealedValue)));
                    value = Value(inner, inner.ReadByte());
                }
                else
                {
                    value = Value(r, kind);
                }

                attributes[i] = new ProfileAttribute(name, value, layer, source, updated);
            }

            // Decoded into a buffer reused across the chunk's profiles: the log keeps them in its own form.
            var eventCount = r.Read7BitEncodedInt();
            if (_events.Length < eventCount)
            {
                _events = new StoredEvent[Math.Max(eventCount, _events.Length * 2)];
            }

            for (var i = 0; i < eventCount; i++)
            {
                _events[i] = new StoredEvent(
                    r.ReadString(),
                    Symbol()!,
                    r.ReadInt64(),
                    r.ReadDouble(),
                    r.ReadInt32(),
                    Symbol()!,
                    Symbol()!,
                    Symbol()!,
                    Symbol(),
                    Symbol(),
                    Symbol(),
                    Symbol());
            }

            var events = new ArraySegment<StoredEvent>(_events, 0, eventCount);
            var historyCount = r.Read7BitEncodedInt();
            var history = new SegmentChange[historyCount];
            for (var i = 0; i < historyCount; i++)
            {
                history[i] = new SegmentChange(Symbol(), Symbol()!, Time(r), Symbol()!);
            }

            var consentCount = r.Read7BitEncodedInt();
            var consents = consentCount == 0 ? null : ImmutableList.CreateBuilder<ConsentRecord>();
            for (var i = 0; i < consentCount; i++)
            {
                consents!.Add(new ConsentRecord((ConsentPurpose)r.ReadByte(), r.ReadBoolean(), Symbol()!, Time(r)));
            }

            var profile = new Profile(userId)
            {
                Attributes = AttributeDictionary.OfSorted(attributes),
                CurrentSegment = current,
                SegmentHistory = SegmentHistory.Of(history),
                ConsentTrail = consents?.ToImmutable() ?? [],
            }.WithEvents(events, version);
            return new SnapshotEntry(profile, links);
        }

        private static DateTimeOffset Time(BinaryReader r)
        {
            var ticks = r.ReadInt64();
            return new DateTimeOffset(ticks, TimeSpan.FromMinutes(r.ReadInt16()));
        }

        private static object Value(BinaryReader r, byte kind) => kind switch
        {
            ValueString => r.ReadString(),
            ValueNumber => r.ReadDouble(),
            ValueBool => r.ReadBoolean(),
            ValueTime => Time(r),
            ValueList => ReadList(r),
            _ => throw new InvalidDataException($"unknown attribute value kind {kind}"),
        };

        private static string[] ReadList(BinaryReader r)
        {
            var list = new string[r.Read7BitEncodedInt()];
            for (var i = 0; i < list.Length; i++)
            {
                list[i] = r.ReadString();
            }

            return list;
        }

        private string? Symbol()
        {
            var index = _reader.Read7BitEncodedInt();
            return index == 0 ? null : _symbols[index - 1];
        }
    }
}
