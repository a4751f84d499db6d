using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles;

/// <summary>
/// One shared array per distinct list of strings, for lists that many profiles repeat (the set of event
/// types a profile has seen, the segments a user is in): a million users then share a few hundred arrays
/// instead of holding one each. Elements are <see cref="StringPool"/> instances. Bounded: past
/// <c>capacity</c> distinct lists, new lists are returned unshared.
/// </summary>
internal sealed class StringArrayPool(int capacity)
{
    private readonly ConcurrentDictionary<string, string[]> _arrays = new(StringComparer.Ordinal);

    /// <summary>The shared array equal to <paramref name="items"/> (same strings, same order).</summary>
    public string[] Share(IReadOnlyList<string> items)
    {
        if (items.Count == 0)
        {
            return [];
        }

        var key = string.Join('\0', items);
        if (_arrays.TryGetValue(key, out var shared))
        {
            return shared;
        }

        var array = new string[items.Count];
        for (var i = 0; i < array.Length; i++)
        {
            array[i] = StringPool.Share(items[i]);
        }

        return _arrays.Count < capacity ? _arrays.GetOrAdd(key, array) : array;
    }
}
