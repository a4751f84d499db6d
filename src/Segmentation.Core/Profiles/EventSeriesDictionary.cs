using System.Collections;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's event series by event type: two parallel arrays (a profile has a handful of types), so a
/// profile holds two small arrays instead of a tree of dictionary nodes. Immutable; <see cref="SetItem"/>
/// copies.
/// </summary>
public sealed class EventSeriesDictionary : IReadOnlyDictionary<string, EventSeries>
{
    /// <summary>The empty map.</summary>
    public static readonly EventSeriesDictionary Empty = new([], []);

    private readonly string[] _types;
    private readonly EventSeries[] _series;

    private EventSeriesDictionary(string[] types, EventSeries[] series)
    {
        _types = types;
        _series = series;
    }

    /// <inheritdoc />
    public int Count => _types.Length;

    /// <inheritdoc />
    public IEnumerable<string> Keys => _types;

    /// <inheritdoc />
    public IEnumerable<EventSeries> Values => _series;

    /// <inheritdoc />
    public EventSeries this[string key] => TryGetValue(key, out var s) ? s : throw new KeyNotFoundException($"no series of type '{key}'");

    /// <summary>A map of <paramref name="types"/> to <paramref name="series"/> (same length, distinct types; the arrays are kept).</summary>
    internal static EventSeriesDictionary Of(string[] types, EventSeries[] series) => types.Length == 0 ? Empty : new(types, series);

    /// <inheritdoc />
    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out EventSeries value)
    {
        var i = IndexOf(key);
        value = i >= 0 ? _series[i] : null;
        return i >= 0;
    }

    /// <inheritdoc />
    public bool ContainsKey(string key) => IndexOf(key) >= 0;

    /// <summary>This map with <paramref name="type"/> set to <paramref name="series"/>.</summary>
    public EventSeriesDictionary SetItem(string type, EventSeries series)
    {
        var i = IndexOf(type);
        if (i >= 0)
        {
            var replaced = (EventSeries[])_series.Clone();
            replaced[i] = series;
            return new EventSeriesDictionary(_types, replaced);
        }

        return new EventSeriesDictionary([.. _types, type], [.. _series, series]);
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, EventSeries>> GetEnumerator()
    {
        for (var i = 0; i < _types.Length; i++)
        {
            yield return new KeyValuePair<string, EventSeries>(_types[i], _series[i]);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private int IndexOf(string type)
    {
        for (var i = 0; i < _types.Length; i++)
        {
            if (ReferenceEquals(_types[i], type) || string.Equals(_types[i], type, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }
}
