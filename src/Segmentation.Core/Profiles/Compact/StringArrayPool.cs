using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles.Compact;

/// <summary>
/// One shared array per distinct list of strings, for lists that many profiles repeat (the set of event
/// types a profile has seen, the segments a user is in): a million users then share a few hundred arrays
/// instead of holding one each. Elements are <see cref="StringPool"/> instances. Bounded: past
/// <c>capacity</c> distinct lists, new lists are returned unshared. Finding a list already shared
/// allocates nothing (the lookup key is built on the stack when short).
/// </summary>
internal sealed class StringArrayPool(int capacity)
{
    private const char Separator = '\0';

    private readonly ConcurrentDictionary<string, string[]> _arrays = new(StringComparer.Ordinal);

    /// <summary>The shared array equal to <paramref name="items"/> (same strings, same order).</summary>
    public string[] Share(IReadOnlyList<string> items) => items switch
    {
        string[] array => Share(array.AsSpan()),
        List<string> list => Share(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list)),
        _ => Share([.. items]),
    };

    /// <summary>The shared array equal to <paramref name="items"/> (same strings, same order).</summary>
    public string[] Share(ReadOnlySpan<string> items)
    {
        if (items.Length == 0)
        {
            return [];
        }

        var length = items.Length - 1;
        foreach (var item in items)
        {
            length += item.Length;
        }

        var buffer = length <= 512 ? stackalloc char[length] : new char[length];
        var at = 0;
        for (var i = 0; i < items.Length; i++)
        {
            if (i > 0)
            {
                buffer[at++] = Separator;
            }

            items[i].CopyTo(buffer[at..]);
            at += items[i].Length;
        }

        if (_arrays.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(buffer, out var shared))
        {
            return shared;
        }

        var result = new string[items.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = StringPool.Share(items[i]);
        }

        return _arrays.Count < capacity ? _arrays.GetOrAdd(new string(buffer), result) : result;
    }
}
