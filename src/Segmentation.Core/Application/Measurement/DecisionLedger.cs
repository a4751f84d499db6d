using System.Buffers.Binary;
using System.Security.Cryptography;
using Segmentation.Core.Catalog;

namespace Segmentation.Core.Application.Measurement;

/// <summary>What many decisions share: the winner, the catalog version that chose it, the channel and whether the cache answered, as one object.</summary>
/// <param name="Segment">The winning segment (its id and its five variants at that catalog version).</param>
/// <param name="CatalogVersion">The catalog version.</param>
/// <param name="Channel">The request's channel (<see cref="Channels"/>).</param>
/// <param name="FromCache">True when the decision cache answered (for the service's metrics; KPIs do not distinguish).</param>
/// <param name="Arm">The experiment arm the decision served, if its segment ran an experiment.</param>
public sealed record DecisionKey(Segment Segment, long CatalogVersion, string Channel, bool FromCache = false, ExperimentArm? Arm = null);

/// <summary>A served decision as the ledger remembers it, for attribution and KPIs.</summary>
/// <param name="Sequence">Its place in the ledger (also encoded in its id).</param>
/// <param name="DecisionId">The id the caller got.</param>
/// <param name="UserId">The user (or anonymous id) decided for.</param>
/// <param name="Key">Its winner, catalog version and channel.</param>
/// <param name="Ticks">When it was decided (UTC ticks).</param>
public readonly record struct RememberedDecision(long Sequence, Guid DecisionId, string UserId, DecisionKey Key, long Ticks)
{
    /// <summary>The winning segment.</summary>
    public Segment Segment => Key.Segment;

    /// <summary>The catalog version that decided.</summary>
    public long CatalogVersion => Key.CatalogVersion;

    /// <summary>The request's channel.</summary>
    public string Channel => Key.Channel;
}

/// <summary>
/// Remembers the most recent served decisions — decision id → user, winning segment (with its variants),
/// catalog version, channel and time — in a ring of fixed capacity, so an outcome can be attributed to the
/// decision it names and decisions can be counted per segment without slowing the decision down.
/// </summary>
/// <remarks>
/// <para>Remembering costs a sequence number and one 32-byte slot write, no lock and no allocation: the slot is
/// the sequence modulo the capacity, and the sequence is part of the decision id itself (in the random bits of
/// the UUIDv7, scrambled by an odd multiplier), so finding a decision by id is one slot read and a comparison
/// of the id — no index. A slot holds the id's random half (which carries the sequence), the time (which gives
/// the id's other half), the user id (the profile's own string where the user has one) and a
/// <see cref="DecisionKey"/> shared by every decision of the same winner, catalog version and channel; at the
/// default capacity of 1,048,576 decisions the ledger is 32 MB, allocated once. When the ring wraps, the
/// oldest decision is forgotten, and an outcome naming it is counted as unattributed, as for one older than
/// the attribution window.</para>
/// <para>The id's random half doubles as the slot's stamp: zero while the slot is written, the id's when done. A
/// reader that sees it change while reading discards what it read.</para>
/// </remarks>
public sealed class DecisionLedger
{
    private const int SequenceBits = 40;
    private const ulong SequenceMask = (1UL << SequenceBits) - 1;
    private const ulong Scramble = 0x9E_3779_B97FUL; // odd: a bijection modulo 2^40
    private static readonly ulong Unscramble = Inverse(Scramble);

    // The variant bits of a stamp: 10 in every id (a written slot), 01 in the stamp of a forgotten one (erasure), which
    // keeps the forgotten decision's sequence so a later lap of the ring still tells it apart.
    private const ulong VariantBits = 3UL << 62;
    private const ulong ForgottenVariant = 1UL << 62;

    private readonly Slot[] _slots;
    private ulong _processBits; // rand_a (12) and the top 22 bits of rand_b: differ per process (restored with a checkpoint, so ids stay findable)
    private ulong _lowBase; // rand_b's variant and process bits, to which a sequence adds its scrambled 40 bits
    private ulong _highBits; // the version and rand_a, below the time in the id's first half
    private long _next = -1;

