using Microsoft.Extensions.Caching.Memory;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Decisions;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Application.Decisions;

/// <summary>Options of the decision cache.</summary>
public sealed record DecisionCacheOptions
{
    /// <summary>Maximum number of cached decisions (over all users and request contexts).</summary>
    public long SizeLimit { get; init; } = 100_000;

    /// <summary>Entries unused for this long are evicted.</summary>
    public TimeSpan SlidingExpiration { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Request contexts kept per user (distinct values of the context fields the catalog reads); the oldest goes first.</summary>
    public int ContextsPerUser { get; init; } = 8;

    /// <summary>
    /// Cache a decision only when its user has asked with the same context before (default true). A context
    /// seen once (a unique landing page, a one-off campaign link) then costs a remembered hash instead of a
    /// cached decision that pushes useful ones out and lives long enough to burden the garbage collector; a
    /// context that repeats is cached from its second request and served from the cache from its third.
    /// </summary>
    public bool AdmitOnRepeat { get; init; } = true;
}

/// <summary>
/// The versions a cached decision was made from: the profile's, the catalog's and the RFM model's.
/// Any change to any of them makes every cached decision of the user unusable, so a changed profile,
/// catalog or population is never served stale.
/// </summary>
/// <param name="Profile">Profile version (0 for an unknown user).</param>
/// <param name="Catalog">Catalog version.</param>
/// <param name="Population">RFM model version.</param>
public readonly record struct DecisionVersions(long Profile, long Catalog, long Population);

/// <summary>
/// Decisions cached in front of the profile store (Microsoft.Extensions.Caching.Memory, size-limited).
/// One cache entry per user id holds the versions its decisions were made from and up to
/// <see cref="DecisionCacheOptions.ContextsPerUser"/> decisions, one per distinct value of the context
/// fields the catalog reads. A lookup is one string-keyed read plus a comparison of those context values
/// with the request's: nothing is allocated or formatted to build a key. Besides the versions and the
/// context, a decision is valid only for evaluation times in [evaluated at, valid until): the instant a
/// time-based rule ("within 30 days") could flip is computed during evaluation. With
/// <see cref="DecisionCacheOptions.AdmitOnRepeat"/> the entry also remembers hashes of the user's recent
/// contexts (across profile versions), and a decision is kept only for a context remembered there.
/// </summary>
public sealed class DecisionCache : IDisposable
{
    private readonly MemoryCache _cache;
    private readonly DecisionCacheOptions _options;

