using Segmentation.Core.Application.Telemetry;

namespace Segmentation.Core.Application.Membership;

/// <summary>What a change-stream entry says happened.</summary>
public enum ChangeKind : byte
{
    /// <summary>The user now matches the segment.</summary>
    Entered = 1,

    /// <summary>The user no longer matches the segment.</summary>
    Left = 2,

    /// <summary>A scheduled trigger of the segment came due and its conditions still held.</summary>
    Triggered = 3,
}

/// <summary>One entry of the change stream.</summary>
/// <param name="Offset">Its position: increasing by one per entry, never reused (also across restarts).</param>
/// <param name="UserId">The user.</param>
/// <param name="SegmentId">The segment entered, left, or whose trigger fired.</param>
/// <param name="Kind">What happened.</param>
/// <param name="At">When.</param>
/// <param name="CatalogVersion">The catalog version that evaluated it.</param>
/// <param name="Cause">The write that caused it (<c>event:&lt;id&gt;</c>, <c>traits:&lt;source&gt;</c>, <c>catalog:v&lt;n&gt;</c>, <c>time</c>), or for a trigger <c>entered:&lt;offset&gt;</c>.</param>
/// <param name="Trigger">The trigger's id, for <see cref="ChangeKind.Triggered"/>.</param>
/// <param name="Again">
/// An entry announced again, not entered now (a segment announced before personalization consent was withdrawn, at
/// its grant): its cause ends in <c>:again</c>, but this flag, not the text, says so (a caller's event id or trait
/// source may end in <c>:again</c> too).
/// </param>
public sealed record FeedEntry(long Offset, string UserId, string SegmentId, ChangeKind Kind, DateTimeOffset At, long CatalogVersion, string Cause, string? Trigger = null, bool Again = false);

/// <summary>How much of the change stream is kept for consumers to resume from.</summary>
public sealed class ChangeFeedOptions
{
    /// <summary>Entries kept in memory (and on disk) at most. About 120 bytes each; default 1,000,000.</summary>
    public int Capacity { get; set; } = 1_000_000;

    /// <summary>Entries older than this are dropped. Default 7 days.</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>
/// The offset asked for is no longer (or not yet) in the stream: the consumer must resynchronise from the
/// current memberships (ListSegmentMembers) and continue from <see cref="Oldest"/> or the end.
/// </summary>
public sealed class FeedOffsetException(string message, long oldest, long last) : Exception(message)
{
    /// <summary>The oldest offset still retained (last + 1 when none is).</summary>
    public long Oldest { get; } = oldest;

    /// <summary>The newest offset a consumer can be served.</summary>
    public long Last { get; } = last;
}

/// <summary>
/// The change stream: every membership change and fired trigger, numbered by an offset that increases by one
/// per entry, kept for a retention window (a count and an age) so a consumer that reconnects with its last
/// offset receives everything it missed. Entries are appended under the user's write lock (so one user's
/// entries are in the order they happened) and under one short global lock (so offsets are dense and in order).
/// Durable when a journal writes what <see cref="ReadAfter"/> returns past <see cref="Journaled"/>, and
/// <see cref="Restore"/> loads it back at start-up.
/// </summary>
public sealed class ChangeFeed
{
    private readonly Lock _gate = new();
    private readonly int _capacity;
    private FeedEntry?[] _ring; // grows by doubling up to the capacity
    private readonly TimeSpan _retention;
    private readonly TimeProvider _time;
    private long _last;  // offset of the newest entry (0: none yet)
    private long _first = 1; // offset of the oldest retained entry (_last + 1 when empty)
    private long _redactions; // how many times entries were blanked: a reader holding copies reads them again
    private long _journaled;
    private TaskCompletionSource _appended = NewSignal();

    /// <summary>
    /// The stream's identity: an offset means something only in the stream it was read from. Random unless a journal
    /// keeps one (<see cref="ChangeStream.IChangeFeedJournal.StreamId"/>).
    /// </summary>
    public string StreamId { get; init; } = NewStreamId();

    /// <summary>A new random stream identity (32 hexadecimal digits).</summary>
    public static string NewStreamId() => Guid.NewGuid().ToString("N");

