using System.Diagnostics;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>Options of the watch command.</summary>
internal sealed record WatchOptions(IReadOnlyList<string> SegmentIds, int Count, double Seconds, long? After = null, bool FromOldest = false, string? Stream = null);

/// <summary>
/// The catalog governance commands: validate, publish, rollback, preview, audit, segments, members, watch.
/// Each is one CatalogService call (members and watch: a paged listing and a bounded stream).
/// </summary>
internal static class CatalogCommands
{
    /// <summary>Exit code of validate and preview when the candidate has errors, and of publish when it is rejected.</summary>
    public const int Invalid = Cli.Rejected;

    private static readonly JsonFormatter JsonLine = Cli.JsonLines;

    public static async Task<int> ValidateAsync(ServiceTarget address, DirectoryInfo dir, int minSize, bool json, CancellationToken ct)
    {
        var request = new ValidateCatalogRequest { Files = { ReadCatalog(dir) } };
        if (minSize > 0)
        {
            request.Thresholds = new AuditThresholds { MinSize = minSize };
        }

        using var grpc = Cli.OpenChannel(address);
        var response = await new CatalogService.CatalogServiceClient(grpc).ValidateCatalogAsync(request, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return response.Valid ? 0 : Invalid;
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{dir.FullName}: {request.Files.Count} files, {(response.Valid ? "valid" : "INVALID")} ({Plural(response.Errors.Count, "error")}, {Plural(response.Warnings.Count, "warning")})");
        foreach (var e in response.Errors)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  error   {FormatError(e)}");
        }

        foreach (var w in response.Warnings)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  warning {FormatWarning(w)}");
        }

