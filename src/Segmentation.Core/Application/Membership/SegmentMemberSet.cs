using System.Collections.Concurrent;
using System.Collections.Immutable;

namespace Segmentation.Core.Application.Membership;

/// <summary>
/// One segment's current members: a concurrent set (membership, counts), and, once the segment is listed page by
/// page, its ids kept in order so that a page is a search and a walk rather than a pass over every member.
/// </summary>
/// <remarks>
/// The ordered listing is built in the background on the first page request (about 0.8 s and 64 MB for a million
/// members); until it is ready, pages are answered by one pass over the set. While it is being built, additions and
/// removals are logged and replayed onto it before it is used, so it never misses a change; once ready, each change
/// updates it under the segment's lock. A listing not paged for <see cref="MembershipIndex.ListingIdleTimeout"/> is
/// dropped at the next change, and built again when needed.
/// </remarks>
internal sealed class SegmentMemberSet(int stripes, TimeSpan idleTimeout)
{
    private const int Off = 0;
    private const int Building = 1;
    private const int Ready = 2;

    private static readonly Comparer<string> DescendingOrdinal = Comparer<string>.Create(static (a, b) => string.CompareOrdinal(b, a));

    private readonly ConcurrentDictionary<string, byte> _ids = new(stripes, 1024, StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly long _idleMs = (long)idleTimeout.TotalMilliseconds;
    private int _mode;
    private ImmutableSortedSet<string>? _listing;
    private List<(string Id, bool Added)>? _log; // changes made while the listing is built
    private Task? _building;
    private long _pagedAt;

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

    /// <summary>Up to <paramref name="limit"/> members after <paramref name="after"/> in ordinal order.</summary>
    public IReadOnlyList<string> Page(string after, int limit)
    {
        Volatile.Write(ref _pagedAt, Environment.TickCount64);
        if (Volatile.Read(ref _mode) == Ready && Volatile.Read(ref _listing) is { } listing)
        {
            return PageOf(listing, after, limit);
        }

        _ = Prepare();
        return Scan(after, limit);
    }

    /// <summary>Starts building the ordered listing unless it is built or being built; completes when it is ready.</summary>
    public Task Prepare()
    {
        Volatile.Write(ref _pagedAt, Environment.TickCount64);
        lock (_gate)
        {
            if (_mode == Ready)
            {
                return Task.CompletedTask;
            }

            if (_mode == Off)
            {
                _log = [];
                Volatile.Write(ref _mode, Building);
                _building = Task.Run(Build);
            }

            return _building!;
        }
    }

    private void Build()
    {
        // A change either happened before the mode said Building, and the copy below sees it, or it is in the log:
        // the change writes the set, then reads the mode; the build wrote the mode, then reads the set (full fences
        // on both sides, so neither read moves before its write).
        Interlocked.MemoryBarrier();
        ImmutableSortedSet<string> built;
        try
        {
            var ids = new List<string>(_ids.Count);
            foreach (var (id, _) in _ids)
            {
                ids.Add(id);
            }

            built = ImmutableSortedSet.CreateRange(StringComparer.Ordinal, ids);
        }
        catch
        {
            lock (_gate)
            {
                _log = null;
                Volatile.Write(ref _mode, Off);
            }

            throw;
        }

        lock (_gate)
        {
            foreach (var (id, added) in _log!)
            {
                built = added ? built.Add(id) : built.Remove(id); // in order: a user's changes are serialized by its write lock
            }

            _log = null;
            Volatile.Write(ref _listing, built);
            Volatile.Write(ref _mode, Ready);
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
                    break;
                case Ready when Environment.TickCount64 - Volatile.Read(ref _pagedAt) > _idleMs:
                    Volatile.Write(ref _mode, Off); // not paged for a while: stop keeping it
                    Volatile.Write(ref _listing, null);
                    _building = null;
                    break;
                case Ready:
                    Volatile.Write(ref _listing, added ? _listing!.Add(userId) : _listing!.Remove(userId));
                    break;
            }
        }
    }

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
