using System.Collections;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's attributes by name: one array of <see cref="ProfileAttribute"/> sorted by name (ordinal).
/// A profile has a few to a few dozen attributes, so a binary search over one array is as fast as a hash
/// lookup and costs one array instead of a tree of nodes; a value wrapping that array, so no object of its
/// own. Immutable; <see cref="SetItem"/> copies.
/// </summary>
public readonly struct AttributeDictionary : IReadOnlyDictionary<string, ProfileAttribute>
{
    /// <summary>No attributes.</summary>
    public static readonly AttributeDictionary Empty = new([]);

    private readonly ProfileAttribute[]? _array; // null in default(AttributeDictionary): empty

    private AttributeDictionary(ProfileAttribute[] items) => _array = items;

    private ProfileAttribute[] Items => _array ?? [];

    /// <inheritdoc />
    public int Count => Items.Length;

    /// <summary>True when <paramref name="other"/> is this very dictionary (the same items, not a copy).</summary>
    internal bool SameAs(AttributeDictionary other) => ReferenceEquals(Items, other.Items);

    /// <inheritdoc />
    public IEnumerable<string> Keys => Items.Select(a => a.Name);

    /// <inheritdoc />
    public IEnumerable<ProfileAttribute> Values => Items;

    /// <inheritdoc />
    public ProfileAttribute this[string key] => TryGetValue(key, out var a) ? a : throw new KeyNotFoundException($"no attribute '{key}'");

    /// <summary>The attributes <paramref name="attributes"/>; for a repeated name the last one wins.</summary>
    public static AttributeDictionary Of(IEnumerable<ProfileAttribute> attributes)
    {
        var items = attributes.ToArray();
        if (items.Length == 0)
        {
            return Empty;
        }

        // Sort by name, ties by position (stable), then keep the last of each name.
        var order = new int[items.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        Array.Sort(order, (a, b) => string.CompareOrdinal(items[a].Name, items[b].Name) is var c && c != 0 ? c : a.CompareTo(b));
        var kept = new List<ProfileAttribute>(items.Length);
        for (var i = 0; i < order.Length; i++)
        {
            if (i + 1 < order.Length && string.Equals(items[order[i]].Name, items[order[i + 1]].Name, StringComparison.Ordinal))
            {
                continue; // a later one of the same name follows
            }

            kept.Add(items[order[i]]);
        }

        return new AttributeDictionary([.. kept]);
    }

    /// <summary>
    /// The attributes <paramref name="attributes"/> as written by a snapshot (sorted by name, each name once;
    /// the array is kept); any other order is sorted as by <see cref="Of"/>.
    /// </summary>
    internal static AttributeDictionary OfSorted(ProfileAttribute[] attributes)
    {
        for (var i = 1; i < attributes.Length; i++)
        {
            if (string.CompareOrdinal(attributes[i - 1].Name, attributes[i].Name) >= 0)
            {
                return Of(attributes);
            }
        }

        return attributes.Length == 0 ? Empty : new AttributeDictionary(attributes);
    }

    /// <inheritdoc />
    public bool TryGetValue(string key, out ProfileAttribute value)
    {
        var i = IndexOf(key);
        value = i >= 0 ? Items[i] : default;
        return i >= 0;
    }

    /// <inheritdoc />
    public bool ContainsKey(string key) => IndexOf(key) >= 0;

    /// <summary>These attributes with <paramref name="attribute"/> stored under <paramref name="name"/> (replacing any).</summary>
    public AttributeDictionary SetItem(string name, ProfileAttribute attribute)
    {
        if (!string.Equals(name, attribute.Name, StringComparison.Ordinal))
        {
            throw new ArgumentException($"attribute '{attribute.Name}' stored under '{name}'", nameof(name));
        }

        var i = IndexOf(name);
        if (i >= 0)
        {
            var replaced = (ProfileAttribute[])Items.Clone();
            replaced[i] = attribute;
            return new AttributeDictionary(replaced);
        }

        return new AttributeDictionary(CopyOnWrite.Insert(Items, ~i, attribute));
    }

    /// <summary>These attributes without the one named <paramref name="name"/> (the same when there is none).</summary>
    public AttributeDictionary RemoveItem(string name)
    {
        var i = IndexOf(name);
        return i < 0 ? this : new AttributeDictionary([.. Items.AsSpan(0, i), .. Items.AsSpan(i + 1)]);
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, ProfileAttribute>> GetEnumerator()
    {
        foreach (var a in Items)
        {
            yield return new KeyValuePair<string, ProfileAttribute>(a.Name, a);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    // Index of the name, or the bitwise complement of where it would be inserted.
    private int IndexOf(string name)
    {
        int lo = 0, hi = Items.Length - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var c = string.CompareOrdinal(Items[mid].Name, name);
            if (c == 0)
            {
                return mid;
            }

            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return ~lo;
    }
}
