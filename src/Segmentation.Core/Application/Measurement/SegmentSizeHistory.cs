using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Measurement;

/// <summary>A page of segments' size histories.</summary>
/// <param name="Segments">Each segment's id and hourly points, oldest first.</param>
/// <param name="NextPageToken">The token of the next page; empty on the last.</param>
public sealed record SizePage(IReadOnlyList<(string SegmentId, IReadOnlyList<SizePoint> Points)> Segments, string NextPageToken);

/// <summary>One point of a segment's size history.</summary>
/// <param name="Hour">Start of the hour (UTC) the count was taken in.</param>
/// <param name="Members">Members of the segment then.</param>
public readonly record struct SizePoint(DateTimeOffset Hour, long Members);

/// <summary>
/// Member counts per segment over time, so a segment can be seen growing, shrinking or going stale: the
/// membership index's live count of every segment of the serving catalog, taken once an hour (the last
/// sample of an hour stands for it) and kept for <see cref="KpiStore.RetentionDays"/> days in a ring per
/// segment (16 bytes an hour: the count and the hour it is of). Samples are skipped while the index is being rebuilt after a restart.
/// </summary>
public sealed class SegmentSizeHistory(MembershipIndex memberships, CatalogProvider catalogs, TimeProvider time, ChurnHistory? churn = null)
{
    private const int Hours = HourRings.Hours;

    private readonly ConcurrentDictionary<string, long[]> _members = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long[]> _hours = new(StringComparer.Ordinal);

    /// <summary>Records every segment's member count for the current hour; false when the index is not complete.</summary>
    public bool Sample()
    {
        if (!memberships.IsComplete)
        {
            return false;
        }

        var hour = time.GetUtcNow().UtcTicks / TimeSpan.TicksPerHour;
        foreach (var segment in catalogs.Current.Segments)
        {
            var members = _members.GetOrAdd(segment.Id, static _ => new long[Hours]);
            var hours = _hours.GetOrAdd(segment.Id, static _ => new long[Hours]);
            var slot = (int)(hour % Hours);
            var count = memberships.Count(segment.Id);
            if (Volatile.Read(ref members[slot]) != count || Volatile.Read(ref hours[slot]) != hour + 1)
            {
                Volatile.Write(ref members[slot], count);
                Volatile.Write(ref hours[slot], hour + 1); // 0: never sampled
                Interlocked.Increment(ref _changes);
            }
        }

        if (Interlocked.Exchange(ref _prunedHour, hour) != hour)
        {
            ForgetRemoved(hour);
        }

        return true;
    }

    private long _prunedHour;

    // Once an hour: the rings of segments no catalog serves any more whose newest point has left the kept window are
    // dropped, with their churn rings (a catalog renaming its segments now and then would otherwise keep 35 KB per old
    // id for ever).
    private void ForgetRemoved(long hour)
    {
        var served = catalogs.Current.Segments.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var (segment, hours) in _hours)
        {
            if (!served.Contains(segment) && hours.Max() - 1 <= hour - Hours)
            {
                _members.TryRemove(segment, out _);
                _hours.TryRemove(segment, out _);
                Interlocked.Increment(ref _changes);
            }
        }

