using System.Globalization;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using static Segmentation.Cli.CsvText;

namespace Segmentation.Cli;

/// <summary>segctl quality: how usable the data is (InsightsService.GetDataQuality).</summary>
internal static class QualityCommand
{
    public static async Task<int> RunAsync(ServiceTarget target, int days, bool json, bool csv, CancellationToken ct)
    {
        var end = DateTimeOffset.UtcNow;
        var request = new GetDataQualityRequest
        {
            Start = Timestamp.FromDateTimeOffset(end.AddDays(-Commands.CheckDays(days))),
            End = Timestamp.FromDateTimeOffset(end),
        };
        using var grpc = Cli.OpenChannel(target);
        var r = await new InsightsService.InsightsServiceClient(grpc).GetDataQualityAsync(request, cancellationToken: ct);
        Console.Write(json ? Cli.ToJson(r) + Environment.NewLine : csv ? Csv(r) : Text(r, days));
        return 0;
    }

    // Every figure as (metric, key, value): one shape a spreadsheet or BI tool can pivot.
    private static IEnumerable<(string Metric, string Key, string Value)> Figures(GetDataQualityResponse r)
    {
        yield return ("events", "accepted", N(r.EventsAccepted));
        yield return ("events", "duplicate", N(r.EventsDuplicate));
        yield return ("events", "rejected", N(r.EventsRejected));
        foreach (var x in r.Rejections)
        {
            yield return ("rejected_by_reason", x.Reason, N(x.Events));
        }

        foreach (var c in r.Completeness)
        {
            yield return ("completeness", c.Field, R(c.Share));
        }

        yield return ("profiles", "count", N(r.Profiles));
        yield return ("profiles", "declared_share", R(r.DeclaredShare));
        foreach (var b in r.Freshness)
        {
            yield return ("freshness", b.Label, N(b.Profiles));
        }

        yield return ("freshness", "median_age_hours", r.MedianAge is null ? "" : R(r.MedianAge.ToTimeSpan().TotalHours));
        yield return ("freshness", "p90_age_hours", r.P90Age is null ? "" : R(r.P90Age.ToTimeSpan().TotalHours));
        yield return ("decisions", "start", r.Start is null ? "" : r.Start.ToDateTimeOffset().ToString("O", CultureInfo.InvariantCulture));
        yield return ("decisions", "end", r.End is null ? "" : r.End.ToDateTimeOffset().ToString("O", CultureInfo.InvariantCulture));
        yield return ("decisions", "count", N(r.Decisions));
        yield return ("decisions", "fallback_rate", R(r.FallbackRate));
        yield return ("profiles", "unsegmented_share", r.HasUnsegmentedShare ? R(r.UnsegmentedShare) : "");
    }

    private static string Csv(GetDataQualityResponse r)
    {
        var sb = new StringBuilder("metric,key,value\n");
        foreach (var (metric, key, value) in Figures(r))
        {
            sb.Append(metric).Append(',').Append(Quote(key)).Append(',').Append(value).Append('\n');
        }

        return sb.ToString();
    }

    private static string Text(GetDataQualityResponse r, int days)
    {
        var sb = new StringBuilder();
        var received = r.EventsAccepted + r.EventsDuplicate + r.EventsRejected;
        sb.AppendLine(CultureInfo.InvariantCulture, $"Data quality at {r.MeasuredAt.ToDateTimeOffset():yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Events since the service started: {r.EventsAccepted:N0} accepted, {r.EventsDuplicate:N0} duplicates ({Share(r.EventsDuplicate, received)}), {r.EventsRejected:N0} rejected ({Share(r.EventsRejected, received)})");
        foreach (var x in r.Rejections)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  rejected for {x.Reason,-28} {x.Events,10:N0}");
        }

        sb.AppendLine("Completeness of accepted events:");
        foreach (var c in r.Completeness)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {c.Field,-28} {c.Share,8:P1}");
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"Profiles: {r.Profiles:N0}; with declared (zero-party) data: {r.DeclaredShare:P1}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Freshness (time since each profile's last event): median {Age(r.MedianAge)}, 90th percentile {Age(r.P90Age)}");
        foreach (var b in r.Freshness)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {b.Label,-28} {b.Profiles,10:N0} {Share(b.Profiles, r.Profiles),7}");
        }

        // The range the service used (rounded to whole hours), not the one asked for.
        var range = r.Start is not null && r.End is not null
            ? $"from {r.Start.ToDateTimeOffset():yyyy-MM-dd HH:mm} to {r.End.ToDateTimeOffset():yyyy-MM-dd HH:mm} UTC"
            : $"in the last {days} day(s)";
        sb.AppendLine(CultureInfo.InvariantCulture, $"Signal usability: {r.Decisions:N0} decisions {range}, {r.FallbackRate:P1} of those outside the holdout fell back to the fallback segment; profiles matching no other segment: {(r.HasUnsegmentedShare ? r.UnsegmentedShare.ToString("P1", CultureInfo.CurrentCulture) : "(memberships are being rebuilt)")}");
        return sb.ToString();
    }

    private static string Share(long part, long whole) => whole == 0 ? "-" : ((double)part / whole).ToString("P1", CultureInfo.CurrentCulture);

    private static string Age(Duration? d) => d is null ? "-" : d.ToTimeSpan() switch
    {
        var t when t < TimeSpan.FromHours(1) => $"{t.TotalMinutes:0} min",
        var t when t < TimeSpan.FromDays(2) => $"{t.TotalHours:0.#} h",
        var t => $"{t.TotalDays:0.#} days",
    };
}
