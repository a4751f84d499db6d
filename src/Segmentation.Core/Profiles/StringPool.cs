using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles;

/// <summary>
/// One shared instance per distinct value of the low-cardinality strings of stored events (event types,
/// sources, page types, categories, countries, campaign and product ids), so a million profiles do not
/// each hold their own copy of "product_view" or "GB" (every deserialized event brings new instances).
/// Never used for ids of users, sessions, events or orders: those stay with their profile and are erased
/// with it. Bounded: past <see cref="Capacity"/> distinct values (or for values longer than 64
/// characters) strings are kept as they come.
/// </summary>
internal static class StringPool
{
    /// <summary>Most distinct values pooled.</summary>
    public const int Capacity = 1 << 20;

    private static readonly ConcurrentDictionary<string, string> Pool = new(StringComparer.Ordinal);
    private static int s_count;

    /// <summary>The pooled instance equal to <paramref name="value"/>, or <paramref name="value"/> itself.</summary>
    public static string Share(string value)
    {
        if (value.Length is 0 or > 64)
        {
            return value;
        }

        if (Pool.TryGetValue(value, out var shared))
        {
            return shared;
        }

        if (Volatile.Read(ref s_count) >= Capacity)
        {
            return value;
        }

        shared = Pool.GetOrAdd(value, value);
        if (ReferenceEquals(shared, value))
        {
            Interlocked.Increment(ref s_count);
        }

        return shared;
    }

    /// <summary>As <see cref="Share(string)"/>, null staying null.</summary>
    public static string? ShareOrNull(string? value) => value is null ? null : Share(value);
}
