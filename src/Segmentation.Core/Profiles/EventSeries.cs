using System.Collections.Immutable;

namespace Segmentation.Core.Profiles;

/// <summary>
/// Immutable, time-ordered history of one event type for one user: timestamps and prefix sums of
/// the events' values, so counts and sums over any window are two binary searches. A view over a range
/// of arrays a profile's <see cref="EventSeriesDictionary"/> shares among all its types, so a series costs
/// no object of its own.
/// </summary>
public readonly struct EventSeries
{
    /// <summary>An empty series.</summary>
    public static readonly EventSeries Empty = new([], 0, 0, null, 0);

    private readonly long[] _ticks;      // ascending UTC ticks in [_start, _start + _count)
    private readonly double[]? _prefix;  // _prefix[_prefixStart + i] = sum of the values of the series' events [0, i); null when every value is 0
    private readonly int _start;
    private readonly int _count;
    private readonly int _prefixStart;

    internal EventSeries(long[] ticks, int start, int count, double[]? prefix, int prefixStart)
    {
        _ticks = ticks;
        _start = start;
        _count = count;
        _prefix = prefix;
        _prefixStart = prefixStart;
    }

    /// <summary>Number of events in the series.</summary>
    public int Count => _count;

    /// <summary>Timestamp (UTC ticks) of the first event, or <see cref="long.MinValue"/> when empty.</summary>
    public long FirstTicks => _count == 0 ? long.MinValue : _ticks[_start];

    /// <summary>Timestamp (UTC ticks) of the last event, or <see cref="long.MinValue"/> when empty.</summary>
    public long LastTicks => _count == 0 ? long.MinValue : _ticks[_start + _count - 1];

    /// <summary>A series of zero-valued events at <paramref name="ticks"/>, which are in time order (the array is kept).</summary>
    internal static EventSeries FromOrderedTicks(long[] ticks) =>
        ticks.Length == 0 ? Empty : new EventSeries(ticks, 0, ticks.Length, null, 0);

    /// <summary>False when every event's value is 0 (no prefix sums are kept).</summary>
    internal bool HasValues => _prefix is not null;

    /// <summary>The value of the series' event <paramref name="index"/>.</summary>
    internal double ValueAt(int index) => _prefix is null ? 0 : _prefix[_prefixStart + index + 1] - _prefix[_prefixStart + index];

    /// <summary>The time of the series' event <paramref name="index"/>.</summary>
    internal long TicksAt(int index) => _ticks[_start + index];

    /// <summary>Returns a new series with the event inserted in time order.</summary>
    public EventSeries Add(long ticks, double value)
    {
        var index = UpperBound(ticks);
        var t = new long[_count + 1];
        Array.Copy(_ticks, _start, t, 0, index);
        t[index] = ticks;
        Array.Copy(_ticks, _start + index, t, index + 1, _count - index);
        if (_prefix is null && value == 0)
        {
            return new EventSeries(t, 0, t.Length, null, 0);
        }

        var p = new double[_count + 2];
        InsertIntoPrefix(p, 0, index, value);
        return new EventSeries(t, 0, t.Length, p, 0);
    }

    /// <summary>
    /// Writes to <paramref name="target"/> at <paramref name="at"/> this series' prefix sums (count + 2
    /// entries) with an event of <paramref name="value"/> inserted at <paramref name="index"/>: entries up to
    /// the index are kept, later ones get the value added (what folding the events in order gives).
    /// </summary>
    internal void InsertIntoPrefix(double[] target, int at, int index, double value)
    {
        for (var k = 0; k <= _count + 1; k++)
        {
            target[at + k] = k <= index ? PrefixAt(k) : PrefixAt(k - 1) + value;
        }
    }

    /// <summary>Writes this series' prefix sums (count + 1 entries) to <paramref name="target"/> at <paramref name="at"/>.</summary>
    internal void CopyPrefix(double[] target, int at)
    {
        for (var k = 0; k <= _count; k++)
        {
            target[at + k] = PrefixAt(k);
        }
    }

    /// <summary>Copies the series' times to <paramref name="target"/> at <paramref name="at"/>.</summary>
    internal void CopyTicks(long[] target, int at) => Array.Copy(_ticks, _start, target, at, _count);

    /// <summary>Index of the first event later than <paramref name="ticks"/>: where an event at that time is inserted.</summary>
    internal int InsertionIndex(long ticks) => UpperBound(ticks);

    private double PrefixAt(int k) => _prefix is null ? 0 : _prefix[_prefixStart + k];

    /// <summary>
    /// Counts events in (<paramref name="nowTicks"/> − <paramref name="windowTicks"/>, <paramref name="nowTicks"/>].
    /// <paramref name="changesAt"/> is the earliest later instant at which the count can change without a
    /// write (an event leaving the window or a future-dated event entering it), or <see cref="long.MaxValue"/>.
    /// </summary>
    public int CountInWindow(long nowTicks, long windowTicks, out long changesAt)
    {
        var (from, to) = Range(nowTicks, windowTicks, out changesAt);
        return to - from;
    }

    /// <summary>Sum of event values in the window, with the same semantics as <see cref="CountInWindow"/>.</summary>
    public double SumInWindow(long nowTicks, long windowTicks, out long changesAt)
    {
        var (from, to) = Range(nowTicks, windowTicks, out changesAt);
        return _prefix is null ? 0 : _prefix[_prefixStart + to] - _prefix[_prefixStart + from];
    }

    /// <summary>Last event at or before <paramref name="nowTicks"/>, or <see cref="long.MinValue"/>.</summary>
    public long LastAtOrBefore(long nowTicks, out long changesAt)
    {
        var to = UpperBound(nowTicks);
        changesAt = to < _count ? TicksAt(to) : long.MaxValue;
        return to == 0 ? long.MinValue : TicksAt(to - 1);
    }

    /// <summary>First event at or before <paramref name="nowTicks"/>, or <see cref="long.MinValue"/>.</summary>
    public long FirstAtOrBefore(long nowTicks, out long changesAt)
    {
        if (_count == 0 || TicksAt(0) > nowTicks)
        {
            changesAt = _count == 0 ? long.MaxValue : TicksAt(0);
            return long.MinValue;
        }

        changesAt = long.MaxValue;
        return TicksAt(0);
    }

    /// <summary>The timestamps as an immutable array (for export and tests).</summary>
    public ImmutableArray<long> Ticks => ImmutableArray.Create(_ticks, _start, _count);

    private (int From, int To) Range(long nowTicks, long windowTicks, out long changesAt)
    {
        var to = UpperBound(nowTicks);
        var fromTicks = windowTicks >= nowTicks - DateTimeOffset.MinValue.UtcTicks ? long.MinValue : nowTicks - windowTicks;
        var from = fromTicks == long.MinValue ? 0 : UpperBound(fromTicks);
        changesAt = long.MaxValue;
        if (from < to && fromTicks != long.MinValue)
        {
            changesAt = TicksAt(from) + windowTicks; // the oldest event in the window drops out
        }

        if (to < _count)
        {
            changesAt = Math.Min(changesAt, TicksAt(to)); // a future-dated event comes into range
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
            if (_ticks[_start + mid] <= value)
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
