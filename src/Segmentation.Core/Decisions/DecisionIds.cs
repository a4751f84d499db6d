using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Segmentation.Core.Decisions;

/// <summary>
/// Decision ids: time-ordered UUIDs (version 7, RFC 9562). The 48-bit millisecond timestamp comes from
/// the evaluation time; the 74 other bits are a per-process random value plus a counter (RFC 9562 §6.2
/// allows counters in place of random bits), so ids are unique within the process without asking the
/// operating system for randomness on every decision, and collide across processes only if their
/// random starting points do.
/// </summary>
public static class DecisionIds
{
    private static readonly ulong Seed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
    private static readonly ulong RandA = BitConverter.ToUInt16(RandomNumberGenerator.GetBytes(2)) & 0x0FFFUL;
    private static long s_counter;

    /// <summary>A new id for a decision evaluated at <paramref name="at"/>.</summary>
    public static string Next(DateTimeOffset at)
    {
        var n = (ulong)Interlocked.Increment(ref s_counter);
        var millis = (ulong)Math.Max(0, at.ToUnixTimeMilliseconds()) & 0xFFFF_FFFF_FFFF;

        // An odd multiplier is a bijection modulo 2^62 too: the 62 random bits of rand_b differ for 2^62 counters.
        var low = Seed + (n * 0x9E37_79B9_7F4A_7C15UL);

        // unix_ts_ms (48) | ver 7 (4) | rand_a (12), then var 0b10 (2) | rand_b (62), big-endian.
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, (millis << 16) | 0x7000UL | RandA);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], (low & 0x3FFF_FFFF_FFFF_FFFFUL) | 0x8000_0000_0000_0000UL);
        return new Guid(bytes, bigEndian: true).ToString();
    }
}
