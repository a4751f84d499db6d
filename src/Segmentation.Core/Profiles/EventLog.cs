using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's accepted events in time order (ties in arrival order), immutable, stored in two arrays
/// rather than one object per event: a million profiles then hold two arrays each instead of dozens of
/// small objects, which is what keeps memory per profile and restore time down. A value wrapping those
/// arrays (no object of its own).
/// <list type="bullet">
/// <item>times, one <c>long</c> per event (also the profile's all-events series);</item>
/// <item>one byte array with three sections: a 32-bit hash of each event id (de-duplicating a retry
/// decodes ids only on a hash match); the fields scores read per event (type, page type, category,
/// product) as ids of pooled strings (<see cref="StringPool"/>), so reading them is an index; and
/// everything else (event id, session id, source, campaign, country, value, quantity) encoded one event
/// after another: ids as UTF-8, a session equal to the previous event's as one bit.</item>
/// </list>
/// Enumerating materializes <see cref="StoredEvent"/>s in order (replay, snapshots, export); the indexer
/// decodes from the start, so prefer enumeration or the column accessors.
/// <para>
/// Immutable to its readers. From <see cref="RoomFrom"/> events on, and for a smaller log written during a visit
/// (<see cref="GetsRoom"/>), the hot run's arrays have room past the events: a write at the end appends in place while its
/// snapshot is the last one written to them (see <c>AddAtEnd</c>), so a busy profile's write copies nothing. Otherwise a
/// smaller log is copied exact, as most profiles hold a few events and rest.
/// </para>
/// <para>
/// A copy of a long history would make every write slower. A log of more than
/// <see cref="HotLimit"/> events is therefore kept in two runs: the archive, the older events in the same
/// form, frozen and shared by every later version of the profile, and the hot run of the newest events,
/// which is all a write copies. When the hot run outgrows the limit, it is merged into a new archive: each
/// event is re-encoded about once per <see cref="HotLimit"/> writes, so a write costs the same whatever the
/// length of the history. Every accessor reads both runs; a log that never grew past the limit has no archive.
/// </para>
/// </summary>
public readonly struct EventLog : IReadOnlyList<StoredEvent>
{
    /// <summary>No events.</summary>
    public static EventLog Empty => default;

    private const byte HasValue = 1;      // an 8-byte value follows the pooled codes
    private const byte HasQuantity = 2;   // a quantity other than 1 follows (signed varint)
    private const byte SameSession = 4;   // the session id is the previous event's; no literal

    private const int HashSize = sizeof(uint);
    private const int KeysSize = 4 * sizeof(int);

    // The hot run's arrays have room past this snapshot's events (their capacity is the times' length), so that
    // the next snapshot can append in place; see AddAtEnd. Entries past _count belong to later snapshots, or to none.
    private readonly long[]? _times;      // null in default(EventLog): empty
    private readonly byte[]? _bytes;      // the claim (4 bytes), id hashes (capacity × 4 bytes), keys (capacity × 16), then the encoded records
    private readonly string[]? _extra;    // key values the pool did not take (code -2 - index)
    private readonly int _count;          // events of the hot run in this snapshot
    private readonly int _recordBytes;    // bytes of encoded records in this snapshot
    private readonly int _lastSessionAt;  // offset in the records of the session literal the last event uses (when the hot run is not empty)
    private readonly int _sessions;       // distinct sessions of the hot run that the archive does not have
    private readonly Archive? _archive;   // the older events, frozen; null until the log first outgrows HotLimit

    /// <summary>Most events in the hot run, the part of a long log a write may copy.</summary>
    public const int HotLimit = 1024;

    /// <summary>The size from which a hot run (and a type's series, <see cref="EventSeriesDictionary"/>) gets room to grow in place.</summary>
    internal const int RoomFrom = 16;

    /// <summary>
    /// Events at most this far apart (30 minutes, the usual web-analytics session timeout) belong to one visit in
    /// progress, whose next event is likely seconds away.
    /// </summary>
    internal static readonly long VisitGapTicks = TimeSpan.FromMinutes(30).Ticks;

    /// <summary>
    /// Whether arrays of <paramref name="count"/> entries, the last written at <paramref name="ticks"/> after one at
    /// <paramref name="previousTicks"/>, get room to grow in place: from <see cref="RoomFrom"/> entries, or from two
    /// during a visit. Without that a visit's every write would copy its short log, and under a stream of visits those
    /// copies, each kept until the user's next event, are most of what the collector has to promote.
    /// </summary>
    internal static bool GetsRoom(int count, long previousTicks, long ticks) =>
        count >= RoomFrom || (count > 1 && ticks - previousTicks <= VisitGapTicks);

    private EventLog(long[] ticks, byte[] data, string[]? extra, int count, int recordBytes, int lastSessionAt, int sessions, Archive? archive = null)
    {
        _times = ticks;
        _bytes = data;
        _extra = extra;
        _count = count;
        _recordBytes = recordBytes;
        _lastSessionAt = lastSessionAt;
        _sessions = sessions;
        _archive = archive;
    }

    private EventLog(Archive archive)
        : this([], NoData, null, 0, 0, -1, 0, archive)
    {
    }

    private const int ClaimSize = sizeof(int);

    private static readonly byte[] NoData = new byte[ClaimSize]; // an empty run's: no capacity, so never appended to in place

    private long[] Times => _times ?? [];

    private byte[] Data => _bytes ?? NoData;

    private int HotCount => _count;

    private int Capacity => Times.Length;

    private int ArchivedCount => _archive?.Log.HotCount ?? 0;

    private ReadOnlySpan<uint> IdHashes => MemoryMarshal.Cast<byte, uint>(Data.AsSpan(ClaimSize, HotCount * HashSize));

    private ReadOnlySpan<Keys> KeyRows => MemoryMarshal.Cast<byte, Keys>(Data.AsSpan(KeysAt(Capacity), HotCount * KeysSize));

    private int RecordsAt => RecordsAtFor(Capacity);

    private ReadOnlySpan<byte> Records => Data.AsSpan(RecordsAt, _recordBytes);

    private static int KeysAt(int capacity) => ClaimSize + (capacity * HashSize);

    private static int RecordsAtFor(int capacity) => ClaimSize + (capacity * (HashSize + KeysSize));

    // How many events have been written into these arrays: by the snapshot that built them, then by each snapshot that
    // appended in place. A snapshot appends in place only while it is the last writer (its count equals the claim).
    private static ref int Claim(byte[] data) => ref MemoryMarshal.Cast<byte, int>(data.AsSpan(0, ClaimSize))[0];

    /// <summary>Number of events.</summary>
    public int Count => ArchivedCount + HotCount;

    /// <summary>Number of distinct session ids.</summary>
    public int Sessions => (_archive?.Log._sessions ?? 0) + _sessions;

    /// <summary>Time (UTC ticks) of the latest event, or <see cref="long.MinValue"/> when empty.</summary>
    public long LastTicks => HotCount > 0 ? Times[HotCount - 1] : _archive?.Log.LastTicks ?? long.MinValue;

    /// <summary>True when the log keeps an archive run (it grew past <see cref="HotLimit"/> events).</summary>
    internal bool HasArchive => _archive is not null;

    /// <summary>True when <paramref name="other"/> reads the same hot-run arrays (one was appended to the other in place).</summary>
    internal bool SharesHotRun(EventLog other) => ReferenceEquals(_times, other._times) && _times is not null;

    /// <summary>True when <paramref name="other"/> shares this log's archive run (same frozen older events).</summary>
    internal bool SameArchive(EventLog other) => ReferenceEquals(_archive, other._archive);

    /// <summary>The archived events (empty without an archive), then the hot run's: the two runs as flat logs.</summary>
    internal (EventLog Archived, EventLog Hot) Runs =>
        (_archive?.Log ?? Empty, new EventLog(Times, Data, _extra, _count, _recordBytes, _lastSessionAt, _sessions));

    /// <summary>The event at <paramref name="index"/>, decoded from the start of the log (O(index)).</summary>
    public StoredEvent this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
            var i = 0;
            foreach (var e in this)
            {
                if (i++ == index)
                {
                    return e;
                }
            }

            throw new InvalidOperationException("unreachable");
        }
    }

    /// <summary>Time (UTC ticks) of event <paramref name="index"/>.</summary>
    public long TicksAt(int index) => index < ArchivedCount ? _archive!.Log.TicksAt(index) : Times[index - ArchivedCount];

    /// <summary>Type of event <paramref name="index"/>.</summary>
    public string TypeAt(int index) => index < ArchivedCount ? _archive!.Log.TypeAt(index) : Key(KeyRows[index - ArchivedCount].Type)!;

    /// <summary>Page type of event <paramref name="index"/>.</summary>
    public string PageTypeAt(int index) => index < ArchivedCount ? _archive!.Log.PageTypeAt(index) : Key(KeyRows[index - ArchivedCount].PageType)!;

    /// <summary>Category of event <paramref name="index"/>, if any.</summary>
    public string? CategoryAt(int index) => index < ArchivedCount ? _archive!.Log.CategoryAt(index) : Key(KeyRows[index - ArchivedCount].Category);

    /// <summary>Product id of event <paramref name="index"/>, if any.</summary>
    public string? ProductIdAt(int index) => index < ArchivedCount ? _archive!.Log.ProductIdAt(index) : Key(KeyRows[index - ArchivedCount].ProductId);

    /// <summary>
    /// Value of event <paramref name="index"/>: read by moving past the records before it in its run, without making
    /// their strings (the records differ in length), so O(its place in the run) and no allocation.
    /// </summary>
    public double ValueAt(int index)
    {
        if (index < ArchivedCount)
        {
            return _archive!.Log.ValueAt(index);
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        var reader = new Reader(this);
        for (var i = ArchivedCount; i < index; i++)
        {
            reader.Skip();
        }

        return reader.Skip().Value;
    }

    /// <summary>
    /// The quantities of the events from <paramref name="from"/> to the newest, in order, into <paramref name="into"/>
    /// (one per event): read by moving past the records, without making their strings.
    /// </summary>
    internal void ReadQuantities(int from, Span<int> into)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(into.Length, Count - from);
        var archived = ArchivedCount;
        if (from < archived)
        {
            _archive!.Log.ReadQuantities(from, into[..(archived - from)]);
            into = into[(archived - from)..];
            from = archived;
        }

        var reader = new Reader(this);
        for (var i = archived; i < Count; i++)
        {
            var quantity = reader.Skip().Quantity;
            if (i >= from)
            {
                into[i - from] = quantity;
            }
        }
    }

    /// <summary>
    /// The events from the newest back (at most <paramref name="limit"/>) with their type, page type and category as
    /// codes of the string pool, for scans that test many events: comparing codes costs an int compare, and
    /// <see cref="BackwardScan.Text"/> gives a code's string when a scan needs it.
    /// </summary>
    internal BackwardScan Backward(int limit) => new(this, limit);

    /// <summary>A scan of a log's events from the newest back; see <see cref="Backward"/>.</summary>
    internal ref struct BackwardScan
    {
        private readonly EventLog _archived;
        private ReadOnlySpan<long> _times;
        private ReadOnlySpan<Keys> _keys;
        private string[]? _extra;
        private int _index;
        private int _left;
        private bool _lastRun;

        internal BackwardScan(EventLog log, int limit)
        {
            _archived = log._archive?.Log ?? Empty;
            _times = log.Times.AsSpan(0, log.HotCount);
            _keys = log.KeyRows;
            _extra = log._extra;
            _index = log.HotCount;
            _left = limit;
            _lastRun = log._archive is null;
        }

        /// <summary>Time (UTC ticks) of the current event.</summary>
        public readonly long Ticks => _times[_index];

        /// <summary>Code of the current event's type.</summary>
        public readonly int Type => _keys[_index].Type;

        /// <summary>Code of the current event's page type.</summary>
        public readonly int PageType => _keys[_index].PageType;

        /// <summary>Code of the current event's category (-1: none).</summary>
        public readonly int Category => _keys[_index].Category;

        /// <summary>Code of the current event's product id (-1: none).</summary>
        public readonly int ProductId => _keys[_index].ProductId;

        /// <summary>
        /// Whether a code of the current event stands for <paramref name="value"/>, whose <see cref="CodeOf"/> is
        /// <paramref name="valueCode"/>: an int compare for pooled values, a string compare for the run's own.
        /// </summary>
        public readonly bool Is(int code, int valueCode, string value) =>
            code >= 0 ? code == valueCode : code < -1 && string.Equals(Text(code), value, StringComparison.Ordinal);

        /// <summary>Moves to the next older event; false past the oldest or the limit.</summary>
        public bool MoveNext()
        {
            if (_left-- <= 0)
            {
                return false;
            }

            if (--_index >= 0)
            {
                return true;
            }

            if (_lastRun)
            {
                return false;
            }

            _lastRun = true;
            _times = _archived.Times.AsSpan(0, _archived.HotCount);
            _keys = _archived.KeyRows;
            _extra = _archived._extra;
            _index = _archived.HotCount - 1;
            return _index >= 0;
        }

        /// <summary>The string of a code of the current event (null for -1).</summary>
        public readonly string? Text(int code) => code switch
        {
            >= 0 => StringPool.ValueOf(code),
            -1 => null,
            _ => _extra![-2 - code],
        };
    }

    /// <summary>
    /// The code <see cref="Backward"/> gives events whose key is <paramref name="value"/>: its pool id, or -1 when the
    /// pool does not take it (such values have codes below -1 that belong to their run: compare their <see cref="BackwardScan.Text"/>).
    /// </summary>
    internal static int CodeOf(string value) => StringPool.IdOf(value);

    /// <summary>The hash of an event id that de-duplication compares first.</summary>
    internal static uint HashId(string eventId) => HashId(eventId.AsSpan());

    private static uint HashId(ReadOnlySpan<char> eventId) =>
        (uint)System.IO.Hashing.XxHash3.HashToUInt64(MemoryMarshal.AsBytes(eventId));

    // The hash of the id these UTF-8 bytes decode to (the same as of the decoded string).
    private static uint HashId(ReadOnlySpan<byte> utf8)
    {
        char[]? rented = null;
        var chars = utf8.Length <= 256 ? stackalloc char[utf8.Length] : (rented = ArrayPool<char>.Shared.Rent(utf8.Length));
        var hash = HashId(chars[..System.Text.Encoding.UTF8.GetChars(utf8, chars)]);
        if (rented is not null)
        {
            ArrayPool<char>.Shared.Return(rented, clearArray: true); // ids are personal data
        }

        return hash;
    }

    /// <summary>The events' times as an all-events series (the arrays are shared, not copied).</summary>
    internal EventSeries AsSeries() => _archive is null
        ? EventSeries.FromOrderedTicks(Times, HotCount)
        : EventSeries.FromOrderedTicks(Times, HotCount).After(_archive.AllEvents);

    /// <summary>
    /// Builds a log of <paramref name="events"/>; they are ordered by time first (stable) when they are not.
    /// More than <see cref="HotLimit"/> events go to an archive run.
    /// </summary>
    public static EventLog Of(IReadOnlyList<StoredEvent> events) => Of(events, null);

    /// <summary>
    /// <see cref="Of(IReadOnlyList{StoredEvent})"/> for events whose ids are given as UTF-8 bytes in
    /// <paramref name="ids"/> (one per event, in order) instead of in <see cref="StoredEvent.EventId"/>.
    /// </summary>
    internal static EventLog Of(IReadOnlyList<StoredEvent> events, Utf8EventIds? ids)
    {
        var flat = Flat(events, ids);
        return flat.HotCount > HotLimit ? new EventLog(new Archive(flat)) : flat;
    }

    // One run of the events, however many there are.
    private static EventLog Flat(IReadOnlyList<StoredEvent> events, Utf8EventIds? ids = null)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (ids is not null && ids.Count != events.Count)
        {
            throw new ArgumentException($"one id per event is needed ({events.Count}, got {ids.Count})", nameof(ids));
        }

        for (var i = 1; i < events.Count; i++)
        {
            if (events[i].Ticks < events[i - 1].Ticks)
            {
                // Out of order (not how a log is saved): ordered with their ids and session ids as strings.
                events = [.. (ids is null ? events : Decoded(events, ids, sessionsOnly: false)).OrderBy(e => e.Ticks)];
                ids = null;
                break;
            }
        }

        if (events.Count == 0)
        {
            return Empty;
        }

        // Session ids given as bytes are compared as bytes (valid UTF-8: equal bytes, equal strings) by a linear search;
        // past 64 events, or for bytes that are not valid UTF-8, they are decoded and compared as strings.
        var sessionBytes = ids is not null;
        if (sessionBytes && (events.Count > 64 || !ValidSessions(ids!)))
        {
            events = Decoded(events, ids!, sessionsOnly: true);
            sessionBytes = false;
        }

        // Encoded into per-thread scratch space first (restoring a snapshot builds a million logs), then
        // copied into the log's exact-size arrays.
        var scratch = t_scratch ??= new Scratch();
        var n = events.Count;
        scratch.Reserve(n);
        var ticks = new long[n];
        List<string>? extra = null;
        var lastSessionAt = -1;
        string? lastSession = null;
        var lastSessionOf = -1; // the event whose session bytes are the last session
        var recordBytes = 0;
        var sessions = 0;
        var sessionSet = n > 64 ? new HashSet<string>(StringComparer.Ordinal) : null; // a linear search up to 64
        for (var i = 0; i < n; i++)
        {
            var e = events[i];
            ticks[i] = e.Ticks;
            var id = ids is null ? default : ids[i];
            var session = sessionBytes ? ids!.SessionAt(i) : default;
            scratch.Hashes[i] = ids is null ? HashId(e.EventId) : HashId(id);
            scratch.Keys[i] = KeysOf(e, 0, ref extra, scratch);
            bool same;
            if (sessionBytes)
            {
                if (session.Length > 0 && !SessionSeen(ids!, scratch.SessionOf, sessions, session))
                {
                    scratch.SessionOf[sessions++] = i;
                }

                same = lastSessionOf >= 0 && ids!.SessionAt(lastSessionOf).SequenceEqual(session);
            }
            else
            {
                if (e.SessionId.Length > 0 && (sessionSet is not null ? sessionSet.Add(e.SessionId) : Array.IndexOf(scratch.Sessions, e.SessionId, 0, sessions) < 0))
                {
                    scratch.Sessions[sessions++] = e.SessionId;
                }

                same = lastSession is not null && string.Equals(lastSession, e.SessionId, StringComparison.Ordinal);
            }

            var span = scratch.Records(recordBytes, MaxSize(e) + (ids is null ? 0 : Literal.MaxSize(id)) + Literal.MaxSize(session));
            var written = Encode(e, ids is not null, id, same, span, out var sessionAt, sessionBytes, session, scratch);
            if (!same)
            {
                lastSessionAt = recordBytes + sessionAt;
                lastSession = e.SessionId;
                lastSessionOf = i;
            }

            recordBytes += written;
        }

        var data = new byte[RecordsAtFor(n) + recordBytes];
        Claim(data) = n;
        MemoryMarshal.AsBytes(scratch.Hashes.AsSpan(0, n)).CopyTo(data.AsSpan(ClaimSize));
        MemoryMarshal.AsBytes(scratch.Keys.AsSpan(0, n)).CopyTo(data.AsSpan(KeysAt(n)));
        scratch.RecordBuffer.AsSpan(0, recordBytes).CopyTo(data.AsSpan(RecordsAtFor(n)));
        Array.Clear(scratch.Sessions, 0, sessions);
        Array.Clear(scratch.RecordBuffer, 0, recordBytes); // ids are personal data: no copies left behind
        return new EventLog(ticks, data, extra?.ToArray(), n, recordBytes, lastSessionAt, sessions);
    }

    // The events with their session ids, and unless sessionsOnly their ids, decoded from the bytes in ids into strings.
    private static StoredEvent[] Decoded(IReadOnlyList<StoredEvent> events, Utf8EventIds ids, bool sessionsOnly)
    {
        var decoded = new StoredEvent[events.Count];
        for (var i = 0; i < decoded.Length; i++)
        {
            decoded[i] = sessionsOnly
                ? events[i] with { SessionId = ids.SessionStringAt(i) }
                : events[i] with { EventId = ids.StringAt(i), SessionId = ids.SessionStringAt(i) };
        }

        return decoded;
    }

    private static bool ValidSessions(Utf8EventIds ids)
    {
        for (var i = 0; i < ids.Count; i++)
        {
            if (!System.Text.Unicode.Utf8.IsValid(ids.SessionAt(i)))
            {
                return false;
            }
        }

        return true;
    }

    // Whether one of the first `count` distinct sessions (by the event that has each) has these bytes.
    private static bool SessionSeen(Utf8EventIds ids, int[] sessionOf, int count, ReadOnlySpan<byte> session)
    {
        for (var j = 0; j < count; j++)
        {
            if (ids.SessionAt(sessionOf[j]).SequenceEqual(session))
            {
                return true;
            }
        }

        return false;
    }

    [ThreadStatic]
    private static Scratch? t_scratch;

    /// <summary>Per-thread space <see cref="Of(IReadOnlyList{StoredEvent})"/> encodes into.</summary>
    private sealed class Scratch
    {
        public uint[] Hashes = new uint[64];
        public Keys[] Keys = new Keys[64];
        public string?[] Sessions = new string?[64];
        public int[] SessionOf = new int[64];
        public byte[] RecordBuffer = new byte[4096];

        // Pool ids by string instance (see IdOf): pooled key and context values only, never ids of users, events or sessions.
        public (string? Value, int Id)[] Codes = new (string?, int)[1024];

        public void Reserve(int count)
        {
            if (Hashes.Length < count)
            {
                Hashes = new uint[count];
                Keys = new Keys[count];
                Sessions = new string?[count];
                SessionOf = new int[count];
            }
        }

        public Span<byte> Records(int at, int size)
        {
            if (RecordBuffer.Length < at + size)
            {
                Array.Resize(ref RecordBuffer, Math.Max(at + size, RecordBuffer.Length * 2));
            }

            return RecordBuffer.AsSpan(at);
        }
    }

    /// <summary>True when an event with this id is in the log.</summary>
    public bool Contains(string eventId) => ContainsHot(eventId) || (_archive?.Log.ContainsHot(eventId) ?? false);

    private bool ContainsHot(string eventId)
    {
        var hash = HashId(eventId);
        var hashes = IdHashes;
        if (!hashes.Contains(hash))
        {
            return false;
        }

        // Confirm against the stored ids: a hash match is almost always the same id, but not by definition.
        var reader = new Reader(this);
        for (var i = 0; i < HotCount; i++)
        {
            var id = reader.Next(out _, out _, out _);
            if (hashes[i] == hash && Literal.EqualsString(id, eventId))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when some event has this session id.</summary>
    private bool HasSession(string sessionId) => HasHotSession(sessionId) || (_archive?.HasSession(sessionId) ?? false);

    private bool HasHotSession(string sessionId)
    {
        var reader = new Reader(this);
        for (var i = 0; i < HotCount; i++)
        {
            reader.Next(out _, out var session, out var same);
            if (!same && Literal.EqualsString(session, sessionId))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The log with <paramref name="e"/> added after every event not later than it. Adding at the end (the
    /// usual case) encodes only the new event (and, when its session differs from the previous event's,
    /// scans the stored session ids to count it); an earlier event rebuilds the log.
    /// </summary>
    public EventLog Add(StoredEvent e)
    {
        if (_archive is { } archive && e.Ticks < archive.Log.LastTicks)
        {
            // Earlier than archived events: the whole log is rebuilt (a rare, late event).
            var all = new List<StoredEvent>(Count + 1);
            all.AddRange(this);
            all.Insert(InsertionIndex(e.Ticks), e);
            return Of(all);
        }

        if (HotCount > 0 && e.Ticks < Times[HotCount - 1])
        {
            var hot = new List<StoredEvent>(HotCount + 1);
            hot.AddRange(Runs.Hot);
            hot.Insert(Runs.Hot.AsSeries().InsertionIndex(e.Ticks), e);
            return WithHot(Flat(hot));
        }

        return AddAtEnd(e);
    }

    /// <summary>True when the hot run has outgrown <see cref="HotLimit"/>: the owner calls <see cref="Freeze"/>.</summary>
    internal bool HotFull => HotCount > HotLimit;

    /// <summary>
    /// This log with its hot run merged into the archive (the hot run then empty). The runs are joined as
    /// they are encoded, without decoding an archived event: the cost is a copy of the arrays.
    /// </summary>
    internal EventLog Freeze()
    {
        var hot = Runs.Hot;
        return new EventLog(_archive is null ? new Archive(hot) : _archive.Append(hot));
    }

    // The flat run of this flat run's events followed by those of another flat run, later in time (exact size).
    private EventLog Concat(EventLog next)
    {
        var (n, m) = (HotCount, next.HotCount);
        var offset = _extra?.Length ?? 0;
        var recordBytes = _recordBytes + next._recordBytes;
        var data = new byte[RecordsAtFor(n + m) + recordBytes];
        Claim(data) = n + m;
        var hashes = MemoryMarshal.Cast<byte, uint>(data.AsSpan(ClaimSize, (n + m) * HashSize));
        IdHashes.CopyTo(hashes);
        next.IdHashes.CopyTo(hashes[n..]);
        var keys = MemoryMarshal.Cast<byte, Keys>(data.AsSpan(KeysAt(n + m), (n + m) * KeysSize));
        KeyRows.CopyTo(keys);
        for (var i = 0; i < m; i++)
        {
            var k = next.KeyRows[i];
            keys[n + i] = new Keys(Shift(k.Type), Shift(k.PageType), Shift(k.Category), Shift(k.ProductId));
        }

        Records.CopyTo(data.AsSpan(RecordsAtFor(n + m)));
        next.Records.CopyTo(data.AsSpan(RecordsAtFor(n + m) + _recordBytes));
        var ticks = new long[n + m];
        Times.AsSpan(0, n).CopyTo(ticks);
        next.Times.AsSpan(0, m).CopyTo(ticks.AsSpan(n));
        string[]? extra = _extra is null && next._extra is null ? null : [.. _extra ?? [], .. next._extra ?? []];
        return new EventLog(ticks, data, extra, n + m, recordBytes, m > 0 ? _recordBytes + next._lastSessionAt : _lastSessionAt, _sessions + next._sessions);

        int Shift(int code) => code <= -2 ? code - offset : code; // the next run's own extra strings follow this run's
    }

    // This log's archive with another hot run; the hot run's sessions the archive has are not counted twice.
    private EventLog WithHot(EventLog hot)
    {
        if (_archive is null)
        {
            return hot;
        }

        if (hot.HotCount > HotLimit)
        {
            return Of([.. _archive.Log, .. hot]);
        }

        var distinct = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in hot)
        {
            if (e.SessionId.Length > 0)
            {
                distinct.Add(e.SessionId);
            }
        }

        var archive = _archive;
        return new EventLog(hot.Times, hot.Data, hot._extra, hot._count, hot._recordBytes, hot._lastSessionAt, distinct.Count(id => !archive.HasSession(id)), archive);
    }

    // Appends to the hot run (the archive, if any, is shared). The usual write: while this snapshot is the last one
    // written to its arrays and they have room, the event is written past this snapshot's end, which this snapshot
    // and every older one never read, and the new snapshot shares the arrays: a write copies nothing, whatever the
    // length of the history. Otherwise (no room, a key value the pool does not take, or another snapshot already
    // appended to these arrays) the run is copied into arrays with room for about half as many events again.
    private EventLog AddAtEnd(StoredEvent e)
    {
        var records = Records;
        var same = HotCount > 0 && _lastSessionAt >= 0 && Literal.EqualsString(Literal.At(records, _lastSessionAt), e.SessionId);
        var max = MaxSize(e);
        var scratch = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            var written = Encode(e, false, default, same, scratch, out var sessionAt);
            List<string>? added = null;
            var keys = KeysOf(e, _extra?.Length ?? 0, ref added);
            var hash = HashId(e.EventId);
            var n = HotCount;
            var lastSessionAt = same ? _lastSessionAt : _recordBytes + sessionAt;
            var sessions = same || e.SessionId.Length == 0 || HasSession(e.SessionId) ? _sessions : _sessions + 1;
            var data = Data;
            var capacity = Capacity;
            if (added is null && n < capacity && RecordsAt + _recordBytes + written <= data.Length
                && Interlocked.CompareExchange(ref Claim(data), n + 1, n) == n)
            {
                Times[n] = e.Ticks;
                MemoryMarshal.Write(data.AsSpan(ClaimSize + (n * HashSize)), in hash);
                MemoryMarshal.Write(data.AsSpan(KeysAt(capacity) + (n * KeysSize)), in keys);
                scratch.AsSpan(0, written).CopyTo(data.AsSpan(RecordsAt + _recordBytes));
                return new EventLog(Times, data, _extra, n + 1, _recordBytes + written, lastSessionAt, sessions, _archive);
            }

            // New arrays with room: about half as many events again (at most the hot run's limit), records in proportion;
            // exact for a small log outside a visit (most profiles hold a few events and then rest).
            var grown = !GetsRoom(n + 1, n > 0 ? Times[n - 1] : long.MinValue, e.Ticks) ? n + 1 : Math.Max(n + 1, Math.Min(HotLimit + 1, n + 1 + ((n + 1) / 2)));
            var recordBytes = _recordBytes + written;
            var copy = new byte[RecordsAtFor(grown) + recordBytes + (int)((long)recordBytes * (grown - n - 1) / (n + 1))];
            Claim(copy) = n + 1;
            IdHashes.CopyTo(MemoryMarshal.Cast<byte, uint>(copy.AsSpan(ClaimSize, n * HashSize)));
            MemoryMarshal.Write(copy.AsSpan(ClaimSize + (n * HashSize)), in hash);
            KeyRows.CopyTo(MemoryMarshal.Cast<byte, Keys>(copy.AsSpan(KeysAt(grown), n * KeysSize)));
            MemoryMarshal.Write(copy.AsSpan(KeysAt(grown) + (n * KeysSize)), in keys);
            records.CopyTo(copy.AsSpan(RecordsAtFor(grown)));
            scratch.AsSpan(0, written).CopyTo(copy.AsSpan(RecordsAtFor(grown) + _recordBytes));
            var ticks = new long[grown];
            Times.AsSpan(0, n).CopyTo(ticks);
            ticks[n] = e.Ticks;
            var extra = added is null ? _extra : [.. _extra ?? [], .. added];
            return new EventLog(ticks, copy, extra, n + 1, recordBytes, lastSessionAt, sessions, _archive);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch, clearArray: true); // ids are personal data: no copies left in the pool
        }
    }

    /// <summary>The index a new event at <paramref name="ticks"/> takes: after every event not later than it.</summary>
    public int InsertionIndex(long ticks) => AsSeries().InsertionIndex(ticks);

    /// <inheritdoc />
    public IEnumerator<StoredEvent> GetEnumerator()
    {
        if (_archive is not null)
        {
            foreach (var e in _archive.Log)
            {
                yield return e;
            }
        }

        // Events of one session share one session id instance, as they did when they were written.
        var reader = new Reader(this);
        string? session = null;
        for (var i = 0; i < HotCount; i++)
        {
            var e = Decode(ref reader, i, ref session);
            yield return e;
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private StoredEvent Decode(ref Reader reader, int i, ref string? session)
    {
        var id = reader.Next(out var fields, out var sessionLiteral, out var sameSession);
        if (!sameSession || session is null)
        {
            session = sessionLiteral.ToString();
        }

        var k = KeyRows[i];
        return new StoredEvent(
            id.ToString(),
            Key(k.Type)!,
            Times[i],
            fields.Value,
            fields.Quantity,
            session,
            fields.Source!,
            Key(k.PageType)!,
            Key(k.Category),
            Key(k.ProductId),
            fields.Campaign,
            fields.Country);
    }

    private string? Key(int code) => code switch
    {
        >= 0 => StringPool.ValueOf(code),
        -1 => null,
        _ => _extra![-2 - code],
    };

    // The pooled codes of an event's keys; a value the pool does not take is added to extra, whose first entry
    // follows the existing extra strings' (existing).
    private static Keys KeysOf(StoredEvent e, int existing, ref List<string>? extra, Scratch? memo = null) =>
        new(KeyCode(e.Type, existing, ref extra, memo), KeyCode(e.PageType, existing, ref extra, memo), KeyCode(e.Category, existing, ref extra, memo), KeyCode(e.ProductId, existing, ref extra, memo));

    private static int KeyCode(string? value, int existing, ref List<string>? extra, Scratch? memo)
    {
        if (value is null)
        {
            return -1;
        }

        var id = IdOf(value, memo);
        if (id >= 0)
        {
            return id;
        }

        extra ??= [];
        extra.Add(value);
        return -1 - existing - extra.Count;
    }

    // The pool id of value (StringPool.IdOf), remembered by instance in the thread's scratch when one is given: a log
    // built whole (a restore builds a million) repeats its types, sources and countries, and a restore reads each
    // value of a chunk as one instance, so most lookups are a reference comparison instead of hashing the string.
    // Ids never change once given (the pool is append-only); only pooled values are remembered.
    private static int IdOf(string value, Scratch? memo)
    {
        if (memo is null)
        {
            return StringPool.IdOf(value);
        }

        ref var known = ref memo.Codes[RuntimeHelpers.GetHashCode(value) & (memo.Codes.Length - 1)];
        if (ReferenceEquals(known.Value, value))
        {
            return known.Id;
        }

        var id = StringPool.IdOf(value);
        if (id >= 0)
        {
            known = (value, id); // a refused value (too long, or the pool full) lives only in its profile's log, and goes with it
        }

        return id;
    }

    private static int MaxSize(StoredEvent e) =>
        1 + 8 + 5 + PooledString.MaxSize(e.Source) + PooledString.MaxSize(e.CampaignId) + PooledString.MaxSize(e.Country) + Literal.MaxSize(e.EventId) + Literal.MaxSize(e.SessionId);

    /// <summary>
    /// Encodes the byte-array part of one event; its id is <paramref name="idUtf8"/> when <paramref name="idInBytes"/>,
    /// else its <see cref="StoredEvent.EventId"/>. <paramref name="sessionAt"/> is where its session literal starts (when written).
    /// </summary>
    private static int Encode(StoredEvent e, bool idInBytes, ReadOnlySpan<byte> idUtf8, bool sameSession, Span<byte> span, out int sessionAt, bool sessionInBytes = false, ReadOnlySpan<byte> sessionUtf8 = default, Scratch? memo = null)
    {
        var flags = (byte)((e.Value != 0 ? HasValue : 0) | (e.Quantity != 1 ? HasQuantity : 0) | (sameSession ? SameSession : 0));
        span[0] = flags;
        var at = 1;
        at += PooledString.Write(span[at..], e.Source, e.Source is null ? -1 : IdOf(e.Source, memo));
        at += PooledString.Write(span[at..], e.CampaignId, admit: e.CampaignId is null || !StringPool.IsUniqueId(e.CampaignId)); // outcomes put decision ids here
        at += PooledString.Write(span[at..], e.Country, e.Country is null ? -1 : IdOf(e.Country, memo));
        if ((flags & HasValue) != 0)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(span[at..], e.Value);
            at += 8;
        }

        if ((flags & HasQuantity) != 0)
        {
            at += Varint.WriteSigned(span[at..], e.Quantity);
        }

        at += idInBytes ? Literal.WriteUtf8(span[at..], idUtf8) : Literal.Write(span[at..], e.EventId);
        sessionAt = at;
        if (!sameSession)
        {
            at += sessionInBytes ? Literal.WriteUtf8(span[at..], sessionUtf8) : Literal.Write(span[at..], e.SessionId);
        }

        return at;
    }

    internal readonly record struct Keys(int Type, int PageType, int Category, int ProductId);

    /// <summary>The byte-array fields of one event, with pooled strings resolved.</summary>
    private readonly record struct Fields(string? Source, string? Campaign, string? Country, double Value, int Quantity);

    /// <summary>Decodes the byte array one event at a time.</summary>
    private struct Reader(EventLog log)
    {
        private readonly byte[] _data = log.Data;
        private int _at = log.RecordsAt;

        /// <summary>The next event's fields; returns its id literal.</summary>
        public Literal Next(out Fields fields, out Literal session, out bool sameSession)
        {
            var flags = _data[_at++];
            var source = PooledString.Read(_data, ref _at);
            var campaign = PooledString.Read(_data, ref _at);
            var country = PooledString.Read(_data, ref _at);
            var value = 0d;
            if ((flags & HasValue) != 0)
            {
                value = BinaryPrimitives.ReadDoubleLittleEndian(_data.AsSpan(_at));
                _at += 8;
            }

            var quantity = 1;
            if ((flags & HasQuantity) != 0)
            {
                quantity = Varint.ReadSigned(_data, ref _at);
            }

            fields = new Fields(source, campaign, country, value, quantity);
            var id = Literal.Read(_data, ref _at);
            sameSession = (flags & SameSession) != 0;
            session = sameSession ? default : Literal.Read(_data, ref _at);
            return id;
        }

        /// <summary>Moves past the next event without making any of its strings; returns its value and quantity.</summary>
        public (double Value, int Quantity) Skip()
        {
            var flags = _data[_at++];
            PooledString.Skip(_data, ref _at);
            PooledString.Skip(_data, ref _at);
            PooledString.Skip(_data, ref _at);
            var value = 0d;
            if ((flags & HasValue) != 0)
            {
                value = BinaryPrimitives.ReadDoubleLittleEndian(_data.AsSpan(_at));
                _at += 8;
            }

            var quantity = 1;
            if ((flags & HasQuantity) != 0)
            {
                quantity = Varint.ReadSigned(_data, ref _at);
            }

            _ = Literal.Read(_data, ref _at);
            if ((flags & SameSession) == 0)
            {
                _ = Literal.Read(_data, ref _at);
            }

            return (value, quantity);
        }
    }

    /// <summary>The archive run: older events, frozen, with what reads of them need at hand.</summary>
    private sealed class Archive
    {
        private readonly ulong[] _sessionHashes; // sorted 64-bit hashes of the archived session ids

        public Archive(EventLog log)
            : this(log, SessionHashes(log, []))
        {
        }

        private Archive(EventLog log, ulong[] sessionHashes)
        {
            Log = log;
            AllEvents = new EventSeries.Older(EventSeries.FromOrderedTicks(log.Times, log.HotCount));
            _sessionHashes = sessionHashes;
        }

        /// <summary>A new archive: these events followed by those of the flat run <paramref name="hot"/>.</summary>
        public Archive Append(EventLog hot) => new(Log.Concat(hot), SessionHashes(hot, _sessionHashes));

        // The sorted hashes of known with those of the run's sessions added.
        private static ulong[] SessionHashes(EventLog run, ulong[] known)
        {
            var hashes = new HashSet<ulong>(known);
            string? last = null;
            foreach (var e in run)
            {
                if (!ReferenceEquals(last, e.SessionId))
                {
                    hashes.Add(SessionHash(e.SessionId));
                    last = e.SessionId;
                }
            }

            var sorted = hashes.ToArray();
            Array.Sort(sorted);
            return sorted;
        }

        /// <summary>The archived events as one flat run.</summary>
        public EventLog Log { get; }

        /// <summary>Their times as an all-events series, boxed once to be the older run of every all-events series.</summary>
        public EventSeries.Older AllEvents { get; }

        /// <summary>True when an archived event has this session (by a 64-bit hash: a false match is vanishingly rare).</summary>
        public bool HasSession(string sessionId) => Array.BinarySearch(_sessionHashes, SessionHash(sessionId)) >= 0;

        private static ulong SessionHash(string sessionId) => System.IO.Hashing.XxHash3.HashToUInt64(MemoryMarshal.AsBytes(sessionId.AsSpan()));
    }
}
