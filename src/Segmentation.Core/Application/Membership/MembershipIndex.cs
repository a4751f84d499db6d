using System.Collections.Concurrent;
using Segmentation.Core.Catalog;
using Segmentation.Core.Profiles.Compact;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Membership;

/// <summary>
/// The live reverse index: for each segment its current members, for each user the
/// segments whose rules they match (with no request context), and a feed of enter/leave changes.
/// Updated under each user's write lock, so a user's entries are never torn.
/// </summary>
public sealed class MembershipIndex(ChangeFeed? feed = null)
{
    // Many lock stripes: every write touches these, from every ingesting thread.
    private const int Stripes = 64;

    private readonly ConcurrentDictionary<string, SegmentMemberSet> _members = new(StringComparer.Ordinal);
    private ConcurrentDictionary<string, UserState> _users = new(Stripes, 1024, StringComparer.Ordinal); // replaced only by Reserve, while empty
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastNonEmpty = new(StringComparer.Ordinal);

    // For each user whose personalization consent was withdrawn: the segments announced before it (what a consumer may
    // still hold), until it is given back.
    private readonly ConcurrentDictionary<string, string[]> _announcedBeforeHidden = new(StringComparer.Ordinal);

    /// <summary>
    /// Added to the cause of an entry a consent grant announces for a segment that was announced before the consent was
    /// withdrawn (the user did not enter it now; a consumer may hold it already): <c>consent:personalization:granted:again</c>.
    /// </summary>
    public const string AgainSuffix = ":again";

    private volatile bool _rebuilding;
    private int _rebuildTotal;
    private int _rebuildDone;

    /// <summary>
    /// False while the index is being rebuilt after a restart (<see cref="BeginRebuild"/>): its counts, member
    /// lists and change feed would be partial, so the calls that read them are refused until it is complete,
    /// while decisions (which never read the index) are served.
    /// </summary>
    public bool IsComplete => !_rebuilding;

    /// <summary>The rebuild's progress: profiles evaluated and profiles to evaluate (0 and 0 when none ran).</summary>
    public (int Done, int Total) RebuildProgress => (Volatile.Read(ref _rebuildDone), Volatile.Read(ref _rebuildTotal));

    /// <summary>How long the last rebuild took, once complete.</summary>
    public TimeSpan? LastRebuildTime { get; private set; }

    /// <summary>
    /// True while the change log is replayed at start-up: the index is updated, but nothing is appended to the
    /// change stream (those changes were appended when they first happened).
    /// </summary>
    public bool Replaying { get; set; }

    /// <summary>Marks the index incomplete: a rebuild of <paramref name="users"/> profiles starts.</summary>
    public void BeginRebuild(int users)
    {
        Volatile.Write(ref _rebuildTotal, users);
        Volatile.Write(ref _rebuildDone, 0);
        _rebuilding = true;
    }

    /// <summary>Counts one profile of the rebuild as evaluated.</summary>
    public void RebuildStep() => Interlocked.Increment(ref _rebuildDone);

    /// <summary>Marks the index complete again, the rebuild having taken <paramref name="took"/>.</summary>
    public void EndRebuild(TimeSpan took)
    {
        LastRebuildTime = took;
        _rebuilding = false;
    }