        Console.Write(sb.ToString());
        return response.Valid ? 0 : Invalid;
    }

    public static async Task<int> PublishAsync(ServiceTarget address, DirectoryInfo dir, string? comment, long basedOn, bool json, CancellationToken ct)
    {
        if (basedOn < 0)
        {
            throw new ArgumentException("--based-on must be a catalog version (1 or more)");
        }

        var request = new PublishCatalogRequest { Files = { ReadCatalog(dir) }, Comment = comment ?? "", BasedOnVersion = basedOn };
        using var grpc = Cli.OpenChannel(address);
        PublishCatalogResponse response;
        try
        {
            response = await new CatalogService.CatalogServiceClient(grpc).PublishCatalogAsync(request, cancellationToken: ct);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument)
        {
            var violations = ex.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations.ToList() ?? [];
            if (json)
            {
                var rejected = new BadRequest { FieldViolations = { violations } };
                Console.WriteLine(Cli.ToJson(rejected));
            }
            else
            {
                var sb = new StringBuilder();
                sb.AppendLine(CultureInfo.InvariantCulture, $"publish rejected (INVALID_ARGUMENT): {Plural(violations.Count, "error")}; the active catalog is unchanged");
                foreach (var v in violations)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"  {v.Field}: {v.Description}");
                }

                if (violations.Count == 0)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"  {ex.Status.Detail}");
                }

                await Console.Error.WriteAsync(sb.ToString());
            }

            return Invalid;
        }

        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return 0;
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"published {request.Files.Count} files from {dir.FullName} as catalog v{response.Version}{(request.Comment.Length > 0 ? $" (\"{request.Comment}\")" : "")}");
        text.AppendLine(CultureInfo.InvariantCulture, $"{Plural(response.Warnings.Count, "warning")}{(response.Warnings.Count > 0 ? ":" : "")}");
        foreach (var w in response.Warnings)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  warning {FormatWarning(w)}");
        }

        Console.Write(text.ToString());
        return 0;
    }

    public static async Task<int> RollbackAsync(ServiceTarget address, long version, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var response = await new CatalogService.CatalogServiceClient(grpc).RollbackCatalogAsync(new RollbackCatalogRequest { Version = version }, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return 0;
        }

        Console.WriteLine($"rolled back: catalog v{response.Version} is active, with the files of v{response.RestoredFrom}");
        return 0;
    }

    public static async Task<int> PreviewAsync(ServiceTarget address, FileInfo file, int sample, bool json, CancellationToken ct)
    {
        if (!file.Exists)
        {
            throw new FileNotFoundException($"no such file: {file.FullName}");
        }

        if (sample is < 0 or > 100)
        {
            throw new ArgumentException("--sample must be between 0 and 100 (0 means 10)");
        }

        var yaml = await File.ReadAllTextAsync(file.FullName, ct);
        using var grpc = Cli.OpenChannel(address);
        var r = await new CatalogService.CatalogServiceClient(grpc).PreviewSegmentAsync(new PreviewSegmentRequest { SegmentYaml = yaml, SampleSize = sample }, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(r));
            return r.Errors.Count > 0 ? Invalid : 0;
        }

        var sb = new StringBuilder();
        if (r.Errors.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{file.Name}: {Plural(r.Errors.Count, "error")}; nothing was measured");
            foreach (var e in r.Errors)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  error   {FormatError(e)}");
            }

            Console.Write(sb.ToString());
            return Invalid;
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"candidate   {file.Name}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"members     {r.MemberCount:N0} of {r.Population:N0} profiles ({Percent(r.Share)})");
        sb.AppendLine(CultureInfo.InvariantCulture, $"sample      {(r.SampleUserIds.Count == 0 ? "(none)" : string.Join(", ", r.SampleUserIds.Select(Terminal.Shown)))}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"overlaps    {(r.Overlaps.Count == 0 ? "(none)" : "with existing segments, largest first:")}");
        if (r.Overlaps.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {"segment",-30} {"in both",8} {"of candidate",13}");
            foreach (var o in r.Overlaps)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  {o.SegmentId,-30} {o.Count,8:N0} {Percent(o.ShareOfCandidate),13}");
            }
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"warnings    {(r.Warnings.Count == 0 ? "(none)" : r.Warnings.Count.ToString(CultureInfo.InvariantCulture))}");
        foreach (var w in r.Warnings)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  warning {FormatWarning(w)}");
        }

        Console.Write(sb.ToString());
        return 0;
    }

    public static async Task<int> AuditAsync(ServiceTarget address, int minSize, int top, bool json, CancellationToken ct)
    {
        var request = new AuditCatalogRequest();
        if (minSize > 0)
        {
            request.Thresholds = new AuditThresholds { MinSize = minSize };
        }

        using var grpc = Cli.OpenChannel(address);
        var r = await new CatalogService.CatalogServiceClient(grpc).AuditCatalogAsync(request, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(r));
            return 0;
        }

        var sizes = r.Segments.ToDictionary(s => s.Segment.Id, s => s.MemberCount, StringComparer.Ordinal);
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"audit of catalog v{r.CatalogVersion} against {r.Population:N0} profiles");
        sb.AppendLine();
        sb.AppendLine("sizes and shares (priority order):");
        AppendSizes(sb, r.Segments);
        sb.AppendLine();
        var pairs = r.Overlaps.OrderByDescending(o => o.Count).ThenBy(o => o.SegmentA, StringComparer.Ordinal).ThenBy(o => o.SegmentB, StringComparer.Ordinal).ToList();
        var shown = top > 0 ? pairs.Take(top).ToList() : pairs;
        sb.AppendLine(CultureInfo.InvariantCulture, $"overlap matrix: {pairs.Count} pairs with members in common{(shown.Count < pairs.Count ? $", top {shown.Count} by size (--top 0 for all)" : "")}:");
        if (shown.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {"segment a",-26} {"segment b",-26} {"both",7} {"% of a",7} {"% of b",7}");
        }

        foreach (var o in shown)
        {
            var ofA = sizes.TryGetValue(o.SegmentA, out var a) && a > 0 ? Percent((double)o.Count / a) : "-";
            var ofB = sizes.TryGetValue(o.SegmentB, out var b) && b > 0 ? Percent((double)o.Count / b) : "-";
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {o.SegmentA,-26} {o.SegmentB,-26} {o.Count,7:N0} {ofA,7} {ofB,7}");
        }

        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{Plural(r.Warnings.Count, "warning")}{(r.Warnings.Count > 0 ? ":" : "")}");
        foreach (var w in r.Warnings)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  warning {FormatWarning(w)}");
        }

        Console.Write(sb.ToString());
        return 0;
    }

    public static async Task<int> SegmentsAsync(ServiceTarget address, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var r = await new CatalogService.CatalogServiceClient(grpc).ListSegmentsAsync(new ListSegmentsRequest(), cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(r));
            return 0;
        }

        Console.WriteLine($"catalog v{r.CatalogVersion}: {r.Segments.Count} segments, {r.Population:N0} profiles with memberships (live counts, no request context)");
        Terminal.Table(
            [">priority", "id", "type", ">members", ">share"],
            r.Segments.Select(s => (IReadOnlyList<string>)[s.Segment.Priority.ToString(CultureInfo.InvariantCulture), s.Segment.Id, Cli.EnumName(s.Segment.Type), s.MemberCount.ToString("N0", CultureInfo.InvariantCulture), Percent(s.Share)]));
        return 0;
    }

    public static async Task<int> MembersAsync(ServiceTarget address, string segmentId, int pageSize, string? pageToken, bool all, bool json, CancellationToken ct)
    {
        if (pageSize is < 0 or > 1000)
        {
            throw new ArgumentException("--page-size must be between 1 and 1000 (0 means 100)");
        }

        using var grpc = Cli.OpenChannel(address);
        var client = new CatalogService.CatalogServiceClient(grpc);
        // JSON is one object, so its pages are gathered; plain ids are written page by page as they arrive (a segment of
        // millions is not held in memory, and what was fetched before a Ctrl+C is already out).
        var merged = new ListSegmentMembersResponse();
        var pages = 0;
        long written = 0;
        var sb = new StringBuilder();
        var listing = Cli.Pages(
            pageToken ?? "",
            all,
            token => client.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = segmentId, PageSize = pageSize, PageToken = token }, cancellationToken: ct).ResponseAsync,
            page => page.NextPageToken);
        await foreach (var page in Cli.GoOnFromAfterFailure(listing, () => json ? "" : merged.NextPageToken, () => $"{written:N0} ids"))
        {
            pages++;
            merged.Total = page.Total;
            merged.NextPageToken = page.NextPageToken;
            if (json)
            {
                merged.UserIds.Add(page.UserIds);
                continue;
            }

            sb.Clear();
            foreach (var id in page.UserIds)
            {
                sb.AppendLine(Terminal.Shown(id));
            }

            Console.Write(sb.ToString());
            await Console.Out.FlushAsync(ct);
            written += page.UserIds.Count;
        }

        if (json)
        {
            Console.WriteLine(Cli.ToJson(merged));
            return 0;
        }

        var more = merged.NextPageToken.Length > 0 ? $"; next page: --page-token {Terminal.Shown(merged.NextPageToken)} (or --all)" : "";
        await Console.Error.WriteLineAsync($"{segmentId}: {written:N0} of {merged.Total:N0} members in {Plural(pages, "page")}{more}");
        return 0;
    }

    public static async Task<int> WatchAsync(ServiceTarget address, WatchOptions o, bool json, CancellationToken ct)
    {
        if (o.Seconds is <= 0 or > 86_400 || double.IsNaN(o.Seconds))
        {
            throw new ArgumentException("--seconds must be more than 0 and at most 86400: the watch is always bounded");
        }

        if (o.Count < 0)
        {
            throw new ArgumentException("--count must be 0 (no limit) or more");
        }

        using var grpc = Cli.OpenChannel(address);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(TimeSpan.FromSeconds(o.Seconds));
        if (o.After is < 0)
        {
            throw new ArgumentException("--after must be an offset of 0 or more (the last one a consumer handled)");
        }

        var request = new WatchSegmentChangesRequest { SegmentIds = { o.SegmentIds }, IncludeTriggers = true, StreamId = o.Stream ?? "" };
        if (o.After is { } after)
        {
            request.AfterOffset = after;
        }
        else if (o.FromOldest)
        {
            request.FromOldest = true;
        }

        var watched = o.SegmentIds.Count == 0 ? "all segments" : string.Join(", ", o.SegmentIds);
        await Console.Error.WriteLineAsync(
            $"watching {watched} for up to {o.Seconds.ToString("0.#", CultureInfo.InvariantCulture)} s{(o.Count > 0 ? $" or {o.Count} changes" : "")}...");
        var clock = Stopwatch.StartNew();
        var seen = 0;
        var stop = "time limit";
        WatchSegmentChangesResponse? last = null;
        using (var call = new CatalogService.CatalogServiceClient(grpc).WatchSegmentChanges(request, cancellationToken: limit.Token))
        {
            try
            {
                await foreach (var c in call.ResponseStream.ReadAllAsync(limit.Token))
                {
                    if (seen++ == 0 && !json)
                    {
                        await Console.Error.WriteLineAsync($"stream {c.StreamId}: resume with --after OFFSET --stream {c.StreamId}");
                    }

                    last = c;
                    Console.WriteLine(json
                        ? JsonLine.Format(c)
                        : $"#{c.Offset,-8} {Cli.Time(c.ChangedAt)}  {Kind(c),-9}  {c.SegmentId,-26} user {Terminal.Shown(c.UserId),-12} catalog v{c.CatalogVersion}  cause {Terminal.Shown(c.Cause)}");
                    if (o.Count > 0 && seen >= o.Count)
                    {
                        stop = "count reached";
                        break;
                    }
                }

                if (stop != "count reached")
                {
                    stop = "server ended the stream";
                }
            }
            catch (Exception ex) when (limit.IsCancellationRequested && !ct.IsCancellationRequested &&
                                       ex is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled or StatusCode.DeadlineExceeded })
            {
                stop = "time limit";
            }
            catch (RpcException ex) when (last is not null)
            {
                // Failed part-way (the server restarting): "run it again" without the offset would start from now and
                // skip every change made in between. Past the stream's retention (OUT_OF_RANGE) that offset is gone too.
                await Console.Error.WriteLineAsync(ex.StatusCode == StatusCode.OutOfRange
                    ? $"{Plural(seen, "change")} before the failure below, the last at offset {last.Offset.ToString(CultureInfo.InvariantCulture)}: the entries after it are no longer kept, so resynchronise from the current members (segctl members) and watch from now, or from the oldest kept (--from-oldest)"
                    : $"{Plural(seen, "change")} before the failure below; resume with --after {last.Offset.ToString(CultureInfo.InvariantCulture)} --stream {last.StreamId}");
                throw;
            }
        }

        // Where to go on from: the last entry printed (the first entry's line gave the stream only).
        var resume = last is null ? "" : $"; resume with --after {last.Offset.ToString(CultureInfo.InvariantCulture)} --stream {last.StreamId}";
        await Console.Error.WriteLineAsync(
            $"{Plural(seen, "change")} in {clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s (stopped: {stop}){resume}");
        return 0;
    }

    private static string Kind(WatchSegmentChangesResponse c) => c.Kind switch
    {
        MembershipChangeKind.Entered => "entered",
        MembershipChangeKind.Left => "left",
        MembershipChangeKind.Triggered => "triggered " + c.TriggerId,
        _ => c.Kind.ToString(),
    };

    /// <summary>Every *.yaml / *.yml file under the directory (recursively), named relative to it with '/' separators, in name order.</summary>
    internal static List<CatalogFile> ReadCatalog(DirectoryInfo dir)
    {
        if (!dir.Exists)
        {
            throw new DirectoryNotFoundException($"no such directory: {dir.FullName}");
        }

        var files = Directory.EnumerateFiles(dir.FullName, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            .Select(f => new CatalogFile
            {
                Name = Path.GetRelativePath(dir.FullName, f).Replace(Path.DirectorySeparatorChar, '/'),
                Content = File.ReadAllText(f),
            })
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
        return files.Count == 0 ? throw new ArgumentException($"no *.yaml or *.yml files under {dir.FullName}") : files;
    }

    /// <summary><c>file:line:column segment 'x' at clause: message</c>, leaving out the parts the issue does not have.</summary>
    internal static string FormatError(CatalogIssue e)
    {
        var sb = new StringBuilder(e.File.Length > 0 ? e.File : "(catalog)");
        if (e.Line > 0)
        {
            sb.Append(':').Append(e.Line.ToString(CultureInfo.InvariantCulture));
            if (e.Column > 0)
            {
                sb.Append(':').Append(e.Column.ToString(CultureInfo.InvariantCulture));
            }
        }

        if (e.Segment.Length > 0)
        {
            sb.Append(" segment '").Append(e.Segment).Append('\'');
        }

        if (e.Clause.Length > 0)
        {
            sb.Append(" at ").Append(e.Clause);
        }

        return sb.Append(": ").Append(e.Message).ToString();
    }

    /// <summary><c>[code] segment 'x' (with 'y'): message</c>.</summary>
    internal static string FormatWarning(CatalogIssue w)
    {
        var sb = new StringBuilder();
        if (w.File.Length > 0)
        {
            sb.Append(w.File).Append(':').Append(w.Line.ToString(CultureInfo.InvariantCulture)).Append(' ');
        }

        sb.Append('[').Append(w.Code).Append(']');
        if (w.Segment.Length > 0)
        {
            sb.Append(" segment '").Append(w.Segment).Append('\'');
        }

        if (w.OtherSegment.Length > 0)
        {
            sb.Append(" (with '").Append(w.OtherSegment).Append("')");
        }

        return sb.Append(": ").Append(w.Message).ToString();
    }

    internal static string Percent(double share) => (share * 100).ToString(share is > 0 and < 0.001 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + "%";

    internal static string Plural(long n, string noun) => n.ToString("N0", CultureInfo.InvariantCulture) + " " + noun + (n == 1 ? "" : "s");

    private static void AppendSizes(StringBuilder sb, IEnumerable<SegmentMembers> segments)
    {
        sb.AppendLine(CultureInfo.InvariantCulture, $"  {"priority",8}  {"id",-30} {"type",-14} {"members",8} {"share",7}");
        foreach (var s in segments)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {s.Segment.Priority,8}  {s.Segment.Id,-30} {Cli.EnumName(s.Segment.Type),-14} {s.MemberCount,8:N0} {Percent(s.Share),7}");
        }
    }
}
