using Segmentation.Core.Application.Membership;
using Segmentation.Core.Outcomes;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// KPI reports as the API answers them: the counted decisions and outcomes (<see cref="KpiStore"/>), with churn added
/// to rows grouped by segment alone — members who moved to a churn state in the range (<see cref="ChurnHistory"/>)
/// over the segment's members at its start (see <see cref="MembersAtStart"/>).
/// </summary>
public sealed class SegmentKpis(DecisionMeasurement measurement, ChurnHistory churn, SegmentSizeHistory sizes, MembershipIndex memberships)
{
    /// <summary>Answers <paramref name="query"/> with every decision served so far counted.</summary>
    public KpiReport Query(KpiQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        measurement.Drain();
        var report = measurement.Kpis.Query(query);
        if (query.GroupBy.Count > 0 && (query.GroupBy.Count != 1 || query.GroupBy[0] != KpiDimension.Segment))
        {
            return report; // churn belongs to a segment, not to a channel, variant or catalog version
        }

        var rows = report.Rows.Select(r => WithChurn(r, report.Start, report.End, query.Series)).ToList();
        var shown = rows.Select(r => r.SegmentId).ToHashSet(StringComparer.Ordinal);
        foreach (var segment in churn.ChurnStates.Count == 0 ? [] : sizes.Segments.Concat(query.SegmentId is { } only ? [only] : []).Distinct(StringComparer.Ordinal))
        {
            // A segment nobody was decided into can still lose members to churn: it gets a row of its own.
            if (!shown.Contains(segment) && (query.SegmentId is null || query.SegmentId == segment) && churn.Churned(segment, report.Start, report.End) > 0)
            {
                rows.Add(WithChurn(new KpiRow(segment, null, null, null, null, new Kpis(), []), report.Start, report.End, query.Series));
            }
        }

        if (query.Series)
        {
            measurement.Kpis.CheckSeriesPoints(rows.Sum(r => (long)r.Series.Count)); // churn adds hours to a segment's series
        }

        return report with { Rows = rows };
    }

    private KpiRow WithChurn(KpiRow row, DateTimeOffset start, DateTimeOffset end, bool series)
    {
        if (row.SegmentId is not { } segment)
        {
            return row;
        }

        var churned = churn.Churned(segment, start, end);
        var history = sizes.Points(segment, start.AddHours(-1), end); // from the hour before the range: its point is the start's
        var kpis = row.Kpis with { Churned = churned, MembersAtStart = MembersAtStart(segment, history, start, end) ?? memberships.Count(segment) + churned };
        var points = row.Series;
        if (series)
        {
            var byHour = row.Series.ToDictionary(p => p.Hour);
            var hours = new SortedDictionary<DateTimeOffset, KpiPoint>(byHour);
            var churnedFrom = churned; // from this hour to the end of the range
            for (var hour = start.UtcTicks / TimeSpan.TicksPerHour; hour * TimeSpan.TicksPerHour < end.UtcTicks; hour++)
            {
                var inHour = churn.InHour(segment, hour);
                var at = new DateTimeOffset(hour * TimeSpan.TicksPerHour, TimeSpan.Zero);
                if (inHour > 0 || byHour.ContainsKey(at))
                {
                    // Without a size point for the hour, as for the range: the members now plus those who churned since.
                    var point = hours.TryGetValue(at, out var p) ? p : new KpiPoint(at, new Kpis());
                    var members = MembersAtStart(segment, history, at, at.AddHours(1)) ?? memberships.Count(segment) + churnedFrom;
                    hours[at] = point with { Kpis = point.Kpis with { Churned = inHour, MembersAtStart = members } };
                }

                churnedFrom -= inHour;
            }

            points = [.. hours.Values];
        }

        return row with { Kpis = kpis, Series = points };
    }

    /// <summary>
    /// The segment's members at <paramref name="start"/>, from its size history (each point is the count at the end of its
    /// hour): the point of the hour just before the one <paramref name="start"/> falls in; without one, the first point in
    /// [start, end) plus those who churned from the start up to the end of that point's hour (they were members at the
    /// start and the point no longer counts them); null when the history has neither.
    /// </summary>
    internal long? MembersAtStart(string segment, IReadOnlyList<SizePoint> history, DateTimeOffset start, DateTimeOffset end)
    {
        var startHour = start.UtcTicks / TimeSpan.TicksPerHour * TimeSpan.TicksPerHour;
        var (low, high) = (0, history.Count); // the first point at or after the start's hour
        while (low < high)
        {
            var mid = (low + high) / 2;
            (low, high) = history[mid].Hour.UtcTicks < startHour ? (mid + 1, high) : (low, mid);
        }

        if (low > 0 && history[low - 1].Hour.UtcTicks == startHour - TimeSpan.TicksPerHour)
        {
            return history[low - 1].Members; // the hour just before: an older point (before a gap in sampling) could be stale
        }

        if (low < history.Count && history[low].Hour < end)
        {
            return history[low].Members + churn.Churned(segment, start, history[low].Hour.AddHours(1));
        }

        return null;
    }
}
