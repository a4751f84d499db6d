using System.Collections.Immutable;

namespace Segmentation.Core.Profiles;

/// <summary>
/// Immutable, time-ordered history of one event type for one user: timestamps and prefix sums of
/// the events' values, so counts and sums over any window are two binary searches.
/// </summary>
public sealed class EventSeries
{
    /// <summary>An empty series.</summary>
    public static readonly EventSeries Empty = new([], null);

    private readonly long[] _ticks;      // ascending UTC ticks
    private readonly double[]? _prefix;  // _prefix[i] = sum of values of events [0, i); null when every value is 0 (most event types)

    private EventSeries(long[] ticks, double[]? prefix)
    {
        _ticks = ticks;
        _prefix = prefix;
    }

    /// <summary>Number of events in the series.</summary>
    public int Count => _ticks.Length;

    /// <summary>Timestamp (UTC ticks) of the first event, or <see cref="long.MinValue"/> when empty.</summary>
    public long FirstTicks => _ticks.Length == 0 ? long.MinValue : _ticks[0];

    /// <summary>Timestamp (UTC ticks) of the last event, or <see cref="long.MinValue"/> when empty.</summary>
    public long LastTicks => _ticks.Length == 0 ? long.MinValue : _ticks[^1];

    /// <summary>A series of zero-valued events at <paramref name="ticks"/>, which are in time order (the array is kept).</summary>
    internal static EventSeries FromOrderedTicks(long[] ticks) =>
        ticks.Length == 0 ? Empty : new EventSeries(ticks, null);

    /// <summary>The series of the events (in time order) whose entry in <paramref name="typeOf"/> is <paramref name="type"/>.</summary>
    internal static EventSeries FromEvents(IReadOnlyList<StoredEvent> events, int[] typeOf, int type)
    {
        var count = 0;
        foreach (var t in typeOf)
        {
            count += t == type ? 1 : 0;
        }

        var ticks = new long[count];
        var prefix = new double[count + 1];
        var anyValue = false;
        for (int i = 0, j = 0; i < typeOf.Length; i++)
        {
            if (typeOf[i] == type)
            {
                ticks[j] = events[i].Ticks;
                prefix[j + 1] = prefix[j] + events[i].Value;
                anyValue |= events[i].Value != 0;
                j++;
            }
        }

        return new EventSeries(ticks, anyValue ? prefix : null);
    }

    /// <summary>Returns a new series with the event inserted in time order.</summary>
    public EventSeries Add(long ticks, double value)
    {
        var index = UpperBound(ticks);
        var t = CopyOnWrite.Insert(_ticks, index, ticks);

        if (_prefix is null && value == 0)
        {
            return new EventSeries(t, null);
        }

        var old = _prefix ?? new double[_ticks.Length + 1];
        var p = new double[old.Length + 1];
        Array.Copy(old, 0, p, 0, index + 1);
        for (var i = index + 1; i < p.Length; i++)
        {
            p[i] = old[i - 1] + value;
        }

        return new EventSeries(t, p);
    }

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
        return _prefix is null ? 0 : _prefix[to] - _prefix[from];
    }

    /// <summary>Last event at or before <paramref name="nowTicks"/>, or <see cref="long.MinValue"/>.</summary>
    public long LastAtOrBefore(long nowTicks, out long changesAt)
    {
        var to = UpperBound(nowTicks);
        changesAt = to < _ticks.Length ? _ticks[to] : long.MaxValue;
        return to == 0 ? long.MinValue : _ticks[to - 1];
    }

    /// <summary>First event at or before <paramref name="nowTicks"/>, or <see cref="long.MinValue"/>.</summary>
    public long FirstAtOrBefore(long nowTicks, out long changesAt)
    {
        if (_ticks.Length == 0 || _ticks[0] > nowTicks)
        {
            changesAt = _ticks.Length == 0 ? long.MaxValue : _ticks[0];
            return long.MinValue;
        }

        changesAt = long.MaxValue;
        return _ticks[0];
    }

    /// <summary>The timestamps as an immutable array (for export and tests).</summary>
    public ImmutableArray<long> Ticks => ImmutableArray.Create(_ticks);

    private (int From, int To) Range(long nowTicks, long windowTicks, out long changesAt)
    {
        var to = UpperBound(nowTicks);
        var fromTicks = windowTicks >= nowTicks - DateTimeOffset.MinValue.UtcTicks ? long.MinValue : nowTicks - windowTicks;
        var from = fromTicks == long.MinValue ? 0 : UpperBound(fromTicks);
        changesAt = long.MaxValue;
        if (from < to && fromTicks != long.MinValue)
        {
            changesAt = _ticks[from] + windowTicks; // the oldest event in the window drops out
        }

        if (to < _ticks.Length)
        {
            changesAt = Math.Min(changesAt, _ticks[to]); // a future-dated event comes into range
        }

        return (from, to);
    }

    // First index whose tick is > value.
    private int UpperBound(long value)
    {
        int lo = 0, hi = _ticks.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_ticks[mid] <= value)
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
