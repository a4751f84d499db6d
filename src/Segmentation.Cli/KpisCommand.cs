using System.Globalization;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;
using static Segmentation.Cli.CsvText;

namespace Segmentation.Cli;

/// <summary>segctl kpis: KPIs per segment (and variant, channel, catalog version) from InsightsService.GetKpis.</summary>
internal static class KpisCommand
{
    /// <summary>Output formats of the command.</summary>
    public enum Format
    {
        /// <summary>An aligned table.</summary>
        Table,

        /// <summary>The response as JSON (proto3 JSON mapping).</summary>
        Json,

        /// <summary>CSV with a header row, one line per row (and per hour with --series), for BI tools.</summary>
        Csv,
    }

    public static async Task<int> RunAsync(ServiceTarget target, int days, string[] groupBy, string? segment, bool series, Format format, CancellationToken ct)
    {
        var request = new GetKpisRequest { IncludeSeries = series, SegmentId = segment ?? "" };
        var end = DateTimeOffset.UtcNow;
        request.End = Timestamp.FromDateTimeOffset(end);
        request.Start = Timestamp.FromDateTimeOffset(end.AddDays(-Commands.CheckDays(days)));

        foreach (var name in groupBy)
        {
            request.GroupBy.Add(name.ToLowerInvariant() switch
            {
                "segment" => KpiDimension.Segment,
                "variant" => KpiDimension.Variant,
                "channel" => KpiDimension.Channel,
                "version" or "catalog_version" => KpiDimension.CatalogVersion,
                "arm" => KpiDimension.Arm,
                _ => throw new ArgumentException($"--by '{name}': use segment, variant, channel, version or arm"),
            });
        }

        using var grpc = Cli.OpenChannel(target);
        var r = await new InsightsService.InsightsServiceClient(grpc).GetKpisAsync(request, cancellationToken: ct);
        switch (format)
        {
            case Format.Json:
                Console.WriteLine(Cli.ToJson(r));
                break;
            case Format.Csv:
                Console.Write(Csv(r));
                break;
            default:
                Table(r);
                break;
        }

        return 0;
    }

    private static readonly string[] Columns =
    [
        "segment_id", "variant", "variant_id", "channel", "catalog_version", "experiment_id", "arm_id", "hour", "decisions", "reach", "impressions", "clicks", "ctr",
        "conversions", "conversion_rate", "revenue", "revenue_per_user", "dismisses", "email_sends", "email_opens", "email_clicks", "email_unsubscribes", "open_rate", "unsubscribe_rate",
        "churned", "members_at_start", "churn_rate",
    ];

    private static string Csv(GetKpisResponse r)
    {
        var sb = new StringBuilder(string.Join(',', Columns)).Append('\n');
        foreach (var row in r.Rows)
        {
            if (row.Series.Count == 0)
            {
                Line(row, "", row.Kpis);
            }

            foreach (var point in row.Series)
            {
                Line(row, point.Hour.ToDateTimeOffset().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), point.Kpis);
            }
        }

        return sb.ToString();

