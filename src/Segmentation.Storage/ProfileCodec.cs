using System.Buffers.Binary;
using System.Collections.Immutable;
using Segmentation.Core.Profiles;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Storage;

/// <summary>One profile of a snapshot with the ids linked to it.</summary>
/// <param name="Profile">The profile as it was captured.</param>
/// <param name="LinkedIds">Anonymous ids stitched to it.</param>
public sealed record SnapshotEntry(Profile Profile, IReadOnlyList<string> LinkedIds);

/// <summary>
/// How profiles are encoded in a snapshot's chunks: each chunk has its own string table (types, sources,
/// categories... stored once per chunk and shared by the profiles read back), then per profile its id,
/// version, current segment, linked ids, attributes (PII values sealed), events, segment history and consent
/// trail. Aggregates are not stored: they are a pure function of the events and are rebuilt on read. The
/// file around the chunks (magic, framing, header, trailer) is <see cref="ProfileSnapshotFile"/>'s.
/// </summary>
internal static class ProfileCodec
{
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
    internal sealed class ChunkWriter : IDisposable
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

        /// <summary>Bytes of profiles in the chunk so far (its symbol table aside).</summary>
        public long BodyLength
        {
            get
            {
                Writer.Flush();
                return _body.Length;
            }
        }

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
        public void WriteChunk(Stream file, byte kind)
        {
            var w = _tableWriter;
            w.Write(kind);
            w.Write7BitEncodedInt(_symbolList.Count);
            foreach (var s in _symbolList)
            {
                w.Write(s);
            }

            w.Write7BitEncodedInt(Count);
            w.Flush();
            Framing.Write(file, _table.GetBuffer().AsSpan(0, (int)_table.Length), Body());
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
    internal sealed class ByteReader(byte[] data, int length)
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

        /// <summary>Skips length-prefixed bytes, giving where they start and how many there are (in <see cref="Data"/>).</summary>
        public (int Start, int Length) SkipPrefixed()
        {
            var length = Count();
            var start = _at;
            Take(length);
            return (start, length);
        }

        /// <summary>The buffer read.</summary>
        public byte[] Data => _data;

        // The length-prefixed bytes at position, without moving.
        public ReadOnlySpan<byte> PrefixedAt(int position)
        {
            var (start, length) = PrefixedRangeAt(position);
            return _data.AsSpan(start, length);
        }

        // Where the length-prefixed bytes at position start and how many there are (in Data), without moving.
        public (int Start, int Length) PrefixedRangeAt(int position)
        {
            var at = _at;
            _at = position;
            var range = SkipPrefixed();
            _at = at;
            return range;
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
    internal sealed class ChunkReader(PiiProtector? pii)
    {
        private readonly ByteReader _in = new([], 0);
        private int[] _symbolAt = [];
        private string?[] _symbolStrings = [];
        private int _symbolCount;
        private StoredEvent[] _events = new StoredEvent[64];
        private readonly Utf8EventIds _ids = new();
        private SegmentChange[] _history = new SegmentChange[8];
        private (int Start, int Length)[] _causes = new (int, int)[8];

        public void Load(PooledFrame frame) => _in.Reset(frame.Buffer, frame.Length);

        // Drops every reference into the frame and to its strings before the buffer goes back to the pool.
        public void Unload()
        {
            Array.Clear(_symbolStrings, 0, _symbolCount);
            Array.Clear(_events);
            Array.Clear(_history);
            _symbolCount = 0;
            _in.Reset([], 0);
        }

        public int ReadChunk(byte kind, Action<SnapshotEntry> load)
        {
            var r = _in;
            if (r.Byte() != kind)
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

            _ids.Reset(r.Data);
            for (var i = 0; i < eventCount; i++)
            {
                // The id and the session id stay in the chunk's bytes (_ids): the log keeps them as bytes, so they are never decoded.
                var (idStart, idLength) = r.SkipPrefixed();
                var type = Symbol()!;
                var ticks = r.Int64();
                var value = r.Double();
                var quantity = r.Int32();
                var (sessionStart, sessionLength) = SymbolBytes();
                _ids.Add(idStart, idLength, sessionStart, sessionLength);
                _events[i] = new StoredEvent("", type, ticks, value, quantity, "", Symbol()!, Symbol()!, Symbol(), Symbol(), Symbol(), Symbol());
            }

            var events = new ArraySegment<StoredEvent>(_events, 0, eventCount);
            var historyCount = r.Count();
            if (_history.Length < historyCount)
            {
                _history = new SegmentChange[Math.Max(historyCount, _history.Length * 2)];
                _causes = new (int, int)[_history.Length];
            }

            for (var i = 0; i < historyCount; i++)
            {
                // The cause stays in the chunk's bytes (_causes), as event ids do: the history keeps it as bytes.
                var from = Symbol();
                var to = Symbol()!;
                var at = r.Time();
                _causes[i] = SymbolBytes();
                _history[i] = new SegmentChange(from, to, at, "");
            }

            var consentCount = r.Count();
            var consents = consentCount == 0 ? null : ImmutableList.CreateBuilder<ConsentRecord>();
            for (var i = 0; i < consentCount; i++)
            {
                consents!.Add(new ConsentRecord((ConsentPurpose)r.Byte(), r.Boolean(), Symbol()!, r.Time()));
            }

            var (log, aggregates) = Profile.Replay(events, _ids);
            var profile = new Profile(userId)
            {
                Version = version,
                Events = log,
                Aggregates = aggregates,
                Attributes = AttributeDictionary.OfSorted(attributes),
                CurrentSegment = current,
                SegmentHistory = SegmentHistory.Of(_history.AsSpan(0, historyCount), r.Data, _causes.AsSpan(0, historyCount)),
                ConsentTrail = consents?.ToImmutable() ?? [],
            };
            return new SnapshotEntry(profile, links);
        }

        // 0 for null, else 1 + the index in the chunk's string table.
        private string? Symbol()
        {
            var index = SymbolIndex();
            return index < 0 ? null : _symbolStrings[index] ??= StringPool.Decode(_in.PrefixedAt(_symbolAt[index]));
        }

        // Where a string of the table starts in the chunk's bytes and its length, without decoding it (null: no bytes).
        private (int Start, int Length) SymbolBytes()
        {
            var index = SymbolIndex();
            return index < 0 ? (0, 0) : _in.PrefixedRangeAt(_symbolAt[index]);
        }

        // The index in the table of the next string read, or -1 for null.
        private int SymbolIndex()
        {
            var index = _in.Count();
            if ((uint)index > (uint)_symbolCount)
            {
                throw new InvalidDataException($"string {index} is not in the chunk's table of {_symbolCount}");
            }

            return index - 1;
        }
    }
}
