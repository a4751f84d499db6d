using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;

namespace Segmentation.Storage;

/// <summary>
/// The one framing of every file the store writes (change log segments and snapshots): each frame is
/// <c>[u32 payload length][u32 CRC-32 of the payload][payload]</c>, little-endian. A frame whose length runs
/// past the end of the file, or whose checksum does not match, is not a frame.
/// </summary>
internal static class Framing
{
    /// <summary>Bytes before a frame's payload.</summary>
    public const int HeaderSize = 8;

    /// <summary>One frame of <paramref name="payload"/> as bytes.</summary>
    public static byte[] Of(ReadOnlySpan<byte> payload)
    {
        var frame = new byte[HeaderSize + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), Crc32.HashToUInt32(payload));
        payload.CopyTo(frame.AsSpan(HeaderSize));
        return frame;
    }

    /// <summary>Writes one frame whose payload is the parts, one after another (without joining them first).</summary>
    public static void Write(Stream stream, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second = default, ReadOnlySpan<byte> third = default)
    {
        var crc = new Crc32();
        crc.Append(first);
        crc.Append(second);
        crc.Append(third);
        Span<byte> head = stackalloc byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(head, checked((uint)(first.Length + second.Length + third.Length)));
        BinaryPrimitives.WriteUInt32LittleEndian(head[4..], crc.GetCurrentHashAsUInt32());
        stream.Write(head);
        stream.Write(first);
        stream.Write(second);
        stream.Write(third);
    }

    /// <summary>The payload length and checksum a frame header holds.</summary>
    public static (uint Size, uint Crc) Header(ReadOnlySpan<byte> header) =>
        (BinaryPrimitives.ReadUInt32LittleEndian(header), BinaryPrimitives.ReadUInt32LittleEndian(header[4..]));

    /// <summary>True when <paramref name="payload"/> has the checksum <paramref name="crc"/>.</summary>
    public static bool Matches(ReadOnlySpan<byte> payload, uint crc) => Crc32.HashToUInt32(payload) == crc;

    /// <summary>How many bytes at the start of <paramref name="data"/> are intact frames, one after another.</summary>
    public static int WholeFrames(ReadOnlySpan<byte> data)
    {
        var at = 0;
        while (IsFrameAt(data, at))
        {
            at += HeaderSize + (int)Header(data[at..]).Size;
        }

        return at;
    }

    /// <summary>True when an intact frame (length within the data, checksum right) starts at <paramref name="at"/>.</summary>
    public static bool IsFrameAt(ReadOnlySpan<byte> data, int at)
    {
        if (data.Length - at < HeaderSize)
        {
            return false;
        }

        var (size, crc) = Header(data[at..]);
        return size > 0 && size <= data.Length - at - HeaderSize && Matches(data.Slice(at + HeaderSize, (int)size), crc);
    }

    /// <summary>
    /// Reads the next frame of a file read front to back into a pooled buffer (a snapshot chunk is about
    /// 1 MB: allocating each would fill the large object heap with garbage during a restore); null at the end.
    /// </summary>
    /// <exception cref="InvalidDataException">The frame is cut short or its checksum does not match.</exception>
    public static PooledFrame? ReadNext(Stream file, string what)
    {
        Span<byte> head = stackalloc byte[HeaderSize];
        var read = file.ReadAtLeast(head, HeaderSize, throwOnEndOfStream: false);
        if (read == 0)
        {
            return null;
        }

        var (size, crc) = Header(head);
        if (read < HeaderSize || size == 0 || size > file.Length - file.Position || size > Array.MaxLength) // a damaged length past 2 GiB too
        {
            throw new InvalidDataException($"{what} is truncated or damaged at byte {file.Position - read}");
        }

        var frame = new PooledFrame(ArrayPool<byte>.Shared.Rent((int)size), (int)size);
        file.ReadExactly(frame.Buffer, 0, frame.Length);
        if (!Matches(frame.Span, crc))
        {
            frame.Return();
            throw new InvalidDataException($"{what}: checksum mismatch in the frame at byte {file.Position - size - HeaderSize}");
        }

        return frame;
    }
}

/// <summary>A frame's payload in a pooled buffer. Cleared on return: it holds personal data.</summary>
internal readonly record struct PooledFrame(byte[] Buffer, int Length)
{
    public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);

    public void Return() => ArrayPool<byte>.Shared.Return(Buffer, clearArray: true);
}
