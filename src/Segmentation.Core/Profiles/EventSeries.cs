using System.Collections.Immutable;

namespace Segmentation.Core.Profiles;

/// <summary>
/// Immutable, time-ordered history of one event type for one user: timestamps and prefix sums of
/// the events' values, so counts and sums over any window are two binary searches. A view over a range
/// of the one array a profile's <see cref="EventSeriesDictionary"/> keeps for all its types, so a series
/// costs no object of its own. The series of a long history has an older run too (see
/// <see cref="EventLog"/>): the frozen series of the archived events, which every query reads before this
/// run's events (all of them are not later than this run's).
/// </summary>
public readonly struct EventSeries
{
    /// <summary>An empty series.</summary>
    public static readonly EventSeries Empty = new([], 0, 0, -1);

    private readonly long[] _data;     // ascending UTC ticks in [_start, _start + _count); prefix sums (as double bits) from _prefixStart
    private readonly int _start;
    private readonly int _count;
    private readonly int _prefixStart; // sum of the values of the series' events [0, i) at _prefixStart + i; -1 when every value is 0
    private readonly Older? _older;    // the archived events' series, read first; null for a history that was never archived

    internal EventSeries(long[] data, int start, int count, int prefixStart, Older? older = null)
    {
        _data = data;
        _start = start;
        _count = count;
        _prefixStart = prefixStart;
        _older = older;
    }

    /// <summary>The series of archived events, boxed once per archive so that series built over it allocate nothing.</summary>
    internal sealed class Older(EventSeries series)
    {
        /// <summary>The archived series (itself without an older run).</summary>
        public EventSeries Series { get; } = series;
    }

    /// <summary>This run with <paramref name="older"/> before it.</summary>
    internal EventSeries After(Older older) => new(_data, _start, _count, _prefixStart, older);

    /// <summary>Number of events in the series.</summary>
    public int Count => _count + (_older?.Series._count ?? 0);

    /// <summary>Timestamp (UTC ticks) of the first event, or <see cref="long.MinValue"/> when empty.</summary>
    public long FirstTicks => _older is { Series._count: > 0 } o ? o.Series.FirstTicks : _count == 0 ? long.MinValue : _data[_start];

    /// <summary>Timestamp (UTC ticks) of the last event, or <see cref="long.MinValue"/> when empty.</summary>
    public long LastTicks => _count == 0 ? _older?.Series.LastTicks ?? long.MinValue : _data[_start + _count - 1];

    /// <summary>A series of zero-valued events at <paramref name="ticks"/>, which are in time order (the array is kept).</summary>
    /// <summary>A series of zero-valued events at the first <paramref name="count"/> entries of <paramref name="ticks"/>, which are in time order (the array is kept).</summary>
    internal static EventSeries FromOrderedTicks(long[] ticks, int count) =>
        count == 0 ? Empty : new EventSeries(ticks, 0, count, -1);

    /// <summary>False when every event's value is 0 (no prefix sums are kept).</summary>
    internal bool HasValues => _prefixStart >= 0 || (_older?.Series.HasValues ?? false);

    /// <summary>The time of the series' event <paramref name="index"/>.</summary>
    internal long TicksAt(int index) => _older is { } o
        ? index < o.Series._count ? o.Series.TicksAt(index) : _data[_start + index - o.Series._count]
        : _data[_start + index];

    /// <summary>Returns a new series with the event inserted in time order (a series without an older run).</summary>
    public EventSeries Add(long ticks, double value)
    {
        if (_older is not null)
        {
            throw new InvalidOperationException("a series with an archived run grows through its profile's event log");
        }

        var index = UpperBound(ticks);
        var withValues = HasValues || value != 0;
        var data = new long[_count + 1 + (withValues ? _count + 2 : 0)];
        Array.Copy(_data, _start, data, 0, index);
        data[index] = ticks;
        Array.Copy(_data, _start + index, data, index + 1, _count - index);
        if (!withValues)
        {
            return new EventSeries(data, 0, _count + 1, -1);
        }

        InsertIntoPrefix(data, _count + 1, index, value);
        return new EventSeries(data, 0, _count + 1, _count + 1);
    }

    /// <summary>
    /// Writes to <paramref name="target"/> at <paramref name="at"/> this series' prefix sums (count + 2
    /// entries) with an event of <paramref name="value"/> inserted at <paramref name="index"/>: entries up to
    /// the index are kept, later ones get the value added (what folding the events in order gives).
    /// </summary>
    internal void InsertIntoPrefix(long[] target, int at, int index, double value)
    {
        for (var k = 0; k <= _count + 1; k++)
        {
            target[at + k] = BitConverter.DoubleToInt64Bits(k <= index ? PrefixAt(k) : PrefixAt(k - 1) + value);
        }
    }

    /// <summary>Writes this series' prefix sums (count + 1 entries) to <paramref name="target"/> at <paramref name="at"/>.</summary>
    internal void CopyPrefix(long[] target, int at)
    {
        for (var k = 0; k <= _count; k++)
        {
            target[at + k] = BitConverter.DoubleToInt64Bits(PrefixAt(k));
        }
    }

    /// <summary>Copies the series' times to <paramref name="target"/> at <paramref name="at"/>.</summary>
    internal void CopyTicks(long[] target, int at) => Array.Copy(_data, _start, target, at, _count);

    /// <summary>Index of the first event later than <paramref name="ticks"/>: where an event at that time is inserted.</summary>
    internal int InsertionIndex(long ticks) => (_older?.Series.UpperBound(ticks) ?? 0) + UpperBound(ticks);

    private double PrefixAt(int k) => _prefixStart < 0 ? 0 : BitConverter.Int64BitsToDouble(_data[_prefixStart + k]);

    /// <summary>
    /// Counts events in (<paramref name="nowTicks"/> − <paramref name="windowTicks"/>, <paramref name="nowTicks"/>].
    /// <paramref name="changesAt"/> is the earliest later instant at which the count can change without a
    /// write (an event leaving the window or a future-dated event entering it), or <see cref="long.MaxValue"/>.
    /// </summary>
    public int CountInWindow(long nowTicks, long windowTicks, out long changesAt)
    {
        var (from, to) = Range(nowTicks, windowTicks, out changesAt);
        if (_older is { } o)
        {
            var older = o.Series.CountInWindow(nowTicks, windowTicks, out var olderChanges);
            changesAt = Math.Min(changesAt, olderChanges);
            return older + to - from;
        }

        return to - from;
    }

    /// <summary>Sum of event values in the window, with the same semantics as <see cref="CountInWindow"/>.</summary>
    public double SumInWindow(long nowTicks, long windowTicks, out long changesAt)
    {
        var (from, to) = Range(nowTicks, windowTicks, out changesAt);
        var sum = _prefixStart < 0 ? 0 : PrefixAt(to) - PrefixAt(from);
        if (_older is { } o)
        {
            sum = o.Series.SumInWindow(nowTicks, windowTicks, out var olderChanges) + sum;
            changesAt = Math.Min(changesAt, olderChanges);
        }

        return ProfileAggregates.Money(sum); // a difference of running sums: rounded as a sum of money
    }

    /// <summary>Last event at or before <paramref name="nowTicks"/>, or <see cref="long.MinValue"/>.</summary>
    public long LastAtOrBefore(long nowTicks, out long changesAt)
    {
        var to = UpperBound(nowTicks);
        changesAt = to < _count ? _data[_start + to] : long.MaxValue;
        if (to > 0)
        {
            return _data[_start + to - 1];
        }

        if (_older is { } o)
        {
            var last = o.Series.LastAtOrBefore(nowTicks, out var olderChanges);
            changesAt = Math.Min(changesAt, olderChanges);
            return last;
        }

        return long.MinValue;
    }

    /// <summary>First event at or before <paramref name="nowTicks"/>, or <see cref="long.MinValue"/>.</summary>
    public long FirstAtOrBefore(long nowTicks, out long changesAt)
    {
        var first = FirstTicks;
        if (first == long.MinValue || first > nowTicks)
        {
            changesAt = first == long.MinValue ? long.MaxValue : first;
            return long.MinValue;
        }

        changesAt = long.MaxValue;
        return first;
    }

    /// <summary>The timestamps as an immutable array (for export and tests).</summary>
    public ImmutableArray<long> Ticks => _older is { } o
        ? [.. o.Series.Ticks, .. ImmutableArray.Create(_data, _start, _count)]
        : ImmutableArray.Create(_data, _start, _count);

    private (int From, int To) Range(long nowTicks, long windowTicks, out long changesAt)
    {
        var to = UpperBound(nowTicks);
        var fromTicks = windowTicks >= nowTicks - DateTimeOffset.MinValue.UtcTicks ? long.MinValue : nowTicks - windowTicks;
        var from = fromTicks == long.MinValue ? 0 : UpperBound(fromTicks);
        changesAt = long.MaxValue;
        if (from < to && fromTicks != long.MinValue)
        {
            changesAt = _data[_start + from] + windowTicks; // the oldest event in the window drops out
        }

        if (to < _count)
        {
            changesAt = Math.Min(changesAt, _data[_start + to]); // a future-dated event comes into range
        }

        return (from, to);
    }

    // First index (in the series) whose tick is > value.
    private int UpperBound(long value)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_data[_start + mid] <= value)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }
}
