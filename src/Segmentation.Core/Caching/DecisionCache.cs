using Microsoft.Extensions.Caching.Memory;
using Segmentation.Core.Decisions;

namespace Segmentation.Core.Caching;

/// <summary>Options of the decision cache.</summary>
public sealed record DecisionCacheOptions
{
    /// <summary>Maximum number of cached decisions.</summary>
    public long SizeLimit { get; init; } = 100_000;

    /// <summary>Entries unused for this long are evicted.</summary>
    public TimeSpan SlidingExpiration { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// The key of a cached decision: the user, the profile's version, the catalog's version, the RFM
/// model's version and the values of only those context fields the catalog reads. Any change to any
/// of them is a different key, so a changed profile or catalog is never served stale.
/// </summary>
public readonly record struct DecisionKey(string UserId, long ProfileVersion, long CatalogVersion, long PopulationVersion, string ContextKey);

/// <summary>
/// Decisions cached in front of the profile store (Microsoft.Extensions.Caching.Memory, size-limited).
/// Besides the key, an entry is valid only for evaluation times in [evaluated at, valid until): the
/// instant a time-based rule ("within 30 days") could flip is computed during evaluation.
/// </summary>
public sealed class DecisionCache : IDisposable
{
    private readonly MemoryCache _cache;
    private readonly DecisionCacheOptions _options;

    /// <summary>Creates a cache.</summary>
    public DecisionCache(DecisionCacheOptions? options = null)
    {
        _options = options ?? new DecisionCacheOptions();
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = _options.SizeLimit });
    }

    /// <summary>Number of entries.</summary>
    public int Count => _cache.Count;

    /// <summary>Returns a cached decision valid at <paramref name="nowTicks"/>, or null.</summary>
    public Decision? Get(in DecisionKey key, long nowTicks) =>
        _cache.TryGetValue(key, out Decision? d) && d is not null && d.EvaluatedAt.UtcTicks <= nowTicks && nowTicks < d.ValidUntilTicks ? d : null;

    /// <summary>Caches a decision.</summary>
    public void Set(in DecisionKey key, Decision decision)
    {
        var options = new MemoryCacheEntryOptions { Size = 1, SlidingExpiration = _options.SlidingExpiration };
        if (decision.ValidUntilTicks != long.MaxValue)
        {
            // Evict when the entry can no longer be valid. Relative, because the evaluation time may be
            // a caller-supplied timestamp rather than the cache's own clock; Get checks validity exactly.
            options.AbsoluteExpirationRelativeToNow = TimeSpan.FromTicks(Math.Max(1, decision.ValidUntilTicks - decision.EvaluatedAt.UtcTicks));
        }

        _cache.Set(key, decision, options);
    }

    /// <summary>
    /// Removes every entry decided for one of <paramref name="userIds"/> (erasure). Entries of an older
    /// profile version could never be served again anyway (versions are never reused); this removes them
    /// from memory too. Costs one pass over the keys.
    /// </summary>
    public int RemoveUsers(IReadOnlyCollection<string> userIds)
    {
        var ids = userIds as IReadOnlySet<string> ?? userIds.ToHashSet(StringComparer.Ordinal);
        var removed = 0;
        foreach (var key in _cache.Keys.ToList())
        {
            if (key is DecisionKey k && ids.Contains(k.UserId))
            {
                _cache.Remove(key);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>Removes every entry.</summary>
    public void Clear() => _cache.Clear();

    /// <inheritdoc />
    public void Dispose() => _cache.Dispose();
}
