using System.Collections;
using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's event series by event type, flattened: the times of every type in one array, grouped by
/// type (types in ordinal order) with each group in time order, the groups' bounds in a second, and the
/// prefix sums of values, when any value is not 0, in a third. A <see cref="EventSeries"/> is a view of one
/// group, so a profile holds three or four small arrays whatever the number of types, and the array of type
/// names is shared by every profile with the same set of types. A value wrapping those arrays (no object of
/// its own). Immutable; <see cref="Add"/> copies.
/// </summary>
public readonly struct EventSeriesDictionary : IReadOnlyDictionary<string, EventSeries>
{
    private static readonly int[] ZeroStart = [0];

    /// <summary>The empty map.</summary>
    public static readonly EventSeriesDictionary Empty = new([], ZeroStart, [], null);

    private readonly string[]? _typeArray;   // ordinal order; null in default(EventSeriesDictionary): empty
    private readonly int[]? _startArray;     // group g: times [Starts[g], Starts[g + 1]), prefix sums from Starts[g] + g (count + 1 of them)
    private readonly long[]? _tickArray;
    private readonly double[]? _prefix;      // null when every value is 0

    private EventSeriesDictionary(string[] types, int[] starts, long[] ticks, double[]? prefix)
    {
        _typeArray = types;
        _startArray = starts;
        _tickArray = ticks;
        _prefix = prefix;
    }

    private string[] TypeNames => _typeArray ?? [];

    private int[] Starts => _startArray ?? ZeroStart;

    private long[] AllTicks => _tickArray ?? [];

    /// <inheritdoc />
    public int Count => TypeNames.Length;

    /// <inheritdoc />
    public IEnumerable<string> Keys => TypeNames;

    /// <inheritdoc />
    public IEnumerable<EventSeries> Values => this.Select(kv => kv.Value);

    /// <inheritdoc />
    public EventSeries this[string key] => TryGetValue(key, out var s) ? s : throw new KeyNotFoundException($"no series of type '{key}'");

    /// <summary>
    /// The series of <paramref name="events"/> (in time order) by type: equal to adding them one by one, built
    /// in one pass.
    /// </summary>
    internal static EventSeriesDictionary FromEvents(IReadOnlyList<StoredEvent> events)
    {
        if (events.Count == 0)
        {
            return Empty;
        }

        var types = new List<string>(8);
        foreach (var e in events)
        {
            if (!types.Contains(e.Type))
            {
                types.Add(e.Type);
            }
        }

        types.Sort(StringComparer.Ordinal);
        var starts = new int[types.Count + 1];
        var typeOf = new int[events.Count];
        var anyValue = false;
        for (var i = 0; i < events.Count; i++)
        {
            typeOf[i] = types.IndexOf(events[i].Type);
            starts[typeOf[i] + 1]++;
            anyValue |= events[i].Value != 0;
        }

        for (var g = 0; g < types.Count; g++)
        {
            starts[g + 1] += starts[g];
        }

        var ticks = new long[events.Count];
        var prefix = anyValue ? new double[events.Count + types.Count] : null;
        var next = new int[types.Count];
        for (var i = 0; i < events.Count; i++)
        {
            var g = typeOf[i];
            var j = next[g]++;
            ticks[starts[g] + j] = events[i].Ticks;
            if (prefix is not null)
            {
                var p = starts[g] + g;
                prefix[p + j + 1] = prefix[p + j] + events[i].Value;
            }
        }

        return new EventSeriesDictionary(TypeSets.Share([.. types]), starts, ticks, prefix);
    }

    /// <summary>A map of <paramref name="types"/> to <paramref name="series"/> (same length, distinct types).</summary>
    internal static EventSeriesDictionary Of(string[] types, EventSeries[] series)
    {
        if (types.Length == 0)
        {
            return Empty;
        }

        var order = Enumerable.Range(0, types.Length).OrderBy(i => types[i], StringComparer.Ordinal).ToArray();
        var sortedTypes = order.Select(i => types[i]).ToArray();
        var starts = new int[types.Length + 1];
        for (var g = 0; g < order.Length; g++)
        {
            starts[g + 1] = starts[g] + series[order[g]].Count;
        }

        var ticks = new long[starts[^1]];
        var anyValue = series.Any(s => s.HasValues);
        var prefix = anyValue ? new double[ticks.Length + types.Length] : null;
        for (var g = 0; g < order.Length; g++)
        {
            series[order[g]].CopyTicks(ticks, starts[g]);
            if (prefix is not null)
            {
                series[order[g]].CopyPrefix(prefix, starts[g] + g);
            }
        }

        return new EventSeriesDictionary(TypeSets.Share(sortedTypes), starts, ticks, prefix);
    }

    /// <inheritdoc />
    public bool TryGetValue(string key, out EventSeries value)
    {
        var g = IndexOf(key);
        value = g >= 0 ? At(g) : EventSeries.Empty;
        return g >= 0;
    }

    /// <inheritdoc />
    public bool ContainsKey(string key) => IndexOf(key) >= 0;

    /// <summary>This map with <paramref name="type"/> set to <paramref name="series"/>.</summary>
    public EventSeriesDictionary SetItem(string type, EventSeries series)
    {
        var types = new List<string>(TypeNames);
        var all = Enumerable.Range(0, Count).Select(At).ToList();
        var g = IndexOf(type);
        if (g >= 0)
        {
            all[g] = series;
        }
        else
        {
            types.Add(type);
            all.Add(series);
        }

        return Of([.. types], [.. all]);
    }

    /// <summary>This map with an event of <paramref name="type"/> at <paramref name="ticks"/> worth <paramref name="value"/> added, after every event of its type not later than it.</summary>
    public EventSeriesDictionary Add(string type, long ticks, double value)
    {
        var g = IndexOf(type);
        string[] types;
        int index;
        if (g >= 0)
        {
            types = TypeNames;
            index = At(g).InsertionIndex(ticks);
        }
        else
        {
            g = ~Array.BinarySearch(TypeNames, type, StringComparer.Ordinal);
            types = TypeSets.Share([.. TypeNames.AsSpan(0, g), type, .. TypeNames.AsSpan(g)]);
            index = 0;
        }

        var added = types.Length != TypeNames.Length;
        var starts = new int[types.Length + 1];
        for (var h = 1; h < starts.Length; h++)
        {
            // Groups before g keep their bounds; g's end and every later bound move by one.
            var old = added ? (h <= g ? Starts[h] : Starts[h - 1]) : Starts[h];
            starts[h] = h <= g ? old : old + 1;
        }

        var at = starts[g] + index;
        var t = new long[AllTicks.Length + 1];
        Array.Copy(AllTicks, t, at);
        t[at] = ticks;
        Array.Copy(AllTicks, at, t, at + 1, AllTicks.Length - at);

        double[]? prefix = null;
        if (_prefix is not null || value != 0)
        {
            prefix = new double[t.Length + types.Length];
            for (var h = 0; h < types.Length; h++)
            {
                var target = starts[h] + h;
                if (h == g)
                {
                    (added ? EventSeries.Empty : At(g)).InsertIntoPrefix(prefix, target, index, value);
                }
                else
                {
                    At(added && h > g ? h - 1 : h).CopyPrefix(prefix, target);
                }
            }
        }

        return new EventSeriesDictionary(types, starts, t, prefix);
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, EventSeries>> GetEnumerator()
    {
        for (var g = 0; g < TypeNames.Length; g++)
        {
            yield return new KeyValuePair<string, EventSeries>(TypeNames[g], At(g));
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private EventSeries At(int g) => new(AllTicks, Starts[g], Starts[g + 1] - Starts[g], _prefix, Starts[g] + g);

    private int IndexOf(string type)
    {
        for (var i = 0; i < TypeNames.Length; i++)
        {
            if (ReferenceEquals(TypeNames[i], type) || string.Equals(TypeNames[i], type, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>One shared array per distinct set of type names (profiles have a few common sets); bounded.</summary>
    private static class TypeSets
    {
        private const int Capacity = 4096;
        private static readonly ConcurrentDictionary<string, string[]> Sets = new(StringComparer.Ordinal);

        public static string[] Share(string[] types)
        {
            var key = string.Join('\0', types);
            if (Sets.TryGetValue(key, out var shared))
            {
                return shared;
            }

            for (var i = 0; i < types.Length; i++)
            {
                types[i] = StringPool.Share(types[i]);
            }

            return Sets.Count < Capacity ? Sets.GetOrAdd(key, types) : types;
        }
    }
}
