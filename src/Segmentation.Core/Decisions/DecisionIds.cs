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
    private static readonly int SeedA = BitConverter.ToUInt16(RandomNumberGenerator.GetBytes(2));
    private static long s_counter;

    /// <summary>A new id for a decision evaluated at <paramref name="at"/>.</summary>
    public static string Next(DateTimeOffset at)
    {
        var n = (ulong)Interlocked.Increment(ref s_counter);
        var millis = (ulong)Math.Max(0, at.ToUnixTimeMilliseconds()) & 0xFFFF_FFFF_FFFF;

        // An odd multiplier is a bijection modulo 2^62 too: the 62 random bits of rand_b differ for 2^62 counters.
        var low = Seed + (n * 0x9E37_79B9_7F4A_7C15UL);
        var randA = SeedA & 0x0FFF;

        Span<byte> bytes = stackalloc byte[16];
        bytes[0] = (byte)(millis >> 40);
        bytes[1] = (byte)(millis >> 32);
        bytes[2] = (byte)(millis >> 24);
        bytes[3] = (byte)(millis >> 16);
        bytes[4] = (byte)(millis >> 8);
        bytes[5] = (byte)millis;
        bytes[6] = (byte)(0x70 | (randA >> 8));
        bytes[7] = (byte)randA;
        bytes[8] = (byte)(0x80 | ((low >> 56) & 0x3F));
        bytes[9] = (byte)(low >> 48);
        bytes[10] = (byte)(low >> 40);
        bytes[11] = (byte)(low >> 32);
        bytes[12] = (byte)(low >> 24);
        bytes[13] = (byte)(low >> 16);
        bytes[14] = (byte)(low >> 8);
        bytes[15] = (byte)low;
        return new Guid(bytes, bigEndian: true).ToString();
    }
}
