using System.Buffers.Binary;
using System.Security.Cryptography;
using Segmentation.Core.Catalog;

namespace Segmentation.Core.Application.Measurement;

/// <summary>A served decision as the ledger remembers it, for attribution and KPIs.</summary>
/// <param name="Sequence">Its place in the ledger (also encoded in its id).</param>
/// <param name="DecisionId">The id the caller got.</param>
/// <param name="UserId">The user (or anonymous id) decided for.</param>
/// <param name="Segment">The winner (its id and its five variants at that catalog version).</param>
/// <param name="CatalogVersion">The catalog version that decided.</param>
/// <param name="Channel">The request's channel.</param>
/// <param name="Ticks">When it was decided (UTC ticks).</param>
public readonly record struct RememberedDecision(long Sequence, Guid DecisionId, string UserId, Segment Segment, long CatalogVersion, string Channel, long Ticks);

/// <summary>
/// Remembers the most recent served decisions — decision id → user, winning segment (with its variants),
/// catalog version, channel and time — in a ring of fixed capacity, so an outcome can be attributed to the
/// decision it names and decisions can be counted per segment without slowing the decision down.
/// </summary>
/// <remarks>
/// <para>Remembering costs a sequence number and one slot write, no lock and no allocation: the slot is the
/// sequence modulo the capacity, and the sequence is part of the decision id itself (in the random bits of
/// the UUIDv7, scrambled by an odd multiplier), so finding a decision by id is one slot read and a full
/// comparison of the id — no index. A slot is 64 bytes; the user id is the profile's own string where the
/// user has one and the channel one of a bounded set of shared names, so at the default capacity of
/// 1,048,576 decisions the ledger is 64 MB, allocated once. When the ring wraps, the oldest decision is forgotten, and an outcome naming it is counted as
/// unattributed, as for one older than the attribution window.</para>
/// <para>Each slot is written under a per-slot sequence stamp (set to -1 while it is written, to the
/// sequence plus one when done): a reader that sees the stamp change while reading discards what it read.</para>
/// </remarks>
public sealed class DecisionLedger
{
    private const int SequenceBits = 40;
    private const ulong SequenceMask = (1UL << SequenceBits) - 1;
    private const ulong Scramble = 0x9E_3779_B97FUL; // odd: a bijection modulo 2^40
    private static readonly ulong Unscramble = Inverse(Scramble);

    private readonly Slot[] _slots;
    private readonly ulong _processBits; // rand_a (12) and the top 22 bits of rand_b: differ per process
    private long _next = -1;

    /// <summary>Creates a ledger of <paramref name="capacity"/> decisions (rounded up to a power of two).</summary>
    public DecisionLedger(int capacity = 1 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 16);
        _slots = new Slot[(int)BitOperationsRoundUp((uint)capacity)];
        _processBits = BinaryPrimitives.ReadUInt64LittleEndian(RandomNumberGenerator.GetBytes(8));
    }

    /// <summary>Decisions the ledger can remember at once.</summary>
    public int Capacity => _slots.Length;

    /// <summary>The sequence the next decision gets (the number of decisions remembered so far).</summary>
    public long Issued => Volatile.Read(ref _next) + 1;

    /// <summary>
    /// A new decision id for a decision at <paramref name="at"/> and its sequence; call <see cref="Remember"/>
    /// with both once the decision is made.
    /// </summary>
    public (long Sequence, string DecisionId, Guid Id) Issue(DateTimeOffset at)
    {
        var sequence = Interlocked.Increment(ref _next);
        var id = IdOf(sequence, at);
        return (sequence, id.ToString(), id);
    }

    /// <summary>Remembers the decision issued <paramref name="sequence"/>.</summary>
    public void Remember(long sequence, Guid id, string userId, Segment winner, long catalogVersion, string channel, long ticks)
    {
        ref var slot = ref _slots[sequence & (_slots.Length - 1)];
        Volatile.Write(ref slot.Stamp, -1);
        slot.Id = id;
        slot.UserId = userId;
        slot.Segment = winner;
        slot.CatalogVersion = catalogVersion;
        slot.Channel = channel;
        slot.Ticks = ticks;
        Volatile.Write(ref slot.Stamp, sequence + 1); // 0: never written
    }

    /// <summary>The decision with this id, if the ledger still remembers it.</summary>
    public bool TryFind(string decisionId, out RememberedDecision decision)
    {
        decision = default;
        if (!Guid.TryParse(decisionId, out var id) || id.Version != 7)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        id.TryWriteBytes(bytes, bigEndian: true, out _);
        var sequence = (long)((BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]) & SequenceMask) * Unscramble & SequenceMask);
        return TryRead(sequence, out decision) && decision.DecisionId == id;
    }

    /// <summary>The decision remembered at <paramref name="sequence"/>, if it is still there and completely written.</summary>
    public bool TryRead(long sequence, out RememberedDecision decision)
    {
        ref var slot = ref _slots[sequence & (_slots.Length - 1)];
        var stamp = Volatile.Read(ref slot.Stamp);
        if (stamp != sequence + 1)
        {
            decision = default;
            return false;
        }

        decision = new RememberedDecision(sequence, slot.Id, slot.UserId!, slot.Segment!, slot.CatalogVersion, slot.Channel!, slot.Ticks);
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref slot.Stamp) != stamp)
        {
            decision = default;
            return false; // overwritten while read
        }

        return true;
    }

    /// <summary>
    /// Whether <paramref name="sequence"/> was issued but is not yet (or never will be: a decision abandoned
    /// after its id was issued) written, as opposed to overwritten by a later lap of the ring.
    /// </summary>
    public bool IsPending(long sequence) => sequence <= Volatile.Read(ref _next) && Volatile.Read(ref _slots[sequence & (_slots.Length - 1)].Stamp) < sequence + 1;

    // UUIDv7: unix_ts_ms (48) | ver (4) | rand_a (12) || var (2) | rand_b (62), rand_b ending in the scrambled sequence.
    private Guid IdOf(long sequence, DateTimeOffset at)
    {
        var millis = (ulong)Math.Max(0, at.ToUnixTimeMilliseconds()) & 0xFFFF_FFFF_FFFF;
        var scrambled = ((ulong)sequence * Scramble) & SequenceMask;
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, (millis << 16) | 0x7000UL | (_processBits & 0x0FFF));
        var low = ((_processBits >> 12) << SequenceBits) | scrambled;
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], (low & 0x3FFF_FFFF_FFFF_FFFFUL) | 0x8000_0000_0000_0000UL);
        return new Guid(bytes, bigEndian: true);
    }

    // The multiplicative inverse of an odd number modulo 2^40 (Newton's iteration doubles the correct bits).
    private static ulong Inverse(ulong odd)
    {
        var x = odd;
        for (var i = 0; i < 6; i++)
        {
            x *= 2 - (odd * x);
        }

        return x & SequenceMask;
    }

    private static uint BitOperationsRoundUp(uint value) => System.Numerics.BitOperations.RoundUpToPowerOf2(value);

    private struct Slot
    {
        public long Stamp;
        public Guid Id;
        public string? UserId;
        public Segment? Segment;
        public long CatalogVersion;
        public string? Channel;
        public long Ticks;
    }
}