        churn?.ForgetRemoved(served, hour); // its churn history likewise
    }

    /// <summary>How many points were written or changed since the process started: a checkpoint saves when it changed.</summary>
    public long Changes => Interlocked.Read(ref _changes);

    private long _changes;

    /// <summary>The hourly points of <paramref name="segmentId"/> in [start, end), oldest first.</summary>
    public IReadOnlyList<SizePoint> Points(string segmentId, DateTimeOffset start, DateTimeOffset end)
    {
        if (!_members.TryGetValue(segmentId, out var members) || !_hours.TryGetValue(segmentId, out var hours))
        {
            return [];
        }

        // The ring holds the hours up to now: a range reaching into the future is cut there (and one starting further back
        // than the ring reaches, at its oldest hour), so a wide range costs no more than the kept hours.
        var points = new List<SizePoint>();
        var now = time.GetUtcNow().UtcTicks / TimeSpan.TicksPerHour;
        var first = Math.Max(start.UtcTicks / TimeSpan.TicksPerHour, now - Hours + 1);
        for (var hour = first; hour <= now && hour * TimeSpan.TicksPerHour < end.UtcTicks; hour++)
        {
            var slot = (int)(hour % Hours);
            if (Volatile.Read(ref hours[slot]) == hour + 1)
            {
                points.Add(new SizePoint(new DateTimeOffset(hour * TimeSpan.TicksPerHour, TimeSpan.Zero), Volatile.Read(ref members[slot])));
            }
        }

        return points;
    }

    /// <summary>Segments per page of <see cref="Page"/> when none is asked for.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>
    /// Most segments per page of <see cref="Page"/>: 90 days of hourly points are about 30 KB per segment on the wire, so
    /// a full page stays under a gRPC client's default 4 MB message limit.
    /// </summary>
    public const int MaxPageSize = 100;

    /// <summary>
    /// The size histories of the serving catalog's segments in its priority order, a page at a time: from where
    /// <paramref name="pageToken"/> says (the first when empty; a token of another catalog version is refused), at most <paramref name="pageSize"/> of them (0 means
    /// <see cref="DefaultPageSize"/>); or of <paramref name="segmentId"/> alone, when given — also a segment a later catalog
    /// removed, while its history is kept.
    /// </summary>
    /// <exception cref="ValidationException">The page size is out of range, or the token is not one this returned for the serving catalog version.</exception>
    /// <exception cref="NotFoundException"><paramref name="segmentId"/> is neither in the serving catalog nor in the history.</exception>
    public SizePage Page(DateTimeOffset start, DateTimeOffset end, string? segmentId, int pageSize, string? pageToken)
    {
        if (string.IsNullOrEmpty(segmentId) && pageSize is < 0 or > MaxPageSize) // ignored with one segment, as documented
        {
            throw new ValidationException("page_size", $"must be between 1 and {MaxPageSize} (0 means {DefaultPageSize})");
        }

        if (!string.IsNullOrEmpty(segmentId))
        {
            if (!catalogs.Current.Segments.Any(s => s.Id == segmentId) && !_members.ContainsKey(segmentId))
            {
                throw new NotFoundException($"segment '{segmentId}' is not in the serving catalog and has no size history");
            }

            return new SizePage([(segmentId, Points(segmentId, start, end))], "");
        }

        // A token is the catalog version and the position of the page's first segment: a publish between two pages
        // (segments inserted, removed or reordered) would make a position skip or repeat segments, so it is refused.
        var catalog = catalogs.Current;
        var segments = catalog.Segments;
        var from = 0;
        if (!string.IsNullOrEmpty(pageToken))
        {
            var parts = pageToken.Split('.');
            if (parts.Length != 2 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var version)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out from) || from >= segments.Count)
            {
                throw new ValidationException("page_token", "not a token this service returned");
            }

            if (version != catalog.Version)
            {
                throw new ValidationException("page_token", $"the catalog changed since the previous page (version {version}, now {catalog.Version}): start again without a token");
            }
        }

        var size = pageSize == 0 ? DefaultPageSize : pageSize;
        var page = segments.Skip(from).Take(size).Select(s => (s.Id, Points(s.Id, start, end))).ToList();
        return new SizePage(page, from + size < segments.Count ? string.Create(CultureInfo.InvariantCulture, $"{catalog.Version}.{from + size}") : "");
    }

    /// <summary>Each segment's hourly ring (member counts, and the hour each slot holds plus one), for a checkpoint.</summary>
    internal IEnumerable<(string Segment, long[] Members, long[] Hours)> Rings() =>
        _members.Select(m => (m.Key, (long[])m.Value.Clone(), _hours.TryGetValue(m.Key, out var h) ? (long[])h.Clone() : new long[Hours]));

    /// <summary>Restores a checkpoint's rings.</summary>
    internal void Restore(IEnumerable<(string Segment, long[] Members, long[] Hours)> rings)
    {
        foreach (var (segment, members, hours) in rings)
        {
            if (HourRings.Fit(members, hours) is var (values, slots))
            {
                _members[segment] = values;
                _hours[segment] = slots;
            }
        }
    }

    /// <summary>Ids of the segments with history, in no particular order.</summary>
    public IEnumerable<string> Segments => _members.Keys;
}

/// <summary>Samples <see cref="SegmentSizeHistory"/> once a minute (so each hour's point is at most a minute old) while the host runs.</summary>
public sealed class SegmentSizeSampler(SegmentSizeHistory history) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        history.Sample();
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1));
        while (await timer.NextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            history.Sample();
        }
    }
}
