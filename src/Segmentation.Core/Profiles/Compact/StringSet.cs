using System.Collections;

namespace Segmentation.Core.Profiles.Compact;

/// <summary>
/// An immutable set of strings held as one sorted array (ordinal): the compact form for the small sets a
/// profile keeps (session ids, campaign ids). Adding copies the array, which for a few dozen entries costs
/// less than the nodes of a hash set, and a profile holds one array instead of a node per entry.
/// </summary>
public sealed class StringSet : IReadOnlySet<string>
{
    /// <summary>The empty set.</summary>
    public static readonly StringSet Empty = new([]);

    private readonly string[] _items;

    private StringSet(string[] items) => _items = items;

    /// <inheritdoc />
    public int Count => _items.Length;

    /// <summary>A set of <paramref name="items"/> (duplicates are dropped).</summary>
    public static StringSet Of(IEnumerable<string> items)
    {
        var sorted = items.ToArray();
        if (sorted.Length == 0)
        {
            return Empty;
        }

        CopyOnWrite.SortOrdinal(sorted);
        var distinct = 1;
        for (var i = 1; i < sorted.Length; i++)
        {
            if (!string.Equals(sorted[i], sorted[distinct - 1], StringComparison.Ordinal))
            {
                sorted[distinct++] = sorted[i];
            }
        }

        return new StringSet(distinct == sorted.Length ? sorted : sorted[..distinct]);
    }

    /// <inheritdoc />
    public bool Contains(string item) => Array.BinarySearch(_items, item, StringComparer.Ordinal) >= 0;

    /// <summary>This set with <paramref name="item"/>; this instance when it is already in.</summary>
    public StringSet Add(string item)
    {
        var index = Array.BinarySearch(_items, item, StringComparer.Ordinal);
        if (index >= 0)
        {
            return this;
        }

        return new StringSet(CopyOnWrite.Insert(_items, ~index, item));
    }

    /// <inheritdoc />
    public IEnumerator<string> GetEnumerator() => ((IEnumerable<string>)_items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    /// <inheritdoc />
    public bool SetEquals(IEnumerable<string> other) => AsHashSet().SetEquals(other);

    /// <inheritdoc />
    public bool IsProperSubsetOf(IEnumerable<string> other) => AsHashSet().IsProperSubsetOf(other);

    /// <inheritdoc />
    public bool IsProperSupersetOf(IEnumerable<string> other) => AsHashSet().IsProperSupersetOf(other);

    /// <inheritdoc />
    public bool IsSubsetOf(IEnumerable<string> other) => AsHashSet().IsSubsetOf(other);

    /// <inheritdoc />
    public bool IsSupersetOf(IEnumerable<string> other) => AsHashSet().IsSupersetOf(other);

    /// <inheritdoc />
    public bool Overlaps(IEnumerable<string> other) => AsHashSet().Overlaps(other);

    private HashSet<string> AsHashSet() => new(_items, StringComparer.Ordinal);
}