        void Line(KpiRow row, string hour, Kpis k)
        {
            string[] cells =
            [
                row.SegmentId, Variant(row.Variant), row.VariantId, row.Channel, row.CatalogVersion == 0 ? "" : N(row.CatalogVersion), row.ExperimentId, row.ArmId, hour,
                N(k.Decisions), N(k.Reach), N(k.Impressions), N(k.Clicks), R(k.Ctr), N(k.Conversions), R(k.ConversionRate), R(k.Revenue), R(k.RevenuePerUser),
                N(k.Dismisses), N(k.EmailSends), N(k.EmailOpens), N(k.EmailClicks), N(k.EmailUnsubscribes), R(k.OpenRate), R(k.UnsubscribeRate),
                N(k.Churned), N(k.MembersAtStart), R(k.ChurnRate),
            ];
            sb.AppendJoin(',', cells.Select(Quote)).Append('\n');
        }
    }

    private static void Table(GetKpisResponse r)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"KPIs from {r.Start.ToDateTimeOffset():yyyy-MM-dd HH:mm} to {r.End.ToDateTimeOffset():yyyy-MM-dd HH:mm} UTC; outcomes credited to no decision: {r.UnattributedOutcomes:N0}; decisions that fell back: {r.FallbackRate:P1}"));
        Terminal.Table(
            ["group", ">decisions", ">reach", ">impr.", ">clicks", ">CTR", ">conv.", ">conv.%", ">revenue", ">rev/user", ">dismiss", ">churned", ">churn%"],
            r.Rows.Select(row => Cells(Group(row), row.Kpis)).Append(Cells("total", r.Total)));

        static IReadOnlyList<string> Cells(string group, Kpis k) =>
        [
            group.Length > 40 ? group[..40] : group,
            .. new object[] { k.Decisions, k.Reach, k.Impressions, k.Clicks }.Select(n => string.Format(CultureInfo.InvariantCulture, "{0:N0}", n)),
            k.Ctr.ToString("P1", CultureInfo.InvariantCulture),
            k.Conversions.ToString("N0", CultureInfo.InvariantCulture),
            k.ConversionRate.ToString("P1", CultureInfo.InvariantCulture),
            k.Revenue.ToString("N2", CultureInfo.InvariantCulture),
            k.RevenuePerUser.ToString("N2", CultureInfo.InvariantCulture),
            k.Dismisses.ToString("N0", CultureInfo.InvariantCulture),
            k.Churned.ToString("N0", CultureInfo.InvariantCulture),
            k.ChurnRate.ToString("P1", CultureInfo.InvariantCulture),
        ];
    }

    private static string Group(KpiRow row)
    {
        var parts = new List<string>();
        if (row.SegmentId.Length > 0)
        {
            parts.Add(row.SegmentId);
        }

        if (row.Variant != VariantKind.Unspecified)
        {
            parts.Add(Variant(row.Variant));
        }

        if (row.Channel.Length > 0)
        {
            parts.Add(row.Channel);
        }

        if (row.CatalogVersion > 0)
        {
            parts.Add("v" + N(row.CatalogVersion));
        }

        if (row.ArmId.Length > 0)
        {
            parts.Add($"{row.ExperimentId}:{row.ArmId}");
        }

        return string.Join(" / ", parts);
    }

    private static string Variant(VariantKind kind) => kind == VariantKind.Unspecified ? "" : kind.ToString().ToLowerInvariant();
}

/// <summary>segctl sizes: member counts per segment over time (InsightsService.GetSegmentSizes).</summary>
internal static class SizesCommand
{
    public static async Task<int> RunAsync(ServiceTarget target, int days, string? segment, bool json, CancellationToken ct)
    {
        var end = DateTimeOffset.UtcNow;
        var request = new GetSegmentSizesRequest
        {
            Start = Timestamp.FromDateTimeOffset(end.AddDays(-Commands.CheckDays(days))),
            End = Timestamp.FromDateTimeOffset(end),
            SegmentId = segment ?? "",
        };
        using var grpc = Cli.OpenChannel(target);
        var client = new InsightsService.InsightsServiceClient(grpc);
        GetSegmentSizesResponse r;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                r = await AllPagesAsync(client, request, ct);
                break;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument && request.PageToken.Length > 0 && attempt < 3)
            {
                // A page token holds the catalog version: a publish between two pages refuses the next one. Start again.
                await Console.Error.WriteLineAsync("note: a catalog was published while the pages were read; reading them again from the first");
                request.PageToken = "";
            }
        }

        if (json)
        {
            Console.WriteLine(Cli.ToJson(r));
            return 0;
        }

        Console.WriteLine($"member counts over the last {days} days (hourly points; live counts, no request context)");
        Terminal.Table(
            ["segment", ">points", ">first", ">now", ">change", ">min", ">max"],
            r.Segments.Select(s =>
            {
                if (s.Points.Count == 0)
                {
                    return (IReadOnlyList<string>)[s.SegmentId, "0", "", "", "", "", ""];
                }

                var (first, now) = (s.Points[0].Members, s.Points[^1].Members);
                return [s.SegmentId, s.Points.Count.ToString(CultureInfo.InvariantCulture), N(first), N(now), (now - first).ToString("+#,0;-#,0;0", CultureInfo.InvariantCulture), N(s.Points.Min(p => p.Members)), N(s.Points.Max(p => p.Members))];
            }));
        return 0;

        static string N(long n) => n.ToString("N0", CultureInfo.InvariantCulture);
    }

    // Every page, as one answer.
    private static async Task<GetSegmentSizesResponse> AllPagesAsync(InsightsService.InsightsServiceClient client, GetSegmentSizesRequest request, CancellationToken ct)
    {
        var r = await client.GetSegmentSizesAsync(request, cancellationToken: ct);
        while (r.NextPageToken.Length > 0)
        {
            request.PageToken = r.NextPageToken;
            var next = await client.GetSegmentSizesAsync(request, cancellationToken: ct);
            r.Segments.Add(next.Segments);
            r.NextPageToken = next.NextPageToken;
        }

        return r;
    }
}
