using System.Collections;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's event series by event type, flattened into one array: the groups' bounds, then the times
/// of every type grouped by type (types in ordinal order, each group in time order), then, when any value
/// is not 0, each group's prefix sums of values. A <see cref="EventSeries"/> is a view of one group, so a
/// profile holds one array whatever the number of types, and the array of type names is shared by every
/// profile with the same set of types. A value wrapping those two arrays (no object of its own).
/// Immutable; <see cref="Add"/> copies. For a history long enough for its <see cref="EventLog"/> to keep an
/// archive run, the series of the archived events are kept apart, frozen (<see cref="Of(EventLog)"/>), and
/// each series read is that archived series followed by the series of the newer events.
/// </summary>
public readonly struct EventSeriesDictionary : IReadOnlyDictionary<string, EventSeries>
{
    /// <summary>The empty map.</summary>
    public static EventSeriesDictionary Empty => default;

    private static readonly StringArrayPool TypeSets = new(capacity: 4096); // profiles repeat a few sets of types

    private readonly string[]? _typeArray;  // ordinal order; null in default(EventSeriesDictionary): empty

    // [0, T]: group g's times are [start(g), start(g + 1)) counted from the times section;
    // [T + 1, T + 1 + N): the times; then, optionally, N + T prefix sums (double bits), group g's from start(g) + g.
    private readonly long[]? _dataArray;

    private readonly Archive? _archive;     // the archived events' series; null for a history never archived

    private EventSeriesDictionary(string[]? types, long[]? data, Archive? archive = null)
    {
        _typeArray = types;
        _dataArray = data;
        _archive = archive;
    }

    private EventSeriesDictionary(EventSeriesDictionary hot, Archive archive)
        : this(hot._typeArray, hot._dataArray, archive)
    {
    }

    // The newer events' series alone.
    private EventSeriesDictionary Hot => new(_typeArray, _dataArray);

    // The series of archived events, each boxed once.
    private sealed class Archive(EventSeriesDictionary flat)
    {
        public EventSeriesDictionary Flat { get; } = flat;

        public EventSeries.Older[] Series { get; } = [.. Enumerable.Range(0, flat.TypeNames.Length).Select(g => new EventSeries.Older(flat.At(g)))];
    }

    /// <summary>
    /// The series of the events of <paramref name="log"/>: with an archive run when the log has one (the
    /// archived events' series frozen and kept apart), else one flat map.
    /// </summary>
    internal static EventSeriesDictionary Of(EventLog log)
    {
        var (archived, hot) = log.Runs;
        var hotSeries = FromEvents([.. hot]);
        return log.HasArchive ? new EventSeriesDictionary(hotSeries, new Archive(FromEvents([.. archived]))) : hotSeries;
    }

    private string[] TypeNames => _typeArray ?? [];

    private int TimesAt => TypeNames.Length + 1;

    private int Total => _dataArray is null ? 0 : (int)_dataArray[TypeNames.Length];

    private bool HasValues => _dataArray is not null && _dataArray.Length > TimesAt + Total;

    /// <summary>
    /// This map with the newer events' series moved into the archive: <paramref name="hot"/> is the hot run of
    /// the profile's event log (the events of this map's newer series), whose values continue each archived
    /// series' prefix sums one by one, exactly as adding them one by one would have.
    /// </summary>
    internal EventSeriesDictionary Freeze(EventLog hot)
    {
        var archived = _archive?.Flat ?? Empty;
        var events = hot.ToList();
        var types = archived.TypeNames.Union(events.Select(e => e.Type), StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var t = types.Length;
        var counts = new int[t];
        var anyValue = archived.HasValues;
        foreach (var e in events)
        {
            counts[Array.BinarySearch(types, e.Type, StringComparer.Ordinal)]++;
            anyValue |= e.Value != 0;
        }

        var older = new EventSeries[t];
        var n = 0;
        for (var g = 0; g < t; g++)
        {
            archived.TryGetValue(types[g], out older[g]);
            counts[g] += older[g].Count;
            n += counts[g];
        }

        var data = new long[t + 1 + n + (anyValue ? n + t : 0)];
        var filled = new int[t];
        for (var g = 0; g < t; g++)
        {
            data[g + 1] = data[g] + counts[g];
            older[g].CopyTicks(data, t + 1 + (int)data[g]);
            filled[g] = older[g].Count;
            if (anyValue)
            {
                older[g].CopyPrefix(data, t + 1 + n + (int)data[g] + g);
            }
        }

        foreach (var e in events)
        {
            var g = Array.BinarySearch(types, e.Type, StringComparer.Ordinal);
            var j = filled[g]++;
            data[t + 1 + (int)data[g] + j] = e.Ticks;
            if (anyValue)
            {
                var p = t + 1 + n + (int)data[g] + g;
                data[p + j + 1] = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(data[p + j]) + e.Value);
            }
        }

        return new EventSeriesDictionary(null, null, new Archive(new EventSeriesDictionary(TypeSets.Share(types), data)));
    }

    /// <inheritdoc />
    public int Count => _archive is null ? TypeNames.Length : AllTypes.Length;

    /// <inheritdoc />
    public IEnumerable<string> Keys => _archive is null ? TypeNames : AllTypes;

    // The types of both runs, in ordinal order.
    private string[] AllTypes => [.. TypeNames.Union(_archive!.Flat.TypeNames, StringComparer.Ordinal).Order(StringComparer.Ordinal)];

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

        // Per-thread scratch: restoring a snapshot builds a million of these.
        var scratch = t_scratch ??= new Scratch();
        var n = events.Count;
        if (scratch.TypeOf.Length < n)
        {
            scratch.TypeOf = new int[Math.Max(n, scratch.TypeOf.Length * 2)];
        }

        var types = scratch.Types;
        var t = 0;
        for (var i = 0; i < n; i++)
        {
            var type = events[i].Type;
            if (Array.IndexOf(types, type, 0, t) < 0)
            {
                if (t == types.Length)
                {
                    Array.Resize(ref scratch.Types, t * 2);
                    types = scratch.Types;
                }

                types[t++] = type;
            }
        }

        Array.Sort(types, 0, t, StringComparer.Ordinal);
        var typeOf = scratch.TypeOf;
        Span<int> counts = t <= 64 ? stackalloc int[t] : new int[t];
        Span<int> next = t <= 64 ? stackalloc int[t] : new int[t];
        var anyValue = false;
        for (var i = 0; i < n; i++)
        {
            typeOf[i] = Array.IndexOf(types, events[i].Type, 0, t);
            counts[typeOf[i]]++;
            anyValue |= events[i].Value != 0;
        }

        var data = new long[t + 1 + n + (anyValue ? n + t : 0)];
        for (var g = 0; g < t; g++)
        {
            data[g + 1] = data[g] + counts[g];
        }

        for (var i = 0; i < n; i++)
        {
            var g = typeOf[i];
            var j = next[g]++;
            data[t + 1 + (int)data[g] + j] = events[i].Ticks;
            if (anyValue)
            {
                var p = t + 1 + n + (int)data[g] + g;
                data[p + j + 1] = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(data[p + j]) + events[i].Value);
            }
        }

        var shared = TypeSets.Share(types.AsSpan(0, t));
        Array.Clear(types, 0, t);
        return new EventSeriesDictionary(shared, data);
    }

    [ThreadStatic]
    private static Scratch? t_scratch;

    private sealed class Scratch
    {
        public string[] Types = new string[16];
        public int[] TypeOf = new int[64];
    }

    /// <inheritdoc />
    public bool TryGetValue(string key, out EventSeries value)
    {
        var g = IndexOf(key);
        value = g >= 0 ? At(g) : EventSeries.Empty;
        if (_archive is not null && _archive.Flat.IndexOf(key) is var a and >= 0)
        {
            value = value.After(_archive.Series[a]);
            return true;
        }

        return g >= 0;
    }

    /// <inheritdoc />
    public bool ContainsKey(string key) => IndexOf(key) >= 0 || (_archive?.Flat.IndexOf(key) ?? -1) >= 0;

    /// <summary>This map with an event of <paramref name="type"/> at <paramref name="ticks"/> worth <paramref name="value"/> added, after every event of its type not later than it.</summary>
    public EventSeriesDictionary Add(string type, long ticks, double value)
    {
        if (_archive is not null)
        {
            if (_archive.Flat.TryGetValue(type, out var archived) && ticks < archived.LastTicks)
            {
                throw new InvalidOperationException("an event earlier than archived ones is added by rebuilding the profile's series from its event log");
            }

            return new EventSeriesDictionary(Hot.Add(type, ticks, value), _archive);
        }

        var old = TypeNames;
        var g = IndexOf(type);
        var added = g < 0;
        string[] types;
        int index;
        if (!added)
        {
            types = old;
            index = At(g).InsertionIndex(ticks);
        }
        else
        {
            g = ~Array.BinarySearch(old, type, StringComparer.Ordinal);
            types = TypeSets.Share([.. old.AsSpan(0, g), type, .. old.AsSpan(g)]);
            index = 0;
        }

        // Group h of the new map is group h of this one, or h - 1 past an added group g.
        var t = types.Length;
        var n = Total + 1;
        var withValues = HasValues || value != 0;
        var data = new long[t + 1 + n + (withValues ? n + t : 0)];
        for (var h = 0; h < t; h++)
        {
            var source = h == g ? (added ? EventSeries.Empty : At(g)) : At(added && h > g ? h - 1 : h);
            var count = source.Count + (h == g ? 1 : 0);
            data[h + 1] = data[h] + count;
            var at = t + 1 + (int)data[h];
            if (h == g)
            {
                for (var k = 0; k < index; k++)
                {
                    data[at + k] = source.TicksAt(k);
                }

                data[at + index] = ticks;
                for (var k = index; k < source.Count; k++)
                {
                    data[at + k + 1] = source.TicksAt(k);
                }
            }
            else
            {
                source.CopyTicks(data, at);
            }

            if (withValues)
            {
                var p = t + 1 + n + (int)data[h] + h;
                if (h == g)
                {
                    source.InsertIntoPrefix(data, p, index, value);
                }
                else
                {
                    source.CopyPrefix(data, p);
                }
            }
        }

        return new EventSeriesDictionary(types, data);
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, EventSeries>> GetEnumerator()
    {
        foreach (var type in _archive is null ? TypeNames : AllTypes)
        {
            TryGetValue(type, out var series);
            yield return new KeyValuePair<string, EventSeries>(type, series);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    // On the rule-evaluation path: fields read once into locals.
    private EventSeries At(int g)
    {
        var data = _dataArray!;
        var times = _typeArray!.Length + 1;
        var start = (int)data[g];
        var total = (int)data[times - 1];
        return new(data, times + start, (int)data[g + 1] - start, data.Length > times + total ? times + total + start + g : -1);
    }

    private int IndexOf(string type)
    {
        var names = _typeArray;
        if (names is null)
        {
            return -1;
        }

        for (var i = 0; i < names.Length; i++)
        {
            var name = names[i];
            if (ReferenceEquals(name, type) || string.Equals(name, type, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }
}
