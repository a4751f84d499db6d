using System.Collections.Concurrent;
using System.Collections.Immutable;

namespace Segmentation.Core.Application.Membership;

/// <summary>
/// One segment's current members: a concurrent set (membership, counts), and, once the segment is listed page by
/// page, its ids kept in order so that a page is a search and one lookup per id rather than a pass over every member.
/// </summary>
/// <remarks>
/// The ordered listing is built in the background on the first page request (about 0.8 s and 64 MB for a million
/// members); until it is ready, pages are answered by one pass over the set. While it is being built, joins and
/// leaves are logged and replayed onto it before it is used, so it never misses a change; once ready, each change
/// updates it under the segment's lock. Once <see cref="ListingOptions.IdleTimeout"/> has passed without a page it is
/// dropped at the segment's next change or by <see cref="DropIfIdle"/> (the index sweeps every few seconds), whichever
/// comes first, and built again when needed. A build that fails, or whose log outgrows the segment, is
/// abandoned; pages keep to the pass, and no new build starts for <see cref="ListingOptions.RetryAfterFailure"/>.
/// </remarks>
internal sealed class SegmentMemberSet(int stripes, ListingOptions options)
{
    private const int Off = 0;
    private const int Building = 1;
    private const int Ready = 2;

    private static readonly Comparer<string> DescendingOrdinal = Comparer<string>.Create(static (a, b) => string.CompareOrdinal(b, a));

    private readonly ConcurrentDictionary<string, byte> _ids = new(stripes, 1024, StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private int _mode;
    private ImmutableSortedSet<string>? _listing;
    private List<(string Id, bool Added)>? _log; // the changes made while the current build runs; identifies that build
    private Task _building = Task.CompletedTask;
    private long _pagedAt;
    private long _retryAt; // Environment.TickCount64 from which a failed build may be tried again

    /// <summary>Number of members.</summary>
    public int Count => _ids.Count;

    /// <summary>True once pages come from the ordered listing.</summary>
    public bool IsListed => Volatile.Read(ref _mode) == Ready;

    /// <summary>Adds a member (the caller holds the user's write lock).</summary>
    public void Add(string userId)
    {
        _ids[userId] = 0;
        Changed(userId, added: true);
    }

    /// <summary>Removes a member (the caller holds the user's write lock).</summary>
    public void Remove(string userId)
    {
        if (_ids.TryRemove(userId, out _))
        {
            Changed(userId, added: false);
        }
    }

    /// <summary>Up to <paramref name="limit"/> members after <paramref name="after"/> in ordinal order (none for a limit of 0 or less).</summary>
    public IReadOnlyList<string> Page(string after, int limit)
    {
        if (limit <= 0)
        {
            return [];
        }

        Volatile.Write(ref _pagedAt, Environment.TickCount64);
        if (Volatile.Read(ref _mode) == Ready && Volatile.Read(ref _listing) is { } listing)
        {
            return PageOf(listing, after, limit);
        }

        _ = Prepare(); // never faults: a failed build is abandoned
        return Scan(after, limit);
    }

    /// <summary>
    /// Starts building the ordered listing unless it is built or being built (or a build failed a short while ago);
    /// completes when that build has ended. <see cref="IsListed"/> then says whether it succeeded.
    /// </summary>
    public Task Prepare()
    {
        Volatile.Write(ref _pagedAt, Environment.TickCount64);
        if (!options.Enabled)
        {
            return Task.CompletedTask;
        }

        lock (_gate)
        {
            if (_mode == Off && Environment.TickCount64 >= _retryAt)
            {
                var log = new List<(string Id, bool Added)>();
                _log = log;
                Volatile.Write(ref _mode, Building);
                _building = Task.Run(() => Build(log));
            }

            return _mode == Ready ? Task.CompletedTask : _building;
        }
    }

    private void Build(List<(string Id, bool Added)> log)
    {
        var done = false;
        try
        {
            // A change either happened before the mode said Building, and the copy below sees it, or it is in the log:
            // the change writes the set, then reads the mode; the build wrote the mode, then reads the set (full fences
            // on both sides, so neither read moves before its write).
            Interlocked.MemoryBarrier();
            var ids = new List<string>(_ids.Count);
            foreach (var (id, _) in _ids)
            {
                ids.Add(id);
            }

            var built = ImmutableSortedSet.CreateRange(StringComparer.Ordinal, ids);
            options.AfterCopy?.Invoke();
            lock (_gate)
            {
                if (!ReferenceEquals(_log, log))
                {
                    done = true;
                    return; // abandoned while it ran (its log outgrew the segment)
                }

                foreach (var (id, added) in log)
                {
                    built = added ? built.Add(id) : built.Remove(id); // in order: a user's changes are serialized by its write lock
                }

                _log = null;
                Volatile.Write(ref _listing, built);
                Volatile.Write(ref _mode, Ready);
                done = true;
            }
        }
        finally
        {
            if (!done)
            {
                lock (_gate)
                {
                    if (ReferenceEquals(_log, log))
                    {
                        Abandon(failed: true); // failed (out of memory): pages keep to the pass
                    }
                }
            }
        }
    }

    private void Changed(string userId, bool added)
    {
        Interlocked.MemoryBarrier(); // the set's write before the mode's read (see Build)
        if (Volatile.Read(ref _mode) == Off)
        {
            return;
        }

        lock (_gate)
        {
            switch (_mode)
            {
                case Building:
                    _log!.Add((userId, added));
                    if (_log.Count > Math.Max(options.MinLogBeforeAbandoning, _ids.Count))
                    {
                        Abandon(failed: true); // changing faster than it can be built: try again later
                    }

                    break;
                case Ready when Idle():
                    Abandon(failed: false); // not paged for a while: stop keeping it
                    break;
                case Ready:
                    try
                    {
                        Volatile.Write(ref _listing, added ? _listing!.Add(userId) : _listing!.Remove(userId));
                    }
                    catch (OutOfMemoryException)
                    {
                        Abandon(failed: true); // the listing would miss this change: pages go back to the pass
                    }

                    break;
            }
        }
    }

    /// <summary>
    /// Drops the ordered listing if it has not been paged for <see cref="ListingOptions.IdleTimeout"/>, so that a
    /// segment that stops changing does not keep it; true when it was dropped.
    /// </summary>
    public bool DropIfIdle()
    {
        if (Volatile.Read(ref _mode) != Ready || !Idle())
        {
            return false;
        }

        lock (_gate)
        {
            if (_mode != Ready || !Idle())
            {
                return false;
            }

            Abandon(failed: false);
            return true;
        }
    }

    private bool Idle() => Environment.TickCount64 - Volatile.Read(ref _pagedAt) > (long)options.IdleTimeout.TotalMilliseconds;

    // Under the lock: pages go back to the pass; a later page builds the listing again.
    private void Abandon(bool failed)
    {
        _log = null;
        Volatile.Write(ref _mode, Off);
        Volatile.Write(ref _listing, null);
        if (failed)
        {
            _retryAt = Environment.TickCount64 + (long)options.RetryAfterFailure.TotalMilliseconds;
        }
    }

    // The token's place by a search, then each id of the page by its index (a search of the tree each).
    private static string[] PageOf(ImmutableSortedSet<string> listing, string after, int limit)
    {
        var at = listing.IndexOf(after);
        var start = at >= 0 ? at + 1 : ~at;
        var ids = new string[Math.Max(0, Math.Min(limit, listing.Count - start))];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = listing[start + i];
        }

        return ids;
    }

