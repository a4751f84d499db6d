using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Audit;

/// <summary>One administrative action: who (the API key's name), what, when, about which user, and how it ended.</summary>
/// <param name="Sequence">Position in the trail, increasing from 1; the page token of listings.</param>
/// <param name="At">When the action finished.</param>
/// <param name="Actor">The API key's configured name (never the key).</param>
/// <param name="Action">What was done, for example <c>catalog.publish</c>, <c>privacy.forget</c>.</param>
/// <param name="Outcome"><c>OK</c>, or the status the action ended with (for example <c>INVALID_ARGUMENT</c>, <c>PERMISSION_DENIED</c>).</param>
/// <param name="UserId">The user the action concerned; empty when none, <see cref="AdminAuditTrail.Erased"/> after that user was erased.</param>
/// <param name="Detail">A short description without personal data (versions, experiment, purpose).</param>
public sealed record AuditEntry(long Sequence, DateTimeOffset At, string Actor, string Action, string Outcome, string UserId, string Detail);

/// <summary>A page of audit entries, newest first, and the token of the next (older) page; "" on the last.</summary>
public sealed record AuditPage(IReadOnlyList<AuditEntry> Entries, string NextPageToken);

/// <summary>Where the audit trail is kept (a file in the data directory); storage lives outside the domain.</summary>
public interface IAuditJournal
{
    /// <summary>The kept entries, oldest first.</summary>
    IReadOnlyList<AuditEntry> Load();

    /// <summary>Appends one entry (written through to the operating system before the call returns).</summary>
    void Append(AuditEntry entry);

    /// <summary>Replaces the kept entries with <paramref name="entries"/> (oldest first), atomically: an erasure or trimming.</summary>
    void Rewrite(IReadOnlyList<AuditEntry> entries);
}

/// <summary>No durability: the trail lives in memory only.</summary>
public sealed class NoAuditJournal : IAuditJournal
{
    /// <summary>The one instance.</summary>
    public static readonly NoAuditJournal Instance = new();

    private NoAuditJournal()
    {
    }

    /// <inheritdoc />
    public IReadOnlyList<AuditEntry> Load() => [];

    /// <inheritdoc />
    public void Append(AuditEntry entry)
    {
    }

    /// <inheritdoc />
    public void Rewrite(IReadOnlyList<AuditEntry> entries)
    {
    }
}

/// <summary>
/// The admin audit trail: catalog publishes and rollbacks, experiments stopped or promoted, users' data exported,
/// erased or their consent read or changed on their behalf — each with the caller's API key name, the time and the
/// outcome, durable through <see cref="IAuditJournal"/>. Entries carry no personal data beyond the id of the user an
/// action concerned; when that user is erased (<see cref="Erase"/>), the id is replaced by <see cref="Erased"/> in every
/// entry, so the trail keeps who did what and when (accountability) without identifying the person. The newest
/// <see cref="MaxEntries"/> entries are kept.
/// </summary>
public sealed class AdminAuditTrail : IDisposable
{
    /// <summary>Entries kept; older ones are dropped (and the journal rewritten) once twice as many were written.</summary>
    public const int MaxEntries = 100_000;

    /// <summary>Entries per page when the caller gives no size.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>Most entries per page.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>What replaces the user id of an erased user.</summary>
    public const string Erased = "[erased]";

    /// <summary>Longest detail kept, in characters.</summary>
    public const int MaxDetailLength = 300;

