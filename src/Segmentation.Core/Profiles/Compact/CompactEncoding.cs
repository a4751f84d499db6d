using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Unicode;

namespace Segmentation.Core.Profiles.Compact;

// The compact encodings profiles use inside their byte arrays (the event log, the segment history).

/// <summary>
/// A string in the byte array: a varint header (byte length × 2, plus 1 when the bytes are UTF-16
/// because the string is not valid Unicode, so it round-trips exactly), then the bytes.
/// </summary>
internal readonly ref struct Literal(ReadOnlySpan<byte> bytes, bool utf16)
{
    private readonly ReadOnlySpan<byte> _bytes = bytes;
    private readonly bool _utf16 = utf16;

    public static int MaxSize(string value) => 5 + (value.Length * 3);

    public static int Write(Span<byte> span, string value)
    {
        var body = span[5..];
        if (Utf8.FromUtf16(value, body, out _, out var written, replaceInvalidSequences: false) == OperationStatus.Done)
        {
            var header = Varint.Write(span, (uint)written << 1);
            body[..written].CopyTo(span[header..]);
            return header + written;
        }

        var raw = MemoryMarshal.AsBytes(value.AsSpan());
        var n = Varint.Write(span, ((uint)raw.Length << 1) | 1);
        raw.CopyTo(span[n..]);
        return n + raw.Length;
    }

    /// <summary>The most bytes <see cref="WriteUtf8"/> writes for <paramref name="utf8"/>.</summary>
    public static int MaxSize(ReadOnlySpan<byte> utf8) => 5 + (utf8.Length * 3);

    /// <summary>Writes the string <paramref name="utf8"/> decodes to, as <see cref="Write"/> would, copying valid UTF-8 as it is.</summary>
    public static int WriteUtf8(Span<byte> span, ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8))
        {
            return Write(span, Encoding.UTF8.GetString(utf8)); // what decoding makes of invalid bytes (replacement characters)
        }

        var header = Varint.Write(span, (uint)utf8.Length << 1);
        utf8.CopyTo(span[header..]);
        return header + utf8.Length;
    }

    public static Literal Read(ReadOnlySpan<byte> data, scoped ref int at)
    {
        var header = Varint.Read(data, ref at);
        var length = (int)(header >> 1);
        var literal = new Literal(data.Slice(at, length), (header & 1) != 0);
        at += length;
        return literal;
    }

    public static Literal At(ReadOnlySpan<byte> data, int at) => Read(data, ref at);

    public static bool EqualsString(Literal literal, string value)
    {
        if (literal._utf16)
        {
            return MemoryMarshal.Cast<byte, char>(literal._bytes).SequenceEqual(value);
        }

        if (literal._bytes.Length < value.Length || literal._bytes.Length > value.Length * 3)
        {
            return false;
        }

        Span<char> chars = literal._bytes.Length <= 256 ? stackalloc char[literal._bytes.Length] : new char[literal._bytes.Length];
        var n = Encoding.UTF8.GetChars(literal._bytes, chars);
        return chars[..n].SequenceEqual(value);
    }

    public override string ToString() =>
        _utf16 ? new string(MemoryMarshal.Cast<byte, char>(_bytes)) : Encoding.UTF8.GetString(_bytes);
}

internal static class Varint
{
    /// <summary>Writes a signed value zig-zag encoded (small magnitudes, either sign, take one byte).</summary>
    public static int WriteSigned(Span<byte> span, int value) => Write(span, (uint)((value << 1) ^ (value >> 31)));

    /// <summary>Reads a value <see cref="WriteSigned"/> wrote.</summary>
    public static int ReadSigned(ReadOnlySpan<byte> data, ref int at)
    {
        var zigzag = Read(data, ref at);
        return (int)(zigzag >> 1) ^ -(int)(zigzag & 1);
    }

    public static int Write(Span<byte> span, uint value)
    {
        var n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[n++] = (byte)value;
        return n;
    }

    public static uint Read(ReadOnlySpan<byte> data, ref int at)
    {
        uint value = 0;
        var shift = 0;
        byte b;
        do
        {
            b = data[at++];
            value |= (uint)(b & 0x7F) << shift;
            shift += 7;
        }
        while ((b & 0x80) != 0);

        return value;
    }
}

/// <summary>
/// A low-cardinality string (source, country, segment id...) in a byte array: a varint code, 0 for null,
/// 1 when the string follows as a <see cref="Literal"/> (the pool did not take it), else its
/// <see cref="StringPool"/> id + 2.
/// </summary>
internal static class PooledString
{
    private const uint NullCode = 0;
    private const uint LiteralCode = 1;

    public static int MaxSize(string? value) => value is null ? 1 : 5 + Literal.MaxSize(value);

    /// <summary>
    /// Writes a value as its pool id, adding it to the pool when new; with <paramref name="admit"/> false, only a
    /// value the pool already holds is written as an id (for fields that may hold unique ids).
    /// </summary>
    public static int Write(Span<byte> span, string? value, bool admit = true)
    {
        if (value is null)
        {
            return Varint.Write(span, NullCode);
        }

        return Write(span, value, admit ? StringPool.IdOf(value) : StringPool.Find(value));
    }

    /// <summary>Writes a value whose pool id (or -1: not pooled) the caller already has.</summary>
    public static int Write(Span<byte> span, string? value, int id)
    {
        if (value is null)
        {
            return Varint.Write(span, NullCode);
        }

        if (id >= 0)
        {
            return Varint.Write(span, (uint)id + 2);
        }

        var n = Varint.Write(span, LiteralCode);
        return n + Literal.Write(span[n..], value);
    }

    public static string? Read(ReadOnlySpan<byte> data, ref int at)
    {
        var code = Varint.Read(data, ref at);
        return code switch
        {
            NullCode => null,
            LiteralCode => Literal.Read(data, ref at).ToString(),
            _ => StringPool.ValueOf((int)code - 2),
        };
    }

    /// <summary>Moves past a value without making its string.</summary>
    public static void Skip(ReadOnlySpan<byte> data, ref int at)
    {
        if (Varint.Read(data, ref at) == LiteralCode)
        {
            _ = Literal.Read(data, ref at);
        }
    }
}