    /// <summary>Creates a cache.</summary>
    public DecisionCache(DecisionCacheOptions? options = null)
    {
        _options = options ?? new DecisionCacheOptions();
        if (_options.ContextsPerUser < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "ContextsPerUser must be at least 1");
        }

        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = _options.SizeLimit });
    }

    /// <summary>Number of users with cached decisions.</summary>
    public int Count => _cache.Count;

    /// <summary>
    /// The decision cached for <paramref name="userId"/> from exactly <paramref name="versions"/>, for a request whose
    /// values of <paramref name="fields"/> equal <paramref name="context"/>'s, valid at <paramref name="nowTicks"/>,
    /// with what the cache keeps beside it (<see cref="CachedDecision"/>); otherwise null.
    /// </summary>
    public CachedDecision? Find(string userId, in DecisionVersions versions, IReadOnlyList<ContextField> fields, RequestContext context, long nowTicks)
    {
        if (!_cache.TryGetValue(userId, out var value) || value is not UserEntry entry || entry.Versions != versions)
        {
            return null;
        }

        var slots = entry.Slots;
        for (var i = 0; i < slots.Length; i++)
        {
            var slot = slots[i];
            if (SameContext(slot.Context, fields, context))
            {
                var d = slot.Decision;
                return d.EvaluatedAt.UtcTicks <= nowTicks && nowTicks < d.ValidUntilTicks ? slot : null;
            }
        }

        return null;
    }

    /// <summary>
    /// Caches <paramref name="decision"/>, made from <paramref name="versions"/> for a request with
    /// <paramref name="context"/>; with <see cref="DecisionCacheOptions.AdmitOnRepeat"/>, only when the user
    /// asked with this context before (otherwise the context is remembered).
    /// </summary>
    public void Set(string userId, in DecisionVersions versions, IReadOnlyList<ContextField> fields, RequestContext context, Decision decision)
    {
        var existing = _cache.TryGetValue(userId, out var value) ? value as UserEntry : null;
        var seen = existing?.Seen;
        if (_options.AdmitOnRepeat)
        {
            var hash = ContextHash(fields, context);
            if (seen is null)
            {
                seen = new RecentContexts();
                seen.Remember(hash);
                _cache.Set(userId, new UserEntry(versions, [], seen), new MemoryCacheEntryOptions { Size = 1, SlidingExpiration = _options.SlidingExpiration });
                return;
            }

            if (!seen.Contains(hash))
            {
                seen.Remember(hash); // in place: the entry stays as it is
                return;
            }
        }

        var values = new string[fields.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = context.Get(fields[i]);
        }

        // Keep the other contexts' decisions when they were made from the same versions; a concurrent Set
        // for the same user may win the race, which only costs a later miss.
        var kept = existing is { } old && old.Versions == versions ? old.Slots : [];
        var slots = new List<CachedDecision>(Math.Min(kept.Length + 1, _options.ContextsPerUser)) { new(values, decision) };
        foreach (var slot in kept)
        {
            if (slots.Count < _options.ContextsPerUser && !SameValues(slot.Context, values))
            {
                slots.Add(slot);
            }
        }

        var entry = new UserEntry(versions, slots.ToArray(), seen);
        var options = new MemoryCacheEntryOptions { Size = entry.Slots.Length, SlidingExpiration = _options.SlidingExpiration };
        var lastValid = entry.LastValidTicks();
        if (lastValid - decision.EvaluatedAt.UtcTicks < MaxAbsoluteExpiration.Ticks)
        {
            // Evict when no decision of the entry can be valid any more. Relative, because the evaluation
            // time may be a caller-supplied timestamp rather than the cache's own clock; Get checks validity exactly.
            // A validity further away than a year (or unbounded) is left to the sliding expiration: the cache's
            // clock plus it could leave the representable range of times.
            options.AbsoluteExpirationRelativeToNow = TimeSpan.FromTicks(Math.Max(1, lastValid - decision.EvaluatedAt.UtcTicks));
        }

        _cache.Set(userId, entry, options);
    }

    /// <summary>
    /// Removes every decision cached for one of <paramref name="userIds"/> (erasure). Decisions of an older
    /// profile version could never be served again anyway (versions are never reused); this removes them
    /// from memory too.
    /// </summary>
    public int RemoveUsers(IReadOnlyCollection<string> userIds)
    {
        var removed = 0;
        foreach (var id in userIds)
        {
            if (_cache.TryGetValue(id, out _))
            {
                _cache.Remove(id);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>Removes every entry.</summary>
    public void Clear() => _cache.Clear();

    /// <inheritdoc />
    public void Dispose() => _cache.Dispose();

    private static bool SameContext(string[] cached, IReadOnlyList<ContextField> fields, RequestContext context)
    {
        for (var i = 0; i < cached.Length; i++)
        {
            if (!string.Equals(cached[i], context.Get(fields[i]), StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static bool SameValues(string[] a, string[] b) => a.AsSpan().SequenceEqual(b);

    // Validities longer than this are not turned into an absolute expiration.
    private static readonly TimeSpan MaxAbsoluteExpiration = TimeSpan.FromDays(365);

    // A hash of the request's values of the fields the catalog reads (never 0, which marks an empty entry).
    private static long ContextHash(IReadOnlyList<ContextField> fields, RequestContext context)
    {
        var hash = new HashCode();
        for (var i = 0; i < fields.Count; i++)
        {
            hash.Add(context.Get(fields[i]), StringComparer.Ordinal);
        }

        return (long)(uint)hash.ToHashCode() + 1;
    }

    /// <summary>
    /// Hashes of a user's most recent contexts, in a ring written in place. Concurrent writers may overwrite
    /// each other's entry, which only costs a later admission; a hash collision only admits a decision early.
    /// </summary>
    private sealed class RecentContexts
    {
        private readonly long[] _hashes = new long[16];
        private int _next;

        public bool Contains(long hash)
        {
            foreach (var h in _hashes)
            {
                if (h == hash)
                {
                    return true;
                }
            }

            return false;
        }

        public void Remember(long hash) => Volatile.Write(ref _hashes[(Interlocked.Increment(ref _next) & int.MaxValue) % _hashes.Length], hash);
    }

    private sealed class UserEntry(DecisionVersions versions, CachedDecision[] slots, RecentContexts? seen)
    {
        public DecisionVersions Versions { get; } = versions;

        public CachedDecision[] Slots { get; } = slots;

        public RecentContexts? Seen { get; } = seen;

        public long LastValidTicks()
        {
            var last = long.MinValue;
            foreach (var slot in Slots)
            {
                last = Math.Max(last, slot.Decision.ValidUntilTicks);
            }

            return last;
        }
    }
}

/// <summary>A cached decision, the request context values it was made for, and the key its servings are remembered under.</summary>
public sealed class CachedDecision
{
    internal CachedDecision(string[] context, Decision decision)
    {
        Context = context;
        Decision = decision;
    }

    /// <summary>The decision.</summary>
    public Decision Decision { get; }

    /// <summary>
    /// The ledger's key for this decision served from the cache, kept from its first serving so that later ones
    /// skip the lookup (<see cref="DecisionMeasurement.KeyFor"/>); null until then. Its channel is the first
    /// serving's: a serving on another channel (possible when the catalog does not read the channel) looks its own up.
    /// </summary>
    public DecisionKey? ServedKey { get; internal set; }

    internal string[] Context { get; }
}