    /// <summary>Throws <see cref="NotReadyException"/> while the index is being rebuilt.</summary>
    public void ThrowIfIncomplete()
    {
        if (_rebuilding)
        {
            var (done, total) = RebuildProgress;
            throw new NotReadyException($"segment memberships are being rebuilt after a restart ({done:N0} of {total:N0} profiles evaluated); retry shortly", TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>
    /// Sizes the index for about <paramref name="users"/> users before it is first filled (start-up, after a
    /// restore): growing a concurrent dictionary to a million entries rebuilds it about ten times, each time
    /// under all its locks, which made the membership rebuild after a 1M-profile restore a quarter slower.
    /// Does nothing once the index holds anyone; call it before the index is used concurrently.
    /// </summary>
    public void Reserve(int users)
    {
        if (users > 1024 && _users.IsEmpty)
        {
            Volatile.Write(ref _users, new ConcurrentDictionary<string, UserState>(Stripes, users + (users / 8), StringComparer.Ordinal));
        }
    }

    /// <summary>The change stream every enter and leave is appended to.</summary>
    public ChangeFeed Feed { get; } = feed ?? new ChangeFeed(new ChangeFeedOptions { Capacity = 100_000 });

    /// <summary>
    /// Every user in at least one segment, with those segments (a moment's view while writes go on); with
    /// <paramref name="announcedOnly"/>, without the users whose memberships were never announced (no personalization
    /// consent): what watchers have been told.
    /// </summary>
    public IEnumerable<(string UserId, string[] Segments)> Snapshot(bool announcedOnly = false)
    {
        foreach (var (user, state) in _users)
        {
            if (state.Segments.Length > 0 && !(announcedOnly && state.Hidden))
            {
                yield return (user, state.Segments);
            }
        }
    }

    /// <summary>Number of users with a recorded membership.</summary>
    public int Users => _users.Count;

    /// <summary>Current member count of a segment.</summary>
    public int Count(string segmentId) => _members.TryGetValue(segmentId, out var m) ? m.Count : 0;

    /// <summary>When the segment last had members (null when never seen with members).</summary>
    public DateTimeOffset? LastNonEmpty(string segmentId) => _lastNonEmpty.TryGetValue(segmentId, out var at) ? at : null;

    /// <summary>The catalog version a user's memberships were evaluated with (0 when unknown).</summary>
    public long CatalogVersionOf(string userId) => _users.TryGetValue(userId, out var s) ? s.CatalogVersion : 0;

    /// <summary>
    /// Whether a user's recorded memberships may be out of date: evaluated with another catalog version than
    /// <paramref name="catalogVersion"/> (a publish the refresh has not reached yet), or past the time their result
    /// holds until (the time sweep evaluates them again shortly). False for a user not recorded.
    /// </summary>
    public bool IsStale(string userId, long catalogVersion, long nowTicks) =>
        _users.TryGetValue(userId, out var s) && (s.CatalogVersion != catalogVersion || s.ValidUntilTicks <= nowTicks);

    /// <summary>The segments a user is in (empty when unknown).</summary>
    public IReadOnlyList<string> SegmentsOf(string userId) => _users.TryGetValue(userId, out var s) ? s.Segments : [];

    /// <summary>
    /// One page of a segment's members in id order, after <paramref name="after"/> (exclusive; empty for the first page).
    /// The first page of a segment starts building its ordered listing in the background and is answered by one pass
    /// over the members, as are pages until the listing is ready; then a page is a search and a walk of the page.
    /// </summary>
    public IReadOnlyList<string> Members(string segmentId, string after, int limit) =>
        _members.TryGetValue(segmentId, out var members) ? members.Page(after, limit) : [];

    /// <summary>
    /// Starts building the ordered listing of a segment's members unless it is built or being built (what the first
    /// page of a segment does); the task completes when pages come from it. Completed at once for a segment without
    /// members.
    /// </summary>
    public Task PrepareListing(string segmentId) =>
        _members.TryGetValue(segmentId, out var members) ? members.Prepare() : Task.CompletedTask;

    /// <summary>True when pages of the segment come from its ordered listing (not a pass over its members).</summary>
    public bool IsListed(string segmentId) => _members.TryGetValue(segmentId, out var members) && members.IsListed;

    /// <summary>
    /// Drops the ordered member listings not paged for their idle time (<see cref="Listings"/>) even if their segments
    /// no longer change; the host calls it every few seconds. Returns how many were dropped.
    /// </summary>
    public int DropIdleListings()
    {
        var dropped = 0;
        foreach (var (_, members) in _members)
        {
            dropped += members.DropIfIdle() ? 1 : 0;
        }

        return dropped;
    }

    /// <summary>
    /// How segments' ordered member listings are kept: a listing not paged for its idle time (ten minutes by default,
    /// <c>Segmentation:MemberListingIdleMinutes</c>) is dropped at the segment's next change or the next sweep
    /// (<see cref="DropIdleListings"/>; a million-member listing holds about 64 MB), and the next page builds it again.
    /// </summary>
    public ListingOptions Listings { get; init; } = new();

    /// <summary>
    /// <see cref="Set(string, IReadOnlyList{string}, long, long, DateTimeOffset, string, long, bool)"/> from an
    /// evaluation of <paramref name="catalog"/> (<paramref name="matched"/>: one flag per segment, by rank): when the
    /// user's segments are unchanged (most writes), neither the list of ids nor the cause (<paramref name="cause"/>
    /// followed by <paramref name="causeDetail"/>) is built.
    /// </summary>
    public void Set(string userId, ReadOnlySpan<bool> matched, long validUntilTicks, CatalogSnapshot catalog, DateTimeOffset at, string cause, string? causeDetail, long populationVersion = 0, bool publish = true)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (_users.TryGetValue(userId, out var state) && SameSegments(state.Segments, matched, catalog) && state.Hidden == !publish)
        {
            var next = new UserState(state.Segments, catalog.Version, validUntilTicks, populationVersion, state.Hidden);
            if (next != state)
            {
                _users[userId] = next;
            }

            return; // the common case, without building the list of ids or the cause
        }

        Set(userId, Core.Decisions.Membership.IdsOf(matched, catalog), catalog.Version, validUntilTicks, at, cause + causeDetail, populationVersion, publish);
    }

    /// <summary>
    /// Records a user's segments, emits a change for every segment entered or left, and remembers until
    /// when the result holds so the time sweep can re-evaluate it. Call under the user's write lock.
    /// With <paramref name="publish"/> false the index is updated but nothing is emitted on the change
    /// feed (users without personalization consent: their changes never reach watchers).
    /// </summary>
    public void Set(string userId, IReadOnlyList<string> segments, long catalogVersion, long validUntilTicks, DateTimeOffset at, string cause, long populationVersion = 0, bool publish = true)
    {
        var known = _users.TryGetValue(userId, out var state);
        var previous = known ? state.Segments : [];
        var hidden = !publish; // memberships of a user without personalization consent: never announced
        string[]? announcedBefore = null;
        if (known && !state.Hidden && hidden)
        {
            _announcedBeforeHidden[userId] = state.Segments; // consent withdrawn: what was announced until now
        }
        else if (known && state.Hidden && !hidden)
        {
            _announcedBeforeHidden.TryRemove(userId, out announcedBefore); // given back
        }

        publish &= !Replaying && (known || !_rebuilding); // restored members are not new entries: during the rebuild only users already evaluated publish

        // Memberships held while hidden were never announced: once they may be, every segment is entered (watchers knew
        // none of them), not the difference from what they never saw.
        var announced = known && state.Hidden && !hidden ? [] : previous;
        if (SameSegments(previous, segments) && (!publish || (SameSegments(announced, segments) && !LeftWhileHidden(announcedBefore, segments))))
        {
            _users[userId] = new UserState(previous, catalogVersion, validUntilTicks, populationVersion, hidden);
            return; // the common case: a write that moves the user in or out of nothing
        }

        Interlocked.Increment(ref _moving); // from here until its entries are appended, the index is ahead of the stream
        try
        {
            Move(userId, previous, segments, announced, announcedBefore, new UserState(SegmentSets.Share(segments), catalogVersion, validUntilTicks, populationVersion, hidden), at, cause, publish);
        }
        finally
        {
            Interlocked.Decrement(ref _moving);
        }
    }

    // How many users' moves are between their new state in the index and their entries in the stream.
    private int _moving;

    /// <summary>
    /// True while some user's segments are set in the index and the entries that say so are not yet appended to the
    /// stream: a checkpoint of the index taken then would account for changes the stream does not hold yet.
    /// </summary>
    public bool Moving => Volatile.Read(ref _moving) != 0;

    // A user's move: the new state, the member sets, the counts, and the stream's entries.
    private void Move(string userId, string[] previous, IReadOnlyList<string> segments, string[] announced, string[]? announcedBefore, UserState next, DateTimeOffset at, string cause, bool publish)
    {
        var catalogVersion = next.CatalogVersion;
        _users[userId] = next;
        if (!SameSegments(previous, segments))
        {
            Moved?.Invoke(previous, segments, at);
        }

        foreach (var id in segments)
        {
            if (!previous.Contains(id))
            {
                _members.GetOrAdd(id, static (_, listings) => new SegmentMemberSet(Stripes, listings), Listings).Add(userId);
            }

            if (publish && !announced.Contains(id))
            {
                var again = announcedBefore is not null && announcedBefore.Contains(id);
                Feed.Append(userId, id, ChangeKind.Entered, at, catalogVersion, again ? cause + AgainSuffix : cause, again: again);
            }

            // Minute resolution is plenty for "no members for 30 days", and avoids every write contending
            // on the same few keys.
            if (!_lastNonEmpty.TryGetValue(id, out var seen) || at - seen > TimeSpan.FromMinutes(1))
            {
                _lastNonEmpty[id] = at;
            }
        }

        foreach (var id in previous)
        {
            if (!segments.Contains(id))
            {
                if (_members.TryGetValue(id, out var m))
                {
                    m.Remove(userId);
                }

                _lastNonEmpty[id] = at; // it had members until now
                if (publish && announced.Contains(id))
                {
                    Feed.Append(userId, id, ChangeKind.Left, at, catalogVersion, cause);
                }
            }
        }

        // Given back: a segment announced before the withdrawal and left meanwhile is announced as left (watchers kept
        // it through the withdrawal, which is silent).
        if (publish)
        {
            foreach (var id in announcedBefore ?? [])
            {
                if (!segments.Contains(id))
                {
                    Feed.Append(userId, id, ChangeKind.Left, at, catalogVersion, cause);
                }
            }
        }
    }

    private static bool LeftWhileHidden(string[]? announcedBefore, IReadOnlyList<string> segments)
    {
        foreach (var id in announcedBefore ?? [])
        {
            if (!segments.Contains(id))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Called under the user's write lock whenever a user's segments change, with the segments before and after
    /// (measurement counts churn from it). Must be quick and must not throw.
    /// </summary>
    public Action<IReadOnlyList<string>, IReadOnlyList<string>, DateTimeOffset>? Moved { get; set; }

    /// <summary>Removes a user from every segment (erasure, identity merge), emitting leave changes.</summary>
    public void Remove(string userId, DateTimeOffset at, long catalogVersion, string cause) =>
        Set(userId, [], catalogVersion, long.MaxValue, at, cause);

    /// <summary>Drops a user without emitting changes (the user no longer exists: erasure), and blanks them in the change stream.</summary>
    public void Forget(string userId)
    {
        Feed.Redact(userId); // the stream no longer names the user either
        Drop(userId);
    }

    /// <summary>
    /// Takes an anonymous id merged into a user out of every segment and then out of the index: watchers are told it left
    /// what they were told it is in. While its personalization consent is withdrawn that is what was announced before the
    /// withdrawal (which is silent: watchers still hold those segments), however it moved since. Call under the id's lock.
    /// </summary>
    public void Retire(string userId, long catalogVersion, DateTimeOffset at, string cause, bool publish)
    {
        Set(userId, [], catalogVersion, long.MaxValue, at, cause, publish: publish);
        if (_announcedBeforeHidden.TryRemove(userId, out var announcedBefore) && !Replaying)
        {
            Interlocked.Increment(ref _moving);
            try
            {
                foreach (var id in announcedBefore)
                {
                    Feed.Append(userId, id, ChangeKind.Left, at, catalogVersion, cause);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _moving);
            }
        }

        Drop(userId);
    }

    /// <summary>
    /// Drops an id from the index without emitting changes or touching the change stream: an anonymous id merged
    /// into a user, whose entries (its "left" ones included) stay as they were sent, naming it.
    /// </summary>
    public void Drop(string userId)
    {
        _announcedBeforeHidden.TryRemove(userId, out _);
        if (_users.TryRemove(userId, out var state))
        {
            foreach (var id in state.Segments)
            {
                if (_members.TryGetValue(id, out var m))
                {
                    m.Remove(userId);
                }
            }
        }
    }

    /// <summary>
    /// Users whose memberships were evaluated with another catalog or population (RFM) version, or may
    /// have changed with time by <paramref name="nowTicks"/>.
    /// </summary>
    public IEnumerable<string> StaleUsers(long catalogVersion, long populationVersion, long nowTicks)
    {
        foreach (var (user, state) in _users)
        {
            if (state.CatalogVersion != catalogVersion || state.PopulationVersion != populationVersion || state.ValidUntilTicks <= nowTicks)
            {
                yield return user;
            }
        }
    }

    /// <summary>The users whose last evaluation holds no longer at <paramref name="nowTicks"/> (time moved them on).</summary>
    public IEnumerable<string> ExpiredUsers(long nowTicks)
    {
        foreach (var (user, state) in _users)
        {
            if (state.ValidUntilTicks <= nowTicks)
            {
                yield return user;
            }
        }
    }

    /// <summary>Most segment ids a subscription may filter on.</summary>
    public const int MaxFilterIds = 1000;

    /// <summary>Longest segment id in a subscription filter.</summary>
    public const int MaxFilterIdLength = 128;

    /// <summary>
    /// The filter of a subscription to <paramref name="segmentIds"/> (null, every segment, when empty);
    /// throws <see cref="ValidationException"/> for more than <see cref="MaxFilterIds"/> ids, or for an
    /// empty or over-long one, naming its index.
    /// </summary>
    public static IReadOnlySet<string>? Filter(IReadOnlyList<string> segmentIds)
    {
        var v = new ViolationList();
        if (segmentIds.Count > MaxFilterIds)
        {
            v.Add("segment_ids", $"at most {MaxFilterIds} segment ids (got {segmentIds.Count})");
        }
        else
        {
            for (var i = 0; i < segmentIds.Count; i++)
            {
                v.Required($"segment_ids[{i}]", segmentIds[i], MaxFilterIdLength);
            }
        }

        v.ThrowIfAny();
        return segmentIds.Count == 0 ? null : segmentIds.ToHashSet(StringComparer.Ordinal);
    }

    // True when previous holds exactly the ids of the matched segments, in the catalog's order.
    private static bool SameSegments(string[] previous, ReadOnlySpan<bool> matched, CatalogSnapshot catalog)
    {
        var k = 0;
        for (var i = 0; i < matched.Length; i++)
        {
            if (matched[i] && (k >= previous.Length || !string.Equals(previous[k++], catalog.Segments[i].Id, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return k == previous.Length;
    }

    private static bool SameSegments(string[] previous, IReadOnlyList<string> segments)
    {
        if (previous.Length != segments.Count)
        {
            return false;
        }

        for (var i = 0; i < previous.Length; i++)
        {
            if (!string.Equals(previous[i], segments[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    // Users fall into a limited number of segment combinations: one shared array each.
    private static readonly StringArrayPool SegmentSets = new(capacity: 16_384);

    // A value in the dictionary's node (no object per user); the segment array is shared by every user in the same segments.
    // Hidden: the segments were evaluated for a user without personalization consent, and not announced.
    private readonly record struct UserState(string[] Segments, long CatalogVersion, long ValidUntilTicks, long PopulationVersion, bool Hidden = false);
}
