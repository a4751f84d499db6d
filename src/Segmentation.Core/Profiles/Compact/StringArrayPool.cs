using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles.Compact;

/// <summary>
/// One shared array per distinct list of strings, for lists that many profiles repeat (the set of event
/// types a profile has seen, the segments a user is in): a million users then share a few hundred arrays
/// instead of holding one each. Elements are <see cref="StringPool"/> instances. Bounded in lists — past
/// <c>capacity</c> distinct lists, new lists are returned unshared — and, for lists a caller writes (a profile's
/// custom event types, declared list traits), in characters: a list longer than <c>maxSharedLength</c> is not shared,
/// nor one past <c>maxCharacters</c> kept in all (one profile's thousands of custom event types, each new one a new set,
/// would otherwise keep every set it passed through). Finding a list already shared allocates nothing (the lookup key is
/// built on the stack when short).
/// </summary>
internal sealed class StringArrayPool(int capacity, int maxSharedLength = int.MaxValue, long maxCharacters = long.MaxValue)
{
    /// <summary>Longest list a pool of lists callers write shares, in characters with one separator between items.</summary>
    public const int MaxSharedLength = 2048;

    /// <summary>Characters a pool of lists callers write keeps per list of its capacity, on average.</summary>
    public const int CharactersPerList = 256;

    /// <summary>A pool of <paramref name="capacity"/> lists that callers write, bounded in characters as well.</summary>
    public static StringArrayPool ForWrittenLists(int capacity) => new(capacity, MaxSharedLength, (long)capacity * CharactersPerList);

    private const char Separator = '\0';

    private readonly ConcurrentDictionary<string, string[]> _arrays = new(StringComparer.Ordinal);
    private long _characters;

    /// <summary>Characters of the lists kept.</summary>
    public long Characters => Interlocked.Read(ref _characters);

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

        if (length > maxSharedLength)
        {
            return Unshared(items);
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

        // The key joins the items with a character an item may hold too: a list found under it is the one asked for
        // only when its items are the same ("a\0b" and "a", "b" have one key).
        if (_arrays.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(buffer, out var shared))
        {
            return Same(shared, items) ? shared : Unshared(items);
        }

        var result = Unshared(items);
        if (_arrays.Count >= capacity)
        {
            return result;
        }

        if (Interlocked.Add(ref _characters, length) > maxCharacters)
        {
            Interlocked.Add(ref _characters, -length);
            return result;
        }

        var kept = _arrays.GetOrAdd(new string(buffer), result);
        if (!ReferenceEquals(kept, result))
        {
            Interlocked.Add(ref _characters, -length); // another thread kept its list under the key first
        }

        return Same(kept, items) ? kept : result;
    }

    private static string[] Unshared(ReadOnlySpan<string> items)
    {
        var result = new string[items.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = StringPool.Share(items[i]);
        }

        return result;
    }

    // Whether a list found under the items' key holds them: the joined texts are equal, so the same items when the
    // lengths are.
    private static bool Same(string[] shared, ReadOnlySpan<string> items)
    {
        if (shared.Length != items.Length)
        {
            return false;
        }

        for (var i = 0; i < shared.Length; i++)
        {
            if (shared[i].Length != items[i].Length)
            {
                return false;
            }
        }

        return true;
    }
}
