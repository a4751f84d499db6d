using System.Globalization;
using System.Text;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary><c>segctl audit-log</c>: the admin audit trail (AuditService.ListAuditEntries), newest first.</summary>
internal static class AuditLogCommand
{
    /// <summary>The filters and paging of one listing.</summary>
    public sealed record Options(string? Action, string? Actor, string? User, int PageSize, string? PageToken, bool All);

    public static async Task<int> RunAsync(ServiceTarget address, Options o, bool json, CancellationToken ct)
    {
        if (o.PageSize is < 0 or > 1000)
        {
            throw new ArgumentException("--page-size must be between 1 and 1000 (0 means 100)");
        }

        using var grpc = Cli.OpenChannel(address);
        var client = new AuditService.AuditServiceClient(grpc);
        // JSON is one object, so its pages are gathered; the table is written page by page as they arrive.
        var merged = new ListAuditEntriesResponse();
        long written = 0;
        var sb = new StringBuilder();
        if (!json)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"#",6}  {"time (UTC)",-20}  {"actor",-12}  {"action",-22}  {"outcome",-18}  {"user",-14}  detail"));
        }

        var listing = Cli.Pages(
            o.PageToken ?? "",
            o.All,
            token => client.ListAuditEntriesAsync(new ListAuditEntriesRequest { Action = o.Action ?? "", Actor = o.Actor ?? "", UserId = o.User ?? "", PageSize = o.PageSize, PageToken = token }, cancellationToken: ct).ResponseAsync,
            page => page.NextPageToken);
        await foreach (var page in Cli.GoOnFromAfterFailure(listing, () => json ? "" : merged.NextPageToken, () => $"{written:N0} entries"))
        {
            merged.NextPageToken = page.NextPageToken;
            if (json)
            {
                merged.Entries.Add(page.Entries);
                continue;
            }

            sb.Clear();
            foreach (var e in page.Entries)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"{e.Sequence,6}  {e.Time.ToDateTimeOffset():yyyy-MM-dd HH:mm:ss}  {e.Actor,-12}  {e.Action,-22}  {e.Outcome,-18}  {(e.UserId.Length == 0 ? "-" : Terminal.Shown(e.UserId)),-14}  {Terminal.Shown(e.Detail)}");
            }

            Console.Write(sb.ToString());
            await Console.Out.FlushAsync(ct);
            written += page.Entries.Count;
        }

        if (json)
        {
            Console.WriteLine(Cli.ToJson(merged));
            return 0;
        }

        var more = merged.NextPageToken.Length > 0 ? $"; older entries: --page-token {merged.NextPageToken} (or --all)" : "";
        await Console.Error.WriteLineAsync($"{written:N0} entries{more}");
        return 0;
    }
}
