namespace Segmentation.Core.Profiles.Compact;

/// <summary>Array copies for the immutable collections of a profile.</summary>
internal static class CopyOnWrite
{
    /// <summary>A new array: <paramref name="items"/> with <paramref name="item"/> inserted at <paramref name="index"/>.</summary>
    public static T[] Insert<T>(T[] items, int index, T item)
    {
        var result = new T[items.Length + 1];
        Array.Copy(items, 0, result, 0, index);
        result[index] = item;
        Array.Copy(items, index, result, index + 1, items.Length - index);
        return result;
    }
}
