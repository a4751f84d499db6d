using System.Collections.Concurrent;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// Churn per segment: how many of a segment's members moved to a churn state — entered one of the
/// <see cref="MeasurementOptions.ChurnSegments"/> (lapsed or lost customers) while they were in no churn state
/// before — counted per hour for <see cref="KpiStore.RetentionDays"/> days against each segment they left for it (not
/// against a segment they stay in). Moves are counted, not distinct members: a user who returns from the churn state
/// and lapses again in the same range counts twice.
/// The membership index reports every change of a user's segments (<see cref="Moved"/>); a churn rate divides the
/// churned of a range by the segment's members at its start (the segment size history).
/// </summary>
public sealed class ChurnHistory
{
    private const int Hours = HourRings.Hours;

    private readonly HashSet<string> _churnStates;
    private readonly ConcurrentDictionary<string, long[]> _churned = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long[]> _hours = new(StringComparer.Ordinal);

    /// <summary>Counts moves into <paramref name="churnStates"/>.</summary>
    public ChurnHistory(IEnumerable<string> churnStates) => _churnStates = new HashSet<string>(churnStates, StringComparer.Ordinal);

    /// <summary>The segments that are churn states.</summary>
    public IReadOnlySet<string> ChurnStates => _churnStates;

    /// <summary>How many moves were counted since the process started: a checkpoint saves when it changed.</summary>
    public long Counted => Interlocked.Read(ref _counted);

    private long _counted;

    /// <summary>A user's segments changed from <paramref name="previous"/> to <paramref name="current"/> at <paramref name="at"/>.</summary>
    public void Moved(IReadOnlyList<string> previous, IReadOnlyList<string> current, DateTimeOffset at)
    {
        if (_churnStates.Count == 0 || previous.Count == 0 || !current.Any(_churnStates.Contains) || previous.Any(_churnStates.Contains))
        {
            return;
        }

        var hour = at.UtcTicks / TimeSpan.TicksPerHour;
        var slot = (int)(hour % Hours);
        foreach (var left in previous)
        {
            if (current.Contains(left))
            {
                continue; // still a member: the user did not leave it for the churn state
            }

            var counts = _churned.GetOrAdd(left, static _ => new long[Hours]);
            var hours = _hours.GetOrAdd(left, static _ => new long[Hours]);
            lock (counts)
            {
                if (hours[slot] != hour + 1)
                {
                    hours[slot] = hour + 1; // a slot last used a lap (90 days) ago starts again
                    counts[slot] = 0;
                }

                counts[slot]++;
            }
        }

        Interlocked.Increment(ref _counted);
    }

    /// <summary>
    /// Drops the rings of segments not in <paramref name="served"/> whose newest count has left the kept window (at
    /// <paramref name="hour"/>): a catalog renaming its segments now and then would otherwise keep them for ever.
    /// </summary>
    public void ForgetRemoved(IReadOnlySet<string> served, long hour)
    {
        ArgumentNullException.ThrowIfNull(served);
        foreach (var (segment, counts) in _churned)
        {
            if (served.Contains(segment) || !_hours.TryGetValue(segment, out var hours))
            {
                continue;
            }

            lock (counts)
            {
                if (hours.Max() - 1 > hour - Hours)
                {
                    continue;
                }
            }

            _churned.TryRemove(segment, out _);
            _hours.TryRemove(segment, out _);
            Interlocked.Increment(ref _counted); // the next checkpoint saves without them
        }
    }

    /// <summary>Each segment's hourly ring (churned, and the hour each slot holds plus one), for a checkpoint.</summary>
    internal IEnumerable<(string Segment, long[] Churned, long[] Hours)> Rings()
    {
        foreach (var (segment, counts) in _churned)
        {
            lock (counts)
            {
                yield return (segment, (long[])counts.Clone(), _hours.TryGetValue(segment, out var h) ? (long[])h.Clone() : new long[Hours]);
            }
        }
    }

    /// <summary>Restores a checkpoint's rings.</summary>
    internal void Restore(IEnumerable<(string Segment, long[] Churned, long[] Hours)> rings)
    {
        foreach (var (segment, churned, hours) in rings)
        {
            if (HourRings.Fit(churned, hours) is var (values, slots))
            {
                _churned[segment] = values;
                _hours[segment] = slots;
            }
        }
    }

    /// <summary>Members of <paramref name="segmentId"/> who churned in the hour starting at <paramref name="hour"/>.</summary>
    public long InHour(string segmentId, long hour)
    {
        if (!_churned.TryGetValue(segmentId, out var counts) || !_hours.TryGetValue(segmentId, out var hours))
        {
            return 0;
        }

        var slot = (int)(hour % Hours);
        lock (counts)
        {
            return hours[slot] == hour + 1 ? counts[slot] : 0;
        }
    }

    /// <summary>Members of <paramref name="segmentId"/> who churned in [start, end) (whole hours).</summary>
    public long Churned(string segmentId, DateTimeOffset start, DateTimeOffset end)
    {
        long sum = 0;
        var last = (end.UtcTicks + TimeSpan.TicksPerHour - 1) / TimeSpan.TicksPerHour;
        for (var hour = Math.Max(start.UtcTicks / TimeSpan.TicksPerHour, last - Hours); hour < last; hour++)
        {
            sum += InHour(segmentId, hour);
        }

        return sum;
    }
}