    // The smallest `limit` ids after the token in one pass, without sorting the segment: a max-heap of the page so
    // far, which most ids fail against its largest with one comparison.
    private string[] Scan(string after, int limit)
    {
        var page = new PriorityQueue<string, string>(limit + 1, DescendingOrdinal);
        foreach (var (user, _) in _ids)
        {
            if (string.CompareOrdinal(user, after) <= 0)
            {
                continue;
            }

            if (page.Count < limit)
            {
                page.Enqueue(user, user);
            }
            else if (string.CompareOrdinal(user, page.Peek()) < 0)
            {
                page.EnqueueDequeue(user, user);
            }
        }

        var ids = new string[page.Count];
        for (var i = ids.Length - 1; i >= 0; i--)
        {
            ids[i] = page.Dequeue(); // largest first
        }

        return ids;
    }
}

/// <summary>How segments' ordered member listings are kept (<see cref="MembershipIndex.Listings"/>).</summary>
public sealed record ListingOptions
{
    /// <summary>False: pages are always answered by a pass over the segment (no listing is built).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>
    /// A listing not paged for this long is dropped at the segment's next change or at the index's next sweep
    /// (<see cref="MembershipIndex.DropIdleListings"/>). Ten minutes by default.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>After a build fails or is abandoned, how long pages keep to the pass before another is started.</summary>
    public TimeSpan RetryAfterFailure { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A build is abandoned once the changes waiting for it outnumber both this and the segment's members (the segment
    /// changes faster than it can be built).
    /// </summary>
    public int MinLogBeforeAbandoning { get; init; } = 100_000;

    /// <summary>Called by a build between copying the members and replaying the changes made meanwhile (tests).</summary>
    internal Action? AfterCopy { get; init; }
}