    private readonly IAuditJournal _journal;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Actor, string Action), DateTimeOffset> _lastRefusal = [];

    // Ids erased within ErasedMemory, with when: a call about the user still in flight at the erasure (an export, a
    // consent read) is recorded after it, and must not name the user either.
    private readonly Dictionary<string, DateTimeOffset> _recentlyErased = new(StringComparer.Ordinal);
    private readonly Queue<(string Id, DateTimeOffset At)> _erasedOrder = new();

    /// <summary>How long after an erasure an entry about one of its ids is recorded without the id.</summary>
    public static readonly TimeSpan ErasedMemory = TimeSpan.FromHours(1);
    private List<AuditEntry> _entries;

    // The newest entries the journal refused (a full disk): written before the next entry, in order.
    private int _unwritten;

    /// <summary>Restores the trail <paramref name="journal"/> kept (the newest <see cref="MaxEntries"/> of it).</summary>
    public AdminAuditTrail(IAuditJournal journal, TimeProvider time)
    {
        _journal = journal ?? throw new ArgumentNullException(nameof(journal));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _entries = [.. journal.Load()];
        if (_entries.Count > MaxEntries)
        {
            _entries.RemoveRange(0, _entries.Count - MaxEntries);
            _trimPending = true;
            TryTrimJournal(); // a full disk refuses the smaller copy: the server starts all the same, and the next entry tries again
        }
    }

    // The journal still holds entries the trail dropped (its trim was refused): rewritten with a later entry, at most
    // once per TrimRetryInterval (each try writes a whole copy, which a full disk refuses only once it is full).
    private bool _trimPending;
    private DateTimeOffset _nextTrimTry;

    /// <summary>How long after a refused cut-back of the journal the next is tried.</summary>
    public static readonly TimeSpan TrimRetryInterval = TimeSpan.FromMinutes(1);

    // Replaces the journal by the entries kept, when a trim is pending; a refusal (a full disk) leaves the old file,
    // which holds them all, and is tried again later.
    private void TryTrimJournal()
    {
        var now = _time.GetUtcNow();
        if (!_trimPending || now < _nextTrimTry)
        {
            return;
        }

        try
        {
            _journal.Rewrite(_entries);
            _trimPending = false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Deliberately kept going: nothing is lost (the file holds more than the trail, not less).
            _nextTrimTry = now + TrimRetryInterval;
        }
    }

    /// <summary>How long refused calls of one key and action are recorded once (so a caller cannot flood the trail).</summary>
    public static readonly TimeSpan RefusalInterval = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Records a call refused before it ran (a missing scope), at most once per key and action per
    /// <see cref="RefusalInterval"/>: enough to show the attempt, never enough to push real actions out. Returns
    /// whether an entry was written.
    /// </summary>
    public bool RecordRefusal(string actor, string action, string outcome, string detail)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            if (_lastRefusal.TryGetValue((actor, action), out var last) && now - last < RefusalInterval)
            {
                return false;
            }

            if (_lastRefusal.Count > 10_000)
            {
                _lastRefusal.Clear(); // bounded: keys are configured, actions few; this only guards against surprises
            }

            _lastRefusal[(actor, action)] = now;
        }

        Record(actor, action, outcome, null, detail + $" (refusals of this key and action are recorded at most once a minute)");
        return true;
    }

    /// <summary>Entries kept now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Records an action that finished now. A journal that cannot be written throws (the action itself already happened).</summary>
    public AuditEntry Record(string actor, string action, string outcome, string? userId, string? detail)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            ForgetOldErasures(now);
            var erased = userId is { Length: > 0 } && _recentlyErased.ContainsKey(userId);
            var entry = new AuditEntry(
                (_entries.Count > 0 ? _entries[^1].Sequence : 0) + 1,
                now,
                actor,
                action,
                outcome,
                erased ? Erased : userId ?? "",
                erased ? "" : InputLimits.Bounded(detail ?? "", MaxDetailLength));
            _entries.Add(entry);
            _unwritten++;
            WriteUnwritten(); // throws when refused: this one and those after it are written next time

            if (_entries.Count >= 2 * MaxEntries)
            {
                _entries.RemoveRange(0, _entries.Count - MaxEntries);
                _trimPending = true;
            }

            TryTrimJournal();
            return entry;
        }
    }

    /// <summary>
    /// Writes the entries the journal refused (a full disk since freed) before the journal closes at shutdown: without a
    /// later entry to write them with, a restart would lose them. What still cannot be written is lost with the process.
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            try
            {
                WriteUnwritten();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                // The disk still refuses them, or the journal closed first: nothing more can be done.
            }
        }
    }

    // Appends the refused entries, oldest first; call under the gate.
    private void WriteUnwritten()
    {
        for (var i = _entries.Count - _unwritten; i < _entries.Count; i++)
        {
            _journal.Append(_entries[i]);
            _unwritten--;
        }
    }

    /// <summary>
    /// Entries newest first, after <paramref name="pageToken"/> (the sequence the previous page ended before), filtered by
    /// action, actor and user id when given (exact match). <paramref name="pageSize"/> 0 means <see cref="DefaultPageSize"/>.
    /// </summary>
    public AuditPage List(int pageSize, string pageToken, string? action = null, string? actor = null, string? userId = null)
    {
        if (pageSize is < 0 or > MaxPageSize)
        {
            throw new ValidationException("page_size", $"must be between 1 and {MaxPageSize} (0 means {DefaultPageSize})");
        }

        long before = long.MaxValue;
        if (!string.IsNullOrEmpty(pageToken) && (!long.TryParse(pageToken, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out before) || before <= 0))
        {
            throw new ValidationException("page_token", "not a token this service returned");
        }

        var size = pageSize == 0 ? DefaultPageSize : pageSize;
        var page = new List<AuditEntry>(Math.Min(size, 64));
        lock (_gate)
        {
            for (var i = _entries.Count - 1; i >= 0; i--)
            {
                var e = _entries[i];
                if (e.Sequence >= before || !Matches(e.Action, action) || !Matches(e.Actor, actor) || !Matches(e.UserId, userId))
                {
                    continue;
                }

                if (page.Count == size)
                {
                    return new AuditPage(page, page[^1].Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                page.Add(e);
            }
        }

        return new AuditPage(page, "");
    }

    /// <summary>
    /// Replaces every entry's user id that is one of <paramref name="userIds"/> by <see cref="Erased"/> and clears that
    /// entry's detail (a consent source, for example, is about the person), in the journal first and then in memory: when
    /// the journal cannot be rewritten nothing changes and the exception tells the caller to retry, so a retry finds the
    /// ids again and rewrites.
    /// </summary>
    public void Erase(IReadOnlySet<string> userIds)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        lock (_gate)
        {
            List<AuditEntry>? erased = null;
            for (var i = 0; i < _entries.Count; i++)
            {
                if (_entries[i].UserId.Length > 0 && userIds.Contains(_entries[i].UserId))
                {
                    erased ??= [.. _entries];
                    erased[i] = erased[i] with { UserId = Erased, Detail = "" };
                }
            }

            // A trim still pending leaves dropped entries in the file, which may name the user: rewritten too.
            if (erased is not null || _trimPending)
            {
                _journal.Rewrite(erased ?? _entries);
                _entries = erased ?? _entries;
                _unwritten = 0; // the rewrite wrote every entry
                _trimPending = false;
            }

            var now = _time.GetUtcNow();
            ForgetOldErasures(now);
            foreach (var id in userIds)
            {
                _recentlyErased[id] = now;
                _erasedOrder.Enqueue((id, now));
            }
        }
    }

    // Under the gate: drops the ids erased longer than ErasedMemory ago.
    private void ForgetOldErasures(DateTimeOffset now)
    {
        while (_erasedOrder.TryPeek(out var oldest) && now - oldest.At > ErasedMemory)
        {
            _erasedOrder.Dequeue();
            if (_recentlyErased.TryGetValue(oldest.Id, out var at) && at == oldest.At)
            {
                _recentlyErased.Remove(oldest.Id);
            }
        }
    }

    private static bool Matches(string value, string? filter) => string.IsNullOrEmpty(filter) || string.Equals(value, filter, StringComparison.Ordinal);
}