    /// <summary>Creates a ledger of <paramref name="capacity"/> decisions (rounded up to a power of two).</summary>
    public DecisionLedger(int capacity = 1 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 16);
        _slots = new Slot[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity)];
        SetProcessBits(BinaryPrimitives.ReadUInt64LittleEndian(RandomNumberGenerator.GetBytes(8)));
    }

    /// <summary>Decisions the ledger can remember at once.</summary>
    public int Capacity => _slots.Length;

    /// <summary>The sequence the next decision gets (the number of decisions issued so far).</summary>
    public long Issued => Volatile.Read(ref _next) + 1;

    /// <summary>
    /// A new decision id for a decision at <paramref name="at"/> and its sequence; call <see cref="Remember"/>
    /// with the sequence and the same time once the decision is made.
    /// </summary>
    public (long Sequence, string DecisionId) Issue(DateTimeOffset at)
    {
        var sequence = Interlocked.Increment(ref _next);
        return (sequence, IdOf(Low(sequence), at.UtcTicks).ToString());
    }

    /// <summary>Remembers the decision issued <paramref name="sequence"/> at <paramref name="ticks"/> (the time given to <see cref="Issue"/>).</summary>
    public void Remember(long sequence, string userId, DecisionKey key, long ticks)
    {
        ref var slot = ref _slots[sequence & (_slots.Length - 1)];
        Volatile.Write(ref slot.Low, 0UL);
        slot.UserId = userId;
        slot.Key = key;
        slot.Ticks = ticks;
        Volatile.Write(ref slot.Low, Low(sequence)); // never 0: the variant bit is set
    }

    /// <summary>
    /// Marks the decision issued <paramref name="sequence"/> as never to be written (it failed: a cancelled call), so the
    /// readers pass it at once instead of waiting for it.
    /// </summary>
    public void Abandon(long sequence)
    {
        ref var slot = ref _slots[sequence & (_slots.Length - 1)];
        slot.UserId = null;
        slot.Key = null;
        Volatile.Write(ref slot.Low, Forgotten(Low(sequence)));
    }

    /// <summary>
    /// Forgets every remembered decision of one of <paramref name="userIds"/> (erasure): their slots are
    /// cleared, so outcomes naming those decisions are unattributed and no copy of the ids stays in memory.
    /// A scan of the ring (about a millisecond per million slots); returns the decisions forgotten.
    /// </summary>
    public int Forget(IReadOnlySet<string> userIds)
    {
        var forgotten = 0;
        for (var i = 0; i < _slots.Length; i++)
        {
            ref var slot = ref _slots[i];
            if (slot.UserId is { } user && userIds.Contains(user))
            {
                Volatile.Write(ref slot.Low, Forgotten(slot.Low));
                slot.UserId = null;
                slot.Key = null;
                forgotten++;
            }
        }

        return forgotten;
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
        var low = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        var sequence = (long)((low & SequenceMask) * Unscramble & SequenceMask);
        return TryRead(sequence, out decision) && decision.DecisionId == id;
    }

    /// <summary>The decision remembered at <paramref name="sequence"/>, if it is still there and completely written.</summary>
    public bool TryRead(long sequence, out RememberedDecision decision)
    {
        ref var slot = ref _slots[sequence & (_slots.Length - 1)];
        var low = Low(sequence);
        if (Volatile.Read(ref slot.Low) != low)
        {
            decision = default;
            return false;
        }

        var (user, key, ticks) = (slot.UserId, slot.Key, slot.Ticks);
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref slot.Low) != low || user is null || key is null)
        {
            decision = default;
            return false; // overwritten while read
        }

        decision = new RememberedDecision(sequence, IdOf(low, ticks), user, key, ticks);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="sequence"/> was issued but is not yet (or never will be: a decision abandoned
    /// after its id was issued) written, as opposed to written and overwritten by a later lap of the ring.
    /// </summary>
    public bool IsPending(long sequence)
    {
        if (sequence > Volatile.Read(ref _next))
        {
            return false;
        }

        var written = Volatile.Read(ref _slots[sequence & (_slots.Length - 1)].Low);
        return written == 0 || SequenceOf(written) < sequence;
    }

    /// <summary>Whether the decision issued <paramref name="sequence"/> was forgotten by <see cref="Forget"/> (erasure).</summary>
    public bool IsForgotten(long sequence) => Volatile.Read(ref _slots[sequence & (_slots.Length - 1)].Low) == Forgotten(Low(sequence));

    private static ulong Forgotten(ulong stamp) => (stamp & ~VariantBits) | ForgottenVariant;

    /// <summary>The bits every id of this ledger shares, for a checkpoint.</summary>
    internal ulong ProcessBits => _processBits;

    /// <summary>Every decision remembered among the first <paramref name="issued"/> issued, for a checkpoint.</summary>
    internal IEnumerable<RememberedDecision> Remembered(long issued)
    {
        for (var sequence = Math.Max(0, issued - _slots.Length); sequence < issued; sequence++)
        {
            if (TryRead(sequence, out var d))
            {
                yield return d;
            }
        }
    }

    /// <summary>
    /// Restores a checkpoint's decisions (into an empty ledger, before any decision is issued): the ids keep the
    /// process bits they were issued with, and sequences continue after <paramref name="issued"/>.
    /// </summary>
    internal void Restore(ulong processBits, long issued, IEnumerable<(long Sequence, string UserId, DecisionKey Key, long Ticks)> decisions)
    {
        SetProcessBits(processBits);
        foreach (var (sequence, userId, key, ticks) in decisions)
        {
            if (sequence >= issued - _slots.Length && sequence < issued)
            {
                Remember(sequence, userId, key, ticks);
            }
        }

        Volatile.Write(ref _next, issued - 1);
    }

    /// <summary>
    /// Adds decisions read back from the decision journal after <see cref="Restore"/> (or into an empty ledger), in
    /// the order they were issued: the ids keep the process bits they were issued with, and sequences continue after
    /// the last. False (and nothing added) when the journal's ids were issued under other process bits than the
    /// restored ledger's (a journal older than the checkpoint's ledger).
    /// </summary>
    internal bool Replay(ulong processBits, IEnumerable<(long Sequence, string UserId, DecisionKey Key, long Ticks)> decisions)
    {
        if (Volatile.Read(ref _next) >= 0 && processBits != _processBits)
        {
            return false;
        }

        SetProcessBits(processBits);
        var last = Volatile.Read(ref _next);
        foreach (var (sequence, userId, key, ticks) in decisions)
        {
            if (sequence > last - _slots.Length)
            {
                Remember(sequence, userId, key, ticks); // never over a newer decision of the same slot
                last = Math.Max(last, sequence);
            }
        }

        Volatile.Write(ref _next, last);
        return true;
    }

    private static long SequenceOf(ulong low) => (long)((low & SequenceMask) * Unscramble & SequenceMask);

    private void SetProcessBits(ulong bits)
    {
        _processBits = bits;
        _lowBase = ((((bits >> 12) << SequenceBits) & 0x3FFF_FFFF_FFFF_FFFFUL) | 0x8000_0000_0000_0000UL) & ~SequenceMask;
        _highBits = 0x7000UL | (bits & 0x0FFF);
    }

    // rand_b with its variant bits: the process's 22 random bits, then the scrambled sequence.
    private ulong Low(long sequence) => _lowBase | (((ulong)sequence * Scramble) & SequenceMask);

    // UUIDv7: unix_ts_ms (48) | ver (4) | rand_a (12) || var (2) | rand_b (62).
    private Guid IdOf(ulong low, long ticks)
    {
        var millis = (ulong)Math.Max(0, (ticks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMillisecond) & 0xFFFF_FFFF_FFFF;
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, (millis << 16) | _highBits);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], low);
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

    private struct Slot
    {
        public ulong Low;
        public string? UserId;
        public DecisionKey? Key;
        public long Ticks;
    }
}

