namespace Segmentation.Core.Profiles.Compact;

/// <summary>Array copies (and sorts) for the immutable collections of a profile.</summary>
internal static class CopyOnWrite
{
    private static readonly Comparison<string> OrdinalOrder = string.CompareOrdinal;

    /// <summary>A new array: <paramref name="items"/> with <paramref name="item"/> inserted at <paramref name="index"/>.</summary>
    public static T[] Insert<T>(T[] items, int index, T item)
    {
        var result = new T[items.Length + 1];
        Array.Copy(items, 0, result, 0, index);
        result[index] = item;
        Array.Copy(items, index, result, index + 1, items.Length - index);
        return result;
    }

    /// <summary>
    /// Sorts <paramref name="items"/> in ordinal order without allocating (sorting with an <see cref="IComparer{T}"/>
    /// allocates a delegate per call; restoring a snapshot sorts a few of these per profile).
    /// </summary>
    public static void SortOrdinal(Span<string> items) => items.Sort(OrdinalOrder);
}