    /// <summary>A feed keeping what <paramref name="options"/> says.</summary>
    public ChangeFeed(ChangeFeedOptions? options = null, TimeProvider? time = null)
    {
        options ??= new ChangeFeedOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Capacity, 1);
        _capacity = options.Capacity;
        _ring = new FeedEntry?[Math.Min(_capacity, 1024)];
        _retention = options.Retention;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The newest offset (0 before the first entry).</summary>
    public long Last { get { lock (_gate) { return _last; } } }

    /// <summary>The oldest offset still retained (<see cref="Last"/> + 1 when nothing is).</summary>
    public long Oldest { get { lock (_gate) { Expire(_time.GetUtcNow()); return _first; } } }

    /// <summary>
    /// True when a journal keeps the stream: readers are then served only entries already written to it, so an offset
    /// a consumer has seen is never handed out again after a crash (entries reach readers within a flush interval).
    /// </summary>
    public bool ServeOnlyJournaled { get; init; }

    /// <summary>The newest offset written to the journal.</summary>
    public long Journaled => Volatile.Read(ref _journaled);

    /// <summary>Entries dropped by the count bound before the journal wrote them (a burst larger than the capacity between two flushes).</summary>
    public long Unjournaled { get; private set; }

    /// <summary>Appends one entry, giving it the next offset (<paramref name="again"/>: see <see cref="FeedEntry.Again"/>).</summary>
    public FeedEntry Append(string userId, string segmentId, ChangeKind kind, DateTimeOffset at, long catalogVersion, string cause, string? trigger = null, bool again = false)
    {
        if (kind != ChangeKind.Triggered && SegmentationTelemetry.MembershipChanges.Enabled)
        {
            // What watchers are told: not the moves of users without personalization consent, nor a restart's rebuild.
            SegmentationTelemetry.MembershipChanges.Add(1, SegmentationTelemetry.Tag("segment", segmentId), SegmentationTelemetry.Tag("direction", kind == ChangeKind.Entered ? "entered" : "left"));
        }

        TaskCompletionSource? signal = null;
        FeedEntry entry;
        lock (_gate)
        {
            entry = new FeedEntry(_last + 1, userId, segmentId, kind, at, catalogVersion, cause, trigger, again);
            Put(entry);
            if (!ServeOnlyJournaled) // otherwise nothing new is readable until the journal has written it: MarkJournaled wakes readers
            {
                signal = _appended;
                _appended = NewSignal();
            }
        }

        signal?.TrySetResult(); // outside the lock: waiting readers continue on the thread pool
        return entry;
    }

    /// <summary>
    /// Loads entries read back from the journal at start-up (ascending offsets), before anything is appended;
    /// later appends continue after the last of them. Entries past the retention window are skipped.
    /// </summary>
    public void Restore(IEnumerable<FeedEntry> entries, long lastOffset)
    {
        lock (_gate)
        {
            foreach (var e in entries)
            {
                if (e.Offset <= _last)
                {
                    continue;
                }

                if (_last == 0 || e.Offset != _last + 1)
                {
                    Array.Clear(_ring); // the first entry, or after a gap: only the contiguous tail is served
                    _first = e.Offset;
                }

                Put(e);
            }

            if (lastOffset > _last)
            {
                Array.Clear(_ring); // the journal knew later offsets whose entries are gone: numbering goes on after them
                _last = lastOffset;
                _first = lastOffset + 1;
            }

            _journaled = _last;
            Expire(_time.GetUtcNow());
        }
    }

    /// <summary>
    /// Copies up to <paramref name="max"/> entries with offsets after <paramref name="after"/> into
    /// <paramref name="into"/>, oldest first; returns how many. Throws <see cref="FeedOffsetException"/> when
    /// entries right after <paramref name="after"/> are no longer retained, or when <paramref name="after"/> is
    /// past the newest offset (the stream was reset: a consumer of another server or data directory).
    /// </summary>
    public int ReadAfter(long after, List<FeedEntry> into, int max, bool fromOldest = false) => Read(after, into, max, fromOldest, unwritten: false);

    /// <summary>As <see cref="ReadAfter"/>, including entries not yet written to the journal (for the service's own bookkeeping, never for consumers).</summary>
    public int ReadAllAfter(long after, List<FeedEntry> into, int max) => Read(after, into, max, fromOldest: false, unwritten: true);

