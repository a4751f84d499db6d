using Segmentation.Core.Application.Membership;
using Segmentation.Core.Outcomes;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// KPI reports as the API answers them: the counted decisions and outcomes (<see cref="KpiStore"/>), with churn added
/// to rows grouped by segment alone — members who moved to a churn state in the range (<see cref="ChurnHistory"/>)
/// over the segment's members at its start (the first hourly point of <see cref="SegmentSizeHistory"/> in the range;
/// when the history has none, the live count plus the range's churned, a lower bound).
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

        return report with { Rows = rows };
    }

    private KpiRow WithChurn(KpiRow row, DateTimeOffset start, DateTimeOffset end, bool series)
    {
        if (row.SegmentId is not { } segment)
        {
            return row;
        }

        var churned = churn.Churned(segment, start, end);
        var kpis = row.Kpis with { Churned = churned, MembersAtStart = MembersAt(segment, start, end, churned) };
        var points = row.Series;
        if (series)
        {
            var byHour = row.Series.ToDictionary(p => p.Hour);
            var hours = new SortedDictionary<DateTimeOffset, KpiPoint>(byHour);
            var sized = sizes.Points(segment, start, end).ToDictionary(p => p.Hour, p => p.Members);
            for (var hour = start.UtcTicks / TimeSpan.TicksPerHour; hour * TimeSpan.TicksPerHour < end.UtcTicks; hour++)
            {
                var inHour = churn.InHour(segment, hour);
                var at = new DateTimeOffset(hour * TimeSpan.TicksPerHour, TimeSpan.Zero);
                if (inHour > 0 || byHour.ContainsKey(at))
                {
                    var point = hours.TryGetValue(at, out var p) ? p : new KpiPoint(at, new Kpis());
                    hours[at] = point with { Kpis = point.Kpis with { Churned = inHour, MembersAtStart = sized.GetValueOrDefault(at) } };
                }
            }

            points = [.. hours.Values];
        }

        return row with { Kpis = kpis, Series = points };
    }

    // The first size point in the range; without one (a range before the history), the members now plus those who
    // churned in the range — a lower bound of the members at its start.
    private long MembersAt(string segment, DateTimeOffset start, DateTimeOffset end, long churned) =>
        sizes.Points(segment, start, end) is { Count: > 0 } points ? points[0].Members : memberships.Count(segment) + churned;
}