/// <summary>What a <see cref="LedgerCursor"/> found at its place.</summary>
public enum LedgerRead
{
    /// <summary>A remembered decision; the cursor moved past it.</summary>
    Remembered,

    /// <summary>Issued and still being written: read it again later; the cursor stayed.</summary>
    Waiting,

    /// <summary>Its slot was written again by a later lap of the ring before it was read; the cursor moved past it.</summary>
    Overwritten,

    /// <summary>Forgotten (erasure), abandoned (issued for a decision that failed), or not written within a minute or half a lap of the ring; the cursor moved past it.</summary>
    Skipped,
}

/// <summary>
/// A reader's place in the ledger (the KPIs' drain, the decision journal): the next sequence to read, and since when it
/// has waited for that decision to be written. Reads in issue order; an id issued for a decision that failed (a cancelled
/// call) is abandoned (<see cref="DecisionLedger.Abandon"/>) and passed at once. One still not written after
/// <see cref="StallLimit"/>, or once half the ring was issued after it, is skipped, so a reader is never held for ever nor
/// the ring let lap what follows; a slow decision (a collector pause, a starved thread pool, slow renders) is waited for
/// and counted.
/// </summary>
/// <param name="next">The first sequence to read.</param>
public struct LedgerCursor(long next)
{
    /// <summary>How long a decision issued and not written is waited for before the cursor passes it (milliseconds).</summary>
    public const long StallLimit = 60_000;

    private long _stalledSince = -1;

    /// <summary>The sequence read next.</summary>
    public long Next { get; private set; } = next;

    /// <summary>Reads the decision at <see cref="Next"/> (call only while <see cref="Next"/> is below the ledger's <see cref="DecisionLedger.Issued"/>).</summary>
    public LedgerRead Read(DecisionLedger ledger, out RememberedDecision decision)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        if (ledger.TryRead(Next, out decision))
        {
            Advance();
            return LedgerRead.Remembered;
        }

        if (ledger.IsPending(Next))
        {
            // Waited for, unless waiting longer would let the ring lap the decisions issued after it (they would be lost).
            if (!StalledTooLong() && ledger.Issued - Next < ledger.Capacity / 2)
            {
                return LedgerRead.Waiting;
            }

            Advance();
            return LedgerRead.Skipped;
        }

        var forgotten = ledger.IsForgotten(Next);
        Advance();
        return forgotten ? LedgerRead.Skipped : LedgerRead.Overwritten;
    }

    private void Advance()
    {
        Next++;
        _stalledSince = -1;
    }

    private bool StalledTooLong()
    {
        var now = Environment.TickCount64;
        if (_stalledSince < 0)
        {
            _stalledSince = now;
            return false;
        }

        return now - _stalledSince > StallLimit;
    }
}
