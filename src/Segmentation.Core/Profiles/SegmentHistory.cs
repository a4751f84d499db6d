using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using System.Runtime.InteropServices;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's recent changes of winning segment, oldest first, encoded in one byte array: segment ids as
/// pooled-string ids, the time as UTC ticks and an offset, the cause as UTF-8. A profile holds one small
/// array instead of an array of records and a cause string per change; reading decodes (changes are read by
/// GetProfile, export and snapshots, not by decisions). A value wrapping that array; immutable.
/// </summary>
public readonly struct SegmentHistory : IReadOnlyList<SegmentChange>
{
    private readonly byte[]? _data;      // [count][changes]; null in default(SegmentHistory): empty

    private SegmentHistory(byte[] data) => _data = data;

    /// <summary>No changes.</summary>
    public static SegmentHistory Empty => default;

    /// <inheritdoc />
    public int Count
    {
        get
        {
            if (_data is null)
            {
                return 0;
            }

            var at = 0;
            return (int)Varint.Read(_data, ref at);
        }
    }

    /// <summary>The change at <paramref name="index"/>, decoded from the start (O(index)).</summary>
    public SegmentChange this[int index] => this.ElementAt(index);

    /// <summary>The changes <paramref name="changes"/>, in the order given.</summary>
    public static SegmentHistory Of(IEnumerable<SegmentChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        return changes switch
        {
            SegmentChange[] array => Of(array, null, default),
            List<SegmentChange> list => Of(CollectionsMarshal.AsSpan(list), null, default),
            _ => Of(changes.ToArray(), null, default),
        };
    }

    /// <summary>
    /// The changes <paramref name="changes"/>, in the order given; with <paramref name="causeBytes"/>, each change's
    /// cause is the UTF-8 at <paramref name="causes"/>[i] in it instead of its <see cref="SegmentChange.Cause"/> (a
    /// snapshot's own bytes, as a restore reads them: never decoded into a string only to be encoded back).
    /// </summary>
    internal static SegmentHistory Of(ReadOnlySpan<SegmentChange> changes, byte[]? causeBytes, ReadOnlySpan<(int Start, int Length)> causes)
    {
        if (changes.Length == 0)
        {
            return Empty;
        }

        var size = 5;
        for (var i = 0; i < changes.Length; i++)
        {
            size += MaxSize(changes[i]) + (causeBytes is null ? 0 : Literal.MaxSize(causeBytes.AsSpan(causes[i].Start, causes[i].Length)));
        }

        // Encoded into a pooled buffer, then copied into the exact-size array.
        var buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            var at = Varint.Write(buffer, (uint)changes.Length);
            for (var i = 0; i < changes.Length; i++)
            {
                var change = changes[i];
                var span = buffer.AsSpan(at);
                var n = PooledString.Write(span, change.From);
                n += PooledString.Write(span[n..], change.To);
                BinaryPrimitives.WriteInt64LittleEndian(span[n..], change.At.UtcTicks);
                n += 8;
                n += Varint.WriteSigned(span[n..], (int)change.At.TotalOffsetMinutes);
                n += causeBytes is null ? Literal.Write(span[n..], change.Cause) : Literal.WriteUtf8(span[n..], causeBytes.AsSpan(causes[i].Start, causes[i].Length));
                at += n;
            }

            return new SegmentHistory(buffer.AsSpan(0, at).ToArray());
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true); // causes quote event ids, which are personal data
        }
    }

    /// <summary>This history with <paramref name="change"/> appended, keeping the latest <paramref name="keep"/> changes.</summary>
    public SegmentHistory Add(SegmentChange change, int keep)
    {
        var all = new List<SegmentChange>(Count + 1);
        all.AddRange(this);
        all.Add(change);
        return Of(all.Count > keep ? all.GetRange(all.Count - keep, keep) : all);
    }

    /// <inheritdoc />
    public IEnumerator<SegmentChange> GetEnumerator()
    {
        if (_data is null)
        {
            yield break;
        }

        var at = 0;
        var count = (int)Varint.Read(_data, ref at);
        for (var i = 0; i < count; i++)
        {
            yield return Read(_data, ref at);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static SegmentChange Read(byte[] data, ref int at)
    {
        var from = PooledString.Read(data, ref at);
        var to = PooledString.Read(data, ref at)!;
        var ticks = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(at));
        at += 8;
        var offset = Varint.ReadSigned(data, ref at);
        var when = new DateTimeOffset(ticks, TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(offset));
        var cause = Literal.Read(data, ref at).ToString();
        return new SegmentChange(from, to, when, cause);
    }

    private static int MaxSize(SegmentChange change) =>
        PooledString.MaxSize(change.From) + PooledString.MaxSize(change.To) + 8 + 5 + Literal.MaxSize(change.Cause);
}
