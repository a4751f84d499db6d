using System.Collections;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A profile's event series by event type, flattened into one array: the groups' bounds and how many
/// entries of each group have been written, then the times of every type grouped by type (types in ordinal
/// order, each group in time order), then, when any value is not 0, each group's prefix sums of values. A
/// <see cref="EventSeries"/> is a view of one group, so a profile holds one array whatever the number of
/// types, and the array of type names is shared by every profile with the same set of types. A value
/// wrapping those arrays (no object of its own).
/// <para>
/// Immutable to its readers. A group may have room past its entries: <see cref="Add"/> at the end of a group
/// writes into that room while this snapshot is the last one written to the group, and the new snapshot shares
/// the array, with its own small array of counts per group; otherwise it copies into an array with room for
/// about half as many entries again in every group of 16 or more (smaller groups stay exact, and a map whose
/// groups are all exact keeps no counts). A map built at once (<see cref="FromEvents"/>, restores,
/// archives) has no room and no counts of its own. For a history long enough for its <see cref="EventLog"/> to
/// keep an archive run, the series of the archived events are kept apart, frozen (<see cref="Of(EventLog)"/>),
/// and each series read is that archived series followed by the series of the newer events.
/// </para>
/// </summary>
public readonly struct EventSeriesDictionary : IReadOnlyDictionary<string, EventSeries>
{
    /// <summary>The empty map.</summary>
    public static EventSeriesDictionary Empty => default;

    private static readonly StringArrayPool TypeSets = StringArrayPool.ForWrittenLists(capacity: 4096); // profiles repeat a few sets of types

    private readonly string[]? _typeArray;  // ordinal order; null in default(EventSeriesDictionary): empty

    // [0, T]: group g's room for times is [start(g), start(g + 1)), as indices of this array (start(T) ends the
    // times); [T + 1, 2T]: how many entries of each group have been written (the claims: a snapshot appends in place
    // only while its count equals its group's); then the times; then, optionally, a prefix-sum section (double bits)
    // with group g's room + 1 sums from start(T) + (start(g) - start(0)) + g.
    private readonly long[]? _dataArray;

    private readonly int[]? _counts;        // entries of each group in this snapshot; null when every group is full (no room)

    private readonly Archive? _archive;     // the archived events' series; null for a history never archived

    private EventSeriesDictionary(string[]? types, long[]? data, int[]? counts = null, Archive? archive = null)
    {
        _typeArray = types;
        _dataArray = data;
        _counts = counts;
        _archive = archive;
    }

    private EventSeriesDictionary(EventSeriesDictionary hot, Archive archive)
        : this(hot._typeArray, hot._dataArray, hot._counts, archive)
    {
    }

    // The newer events' series alone.
    private EventSeriesDictionary Hot => new(_typeArray, _dataArray, _counts);

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

    private bool HasValues => _dataArray is { } data && data.Length > (int)data[TypeNames.Length];

    // The first index of the times of a map of t groups.
    private static int HeaderSize(int t) => (2 * t) + 1;

    // Room of group g.
    private static int RoomOf(long[] data, int g) => (int)(data[g + 1] - data[g]);

    // Entries of group g in this snapshot.
    private int CountOf(int g) => _counts?[g] ?? RoomOf(_dataArray!, g);

    /// <summary>
    /// A new array of t groups with the given room each (and a prefix-sum section when <paramref name="withValues"/>),
    /// its claims set to <paramref name="counts"/>; the caller writes the entries.
    /// </summary>
    private static long[] Allocate(int t, ReadOnlySpan<int> room, ReadOnlySpan<int> counts, bool withValues)
    {
        var times = 0;
        foreach (var r in room)
        {
            times += r;
        }

        var data = new long[HeaderSize(t) + times + (withValues ? times + t : 0)];
        data[0] = HeaderSize(t);
        for (var g = 0; g < t; g++)
        {
            data[g + 1] = data[g] + room[g];
            data[t + 1 + g] = counts[g];
        }

        return data;
    }

    // Where group g's times and prefix sums start in a map of t groups.
    private static int TimesOf(long[] data, int g) => (int)data[g];

    private static int PrefixOf(long[] data, int t, int g) => (int)(data[t] + (data[g] - data[0]) + g);

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
        for (var g = 0; g < t; g++)
        {
            archived.TryGetValue(types[g], out older[g]);
            counts[g] += older[g].Count;
        }

        var data = Allocate(t, counts, counts, anyValue);
        var filled = new int[t];
        for (var g = 0; g < t; g++)
        {
            older[g].CopyTicks(data, TimesOf(data, g));
            filled[g] = older[g].Count;
            if (anyValue)
            {
                older[g].CopyPrefix(data, PrefixOf(data, t, g));
            }
        }

        foreach (var e in events)
        {
            var g = Array.BinarySearch(types, e.Type, StringComparer.Ordinal);
            var j = filled[g]++;
            data[TimesOf(data, g) + j] = e.Ticks;
            if (anyValue)
            {
                var p = PrefixOf(data, t, g);
                data[p + j + 1] = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(data[p + j]) + e.Value);
            }
        }

        return new EventSeriesDictionary(null, null, archive: new Archive(new EventSeriesDictionary(TypeSets.Share(types), data)));
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

        CopyOnWrite.SortOrdinal(types.AsSpan(0, t));
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

        var data = Allocate(t, counts, counts, anyValue);
        for (var i = 0; i < n; i++)
        {
            var g = typeOf[i];
            var j = next[g]++;
            data[TimesOf(data, g) + j] = events[i].Ticks;
            if (anyValue)
            {
                var p = PrefixOf(data, t, g);
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
        var writtenGetsRoom = false;
        string[] types;
        int index;
        if (!added)
        {
            types = old;
            var series = At(g);
            index = series.InsertionIndex(ticks);
            writtenGetsRoom = index == series.Count && EventLog.GetsRoom(series.Count + 1, series.LastTicks, ticks);
            if (index == series.Count && TryAppendInPlace(g, ticks, value) is { } appended)
            {
                return appended;
            }
        }
        else
        {
            g = ~Array.BinarySearch(old, type, StringComparer.Ordinal);
            types = TypeSets.Share([.. old.AsSpan(0, g), type, .. old.AsSpan(g)]);
            index = 0;
        }

        // A copy with room in every group: group h of the new map is group h of this one, or h - 1 past an added group g.
        var t = types.Length;
        var withValues = HasValues || value != 0;
        Span<int> counts = t <= 64 ? stackalloc int[t] : new int[t];
        Span<int> room = t <= 64 ? stackalloc int[t] : new int[t];
        for (var h = 0; h < t; h++)
        {
            counts[h] = (h == g ? (added ? 0 : CountOf(g)) + 1 : CountOf(added && h > g ? h - 1 : h));
            room[h] = WithRoom(counts[h], h == g && writtenGetsRoom);
            if (h != g && _dataArray is { } previous)
            {
                room[h] = Math.Max(room[h], RoomOf(previous, added && h > g ? h - 1 : h)); // the other groups keep the room they had (a visit alternates types)
            }
        }

        var data = Allocate(t, room, counts, withValues);
        var full = room.SequenceEqual(counts);
        for (var h = 0; h < t; h++)
        {
            var source = h == g ? (added ? EventSeries.Empty : At(g)) : At(added && h > g ? h - 1 : h);
            var at = TimesOf(data, h);
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
                var p = PrefixOf(data, t, h);
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

        return new EventSeriesDictionary(types, data, full ? null : counts.ToArray());
    }

    // Room for about half as many entries again, for groups of at least EventLog.RoomFrom entries and for the group written
    // during a visit (EventLog.GetsRoom): most profiles hold a few events and are then read for days, so theirs stay exact
    // (as small as before, and without counts of their own).
    private static int WithRoom(int count, bool getsRoom) => count < EventLog.RoomFrom && !getsRoom ? count : count + (count / 2);

    // The map with an event appended to the end of group g in the room past this snapshot's entries, or null when
    // there is no room, the group's sums are not kept and the value is not 0, or another snapshot already wrote there.
    private EventSeriesDictionary? TryAppendInPlace(int g, long ticks, double value)
    {
        var data = _dataArray!;
        var t = TypeNames.Length;
        var count = CountOf(g);
        var withValues = HasValues;
        if (count >= RoomOf(data, g) || (value != 0 && !withValues) || Interlocked.CompareExchange(ref data[t + 1 + g], count + 1, count) != count)
        {
            return null;
        }

        data[TimesOf(data, g) + count] = ticks;
        if (withValues)
        {
            var p = PrefixOf(data, t, g);
            data[p + count + 1] = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(data[p + count]) + value);
        }

        var counts = new int[t];
        for (var h = 0; h < t; h++)
        {
            counts[h] = CountOf(h);
        }

        counts[g] = count + 1;
        return new EventSeriesDictionary(_typeArray, data, counts);
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
        var t = _typeArray!.Length;
        var start = (int)data[g];
        var end = (int)data[t];
        return new(data, start, _counts?[g] ?? (int)data[g + 1] - start, data.Length > end ? end + (start - (int)data[0]) + g : -1);
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