    private int Read(long after, List<FeedEntry> into, int max, bool fromOldest, bool unwritten)
    {
        lock (_gate)
        {
            Expire(_time.GetUtcNow());
            if (fromOldest)
            {
                after = Math.Max(after, _first - 1); // read under the same lock as the entries: nothing can expire in between
            }

            // A consumer is told only of offsets it can be served: with a journal, the written ones (an offset not yet
            // written could be handed out again, with other content, after a crash). An offset up to the last appended
            // one is no reset: a watch "from now" starts there and is served once the journal has written past it.
            var end = ServeOnlyJournaled && !unwritten ? _journaled : _last;
            if (after > _last)
            {
                throw new FeedOffsetException($"offset {after} is past the newest offset {end}: this stream was reset (another server or data directory); resynchronise and continue from the newest offset", _first, end);
            }

            if (after + 1 < _first)
            {
                throw new FeedOffsetException($"offset {after + 1} is no longer retained (the oldest is {_first}): resynchronise from the current memberships and continue from offset {_first - 1}", _first, end);
            }

            var n = 0;
            for (var o = after + 1; o <= end && n < max; o++, n++)
            {
                into.Add(_ring[Slot(o)]!);
            }

            return n;
        }
    }

    /// <summary>Completes when an entry after <paramref name="after"/> can be read (at once if one can).</summary>
    public Task WaitAfterAsync(long after, CancellationToken cancellation)
    {
        Task signal;
        lock (_gate)
        {
            if ((ServeOnlyJournaled ? _journaled : _last) > after)
            {
                return Task.CompletedTask;
            }

            signal = _appended.Task;
        }

        return signal.WaitAsync(cancellation);
    }

    /// <summary>
    /// Blanks an erased user in the retained entries: each keeps its offset and segment (consumers' positions stay
    /// valid) with an empty user id and the cause <c>erased</c>. The journal's copies go as its files are trimmed.
    /// </summary>
    public void Redact(string userId)
    {
        lock (_gate)
        {
            Interlocked.Increment(ref _redactions);
            for (var o = _first; o <= _last; o++)
            {
                if (_ring[Slot(o)] is { } e && string.Equals(e.UserId, userId, StringComparison.Ordinal))
                {
                    _ring[Slot(o)] = e with { UserId = "", Cause = "erased" };
                }
            }
        }
    }

    /// <summary>
    /// Changes whenever <see cref="Redact"/> blanks entries: a reader that copied entries before (a watch's batch) reads
    /// the rest again rather than hand on an erased user's id.
    /// </summary>
    public long Redactions => Interlocked.Read(ref _redactions);

    /// <summary>Records that the journal holds every entry up to <paramref name="offset"/>.</summary>
    public void MarkJournaled(long offset)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            _journaled = Math.Max(_journaled, offset);
            signal = _appended;
            _appended = NewSignal();
        }

        signal.TrySetResult(); // readers served only journaled entries can go on
    }

    /// <summary>The entries the journal has not written yet, oldest first (those already dropped are counted in <see cref="Unjournaled"/>).</summary>
    public List<FeedEntry> Unwritten(int max)
    {
        var into = new List<FeedEntry>();
        lock (_gate)
        {
            if (_journaled + 1 < _first)
            {
                Unjournaled += _first - _journaled - 1;
                _journaled = _first - 1;
            }

            for (var o = _journaled + 1; o <= _last && into.Count < max; o++)
            {
                into.Add(_ring[Slot(o)]!);
            }
        }

        return into;
    }

    private void Put(FeedEntry entry)
    {
        if (entry.Offset - _first + 1 > _ring.Length && _ring.Length < _capacity)
        {
            var grown = new FeedEntry?[(int)Math.Min(_capacity, _ring.Length * 2L)];
            for (var o = _first; o <= _last; o++)
            {
                grown[(o - 1) % grown.Length] = _ring[Slot(o)];
            }

            _ring = grown;
        }

        _last = entry.Offset;
        _ring[Slot(entry.Offset)] = entry;
        if (_last - _first + 1 > _ring.Length)
        {
            _first = _last - _ring.Length + 1;
        }

        if ((_last & 1023) == 0)
        {
            Expire(entry.At);
        }
    }

    // Drops entries older than the retention window (amortised: each entry is dropped once).
    private void Expire(DateTimeOffset now)
    {
        var horizon = now - _retention;
        while (_first <= _last && _ring[Slot(_first)] is { } oldest && oldest.At < horizon)
        {
            _ring[Slot(_first)] = null;
            _first++;
        }
    }

    private int Slot(long offset) => (int)((offset - 1) % _ring.Length);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
