using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>
/// The commands about one user or a list of users: decide-batch, traits, identify, consent, export and forget.
/// Each is one call of the public API; input is checked here only where the CLI can say it better (a trait
/// written as name=value, a purpose name), everything else is the service's to judge.
/// </summary>
internal static class UserCommands
{
    /// <summary>Most user ids one decide-batch sends (the service's own limit per call).</summary>
    public const int MaxBatchUsers = 10_000;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// <c>segctl decide-batch</c>: decides for every user id read from <paramref name="source"/> (one per line; "-" is
    /// standard input), streaming one line per user in request order as the service answers. A stream that ends before
    /// every user is answered says how many were and which to send again (all of them would decide the answered users
    /// a second time, and count it), and writes those ids to <paramref name="unanswered"/> when given.
    /// </summary>
    public static async Task<int> DecideBatchAsync(ServiceTarget address, string source, string? channel, string? purpose, bool json, FileInfo? unanswered, CancellationToken ct)
    {
        var ids = await ReadIdsAsync(source, ct);
        if (ids.Count == 0)
        {
            throw new ArgumentException($"no user ids in {(source == "-" ? "standard input" : source)}: one id per line");
        }

        if (ids.Count > MaxBatchUsers)
        {
            throw new ArgumentException($"more than {MaxBatchUsers:N0} user ids: at most {MaxBatchUsers:N0} per batch (split the file)");
        }

        var request = new DecideBatchRequest { Channel = Commands.ParseChannel(channel), UserIds = { ids } };
        if (purpose is not null)
        {
            request.Purpose = ParsePurpose(purpose);
        }

        using var grpc = Cli.OpenChannel(address);
        using var call = new DecisionService.DecisionServiceClient(grpc).DecideBatch(request, cancellationToken: ct);
        int decided = 0, skipped = 0, failed = 0;
        RpcException? cutShort = null;
        try
        {
            await foreach (var item in call.ResponseStream.ReadAllAsync(ct))
            {
                switch (item.ResultCase)
                {
                    case DecideBatchResponse.ResultOneofCase.Decision:
                        decided++;
                        break;
                    case DecideBatchResponse.ResultOneofCase.Skipped:
                        skipped++;
                        break;
                    default:
                        failed++;
                        break;
                }

                Console.WriteLine(json ? Cli.JsonLines.Format(item) : Line(item)); // JSON Lines: one object per user
            }
        }
        catch (RpcException ex)
        {
            cutShort = ex;
        }

        // Results come in request order, so the unanswered users are the ids after the last answered one.
        var answered = Math.Min(decided + skipped + failed, ids.Count);
        var summary = $"{decided:N0} decided, {skipped:N0} skipped, {failed:N0} failed of {ids.Count:N0}";
        if (cutShort is null && answered == ids.Count)
        {
            Console.Error.WriteLine(summary);
            await WriteUnansweredAsync(unanswered, []); // empty: a loop sending the file again stops
            return failed > 0 ? Cli.Rejected : 0;
        }

        await Console.Error.WriteLineAsync($"{summary}; {ids.Count - answered:N0} not answered");
        return await ReportCutShortAsync(ids, answered, cutShort, unanswered);
    }

    // A batch whose stream ended (failed, or ended as complete: not what the service promises) with users not
    // answered: which to send again, written to the file when one was asked for, without the usual advice to run the
    // command again, which would decide the answered users a second time.
    private static async Task<int> ReportCutShortAsync(List<string> ids, int answered, RpcException? failure, FileInfo? unanswered)
    {
        var rest = Unanswered(ids, answered);
        var written = await WriteUnansweredAsync(unanswered, rest);
        string which;
        if (rest.Count == 0)
        {
            which = "";
        }
        else if (written)
        {
            which = $" (their ids are in {unanswered!.FullName})";
        }
        else
        {
            var first = ids.IndexOf(rest[0], answered) + 1;
            which = $" (the ids from '{rest[0]}', number {first:N0} in the list, on{(unanswered is null ? "; --unanswered FILE writes them out" : "")})";
        }

        var answeredTwice = rest.Count < ids.Count - answered ? "; the other ids left were listed twice and answered already" : "";
        string? whatNow = null; // nothing answered: the usual advice (the address, a retry delay) holds
        if (answered > 0)
        {
            whatNow = rest.Count == 0
                ? "every user was answered before the call ended: nothing to send again."
                : $"the stream ended after {answered:N0} of {ids.Count:N0} users were answered (the lines above, in request order). The service may have decided some of the others as well, but deciding an answered user again counts a second decision in the KPIs and experiments: send only the {rest.Count:N0} unanswered ones again{which}{answeredTwice}.";
        }

        if (failure is null)
        {
            await Console.Error.WriteLineAsync($"error: the service ended the stream with {ids.Count - answered:N0} users not answered; {whatNow ?? $"send the {rest.Count:N0} ids again{which}."}");
            return Cli.RpcFailure;
        }

        var note = whatNow is null && written && rest.Count > 0 ? $"{Environment.NewLine}  the ids not answered are in {unanswered!.FullName}." : "";
        await Console.Error.WriteLineAsync(Cli.Describe(failure, whatNow) + note);
        return Cli.ExitCodeOf(failure);
    }

    // The ids after the first `answered`, each once, and none that was answered already (listed twice): what to send
    // again without deciding anyone twice.
    private static List<string> Unanswered(List<string> ids, int answered)
    {
        var seen = new HashSet<string>(ids.Take(answered), StringComparer.Ordinal);
        return [.. ids.Skip(answered).Where(seen.Add)];
    }

    // Writes the ids not answered to the file asked for (owner-only, replaced once complete), or nothing when none was
    // asked for; true when written. A write that fails is reported and leaves the first unanswered id to go by.
    private static async Task<bool> WriteUnansweredAsync(FileInfo? file, List<string> ids)
    {
        if (file is null)
        {
            return false;
        }

        try
        {
            await WriteReplacingAsync(file, async writer =>
            {
                foreach (var id in ids)
                {
                    await writer.WriteLineAsync(id);
                }
            });
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"error: the unanswered ids could not be written to {file.FullName}: {ex.Message}");
            return false;
        }
    }

    private static string Line(DecideBatchResponse item) => item.ResultCase switch
    {
        DecideBatchResponse.ResultOneofCase.Decision => string.Create(
            CultureInfo.InvariantCulture,
            $"{Terminal.Shown(item.UserId)}\t{item.Decision.Segment.Id}\t{item.Decision.DecisionId}{(item.SendTime is { } st ? $"\tsend at {st.SendAt?.ToDateTimeOffset():yyyy-MM-dd HH:mm}Z" : "")}{(item.Decision.Contact is { } c ? $"\t{Cli.EnumName(c.Action)}" : "")}"),
        DecideBatchResponse.ResultOneofCase.Skipped => $"{Terminal.Shown(item.UserId)}\tskipped: {Terminal.Shown(item.Skipped.Reason)}",
        _ => $"{Terminal.Shown(item.UserId)}\terror: {Terminal.Shown(item.Error.Message)}",
    };

    /// <summary><c>segctl traits</c>: declares traits for a user (SetTraits, zero-party by default).</summary>
    public static async Task<int> TraitsAsync(ServiceTarget address, string userId, IReadOnlyList<string> assignments, string source, string layer, DateTimeOffset? at, bool json, CancellationToken ct)
    {
        if (assignments.Count == 0)
        {
            throw new ArgumentException("no traits: give name=value pairs, e.g. segctl traits u1 tier=gold company_size=12 vip=true interests=garden,kitchen");
        }

        var request = new SetTraitsRequest
        {
            UserId = userId,
            Source = source,
            Layer = layer.ToLowerInvariant() switch
            {
                "zero-party" or "zero_party" or "declared" => DataLayer.ZeroParty,
                "first-party" or "first_party" or "observed" => DataLayer.FirstParty,
                _ => throw new ArgumentException($"unknown layer '{layer}': use zero-party (declared by the user) or first-party (observed)"),
            },
        };
        if (at is { } when)
        {
            request.Timestamp = Timestamp.FromDateTimeOffset(when);
        }

        foreach (var assignment in assignments)
        {
            var eq = assignment.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"'{assignment}' is not name=value (e.g. tier=gold)");
            }

            request.Traits[assignment[..eq]] = ParseValue(assignment[(eq + 1)..]);
        }

        using var grpc = Cli.OpenChannel(address);
        var response = await new ProfileService.ProfileServiceClient(grpc).SetTraitsAsync(request, cancellationToken: ct);
        Console.WriteLine(json
            ? Cli.ToJson(response)
            : $"applied: {Joined(response.Applied)}; ignored (held in a more reliable layer, or newer in the same one): {Joined(response.Ignored)}; profile version {response.ProfileVersion}");
        return 0;
    }

    // A value as written on the command line: true/false, a number, an RFC 3339 time, a list with commas
    // (a single value in the list needs a trailing comma: garden,), else text. A value meant as text that
    // looks like one of these is written with a leading '=' (tier==true is the text "true").
    internal static AttributeValue ParseValue(string text)
    {
        if (text.StartsWith('='))
        {
            return new AttributeValue { StringValue = text[1..] };
        }

        if (text is "true" or "false")
        {
            return new AttributeValue { BoolValue = text == "true" };
        }

        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number))
        {
            return new AttributeValue { NumberValue = number };
        }

        if (text.Length >= 20 && char.IsAsciiDigit(text[0]) && Cli.TryParseRfc3339(text, out var time))
        {
            return new AttributeValue { TimestampValue = Timestamp.FromDateTimeOffset(time) };
        }

        if (text.Contains(',', StringComparison.Ordinal))
        {
            return new AttributeValue { StringListValue = new StringList { Values = { text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) } } };
        }

        return new AttributeValue { StringValue = text };
    }

    /// <summary><c>segctl identify</c>: links an anonymous id to a user id (Identify), merging the anonymous history.</summary>
    public static async Task<int> IdentifyAsync(ServiceTarget address, string anonymousId, string userId, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var response = await new ProfileService.ProfileServiceClient(grpc).IdentifyAsync(new IdentifyRequest { AnonymousId = anonymousId, UserId = userId }, cancellationToken: ct);
        Console.WriteLine(json
            ? Cli.ToJson(response)
            : $"{anonymousId} is now {userId}: {response.MergedEvents:N0} events merged, {response.DuplicateEvents:N0} duplicates dropped; profile version {response.ProfileVersion}");
        return 0;
    }

    /// <summary>
    /// <c>segctl consent</c>: shows a user's consent per purpose with its trail (GetConsent), or, with
    /// <paramref name="purpose"/> and a decision, records it (RecordConsent).
    /// </summary>
    public static async Task<int> ConsentAsync(ServiceTarget address, string userId, string? purpose, bool? granted, string source, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var client = new PrivacyService.PrivacyServiceClient(grpc);
        if (purpose is null != granted is null)
        {
            throw new ArgumentException("to record consent give both --purpose and --grant or --withdraw; with neither, the consent is shown");
        }

        if (purpose is not null)
        {
            var recorded = await client.RecordConsentAsync(
                new RecordConsentRequest { UserId = userId, Purpose = ParsePurpose(purpose), Granted = granted!.Value, Source = source }, // stamped with the service's time, not this machine's (a slow clock would file it before a later record)
                cancellationToken: ct);
            Console.WriteLine(json
                ? Cli.ToJson(recorded)
                : $"{(recorded.Duplicate ? "already recorded" : "recorded")}: {Cli.EnumName(recorded.State.Purpose)} {(recorded.State.Granted ? "granted" : "not granted")} for {userId}");
            return 0;
        }

        var response = await client.GetConsentAsync(new GetConsentRequest { UserId = userId }, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return 0;
        }

        foreach (var state in response.States)
        {
            Console.WriteLine($"{Cli.EnumName(state.Purpose),-16} {(state.Granted ? "granted" : "not granted"),-12} {(state.Recorded ? $"recorded {state.Latest?.Timestamp?.ToDateTimeOffset():yyyy-MM-dd HH:mm:ss}Z from {Terminal.Shown(state.Latest?.Source ?? "")}" : "default (never recorded)")}");
        }

        return 0;
    }

    /// <summary>
    /// <c>segctl export</c>: everything the service holds about a user, to standard output or a file: one JSON document
    /// (ExportUser), or with <paramref name="lines"/> JSON Lines written part by part as they arrive (StreamUserExport:
    /// a profile of any size).
    /// </summary>
    public static async Task<int> ExportAsync(ServiceTarget address, string userId, FileInfo? output, bool lines, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var privacy = new PrivacyService.PrivacyServiceClient(grpc);
        if (lines)
        {
            using var call = privacy.StreamUserExport(new StreamUserExportRequest { UserId = userId }, cancellationToken: ct);
            if (output is null)
            {
                await foreach (var part in call.ResponseStream.ReadAllAsync(ct))
                {
                    await Console.Out.WriteAsync(part.JsonLines);
                }

                await Console.Out.FlushAsync(ct);
            }
            else
            {
                await WriteReplacingAsync(output, async target =>
                {
                    await foreach (var part in call.ResponseStream.ReadAllAsync(ct))
                    {
                        await target.WriteAsync(part.JsonLines);
                    }
                });
            }
        }
        else
        {
            var response = await privacy.ExportUserAsync(new ExportUserRequest { UserId = userId }, cancellationToken: ct);
            using var document = JsonDocument.Parse(response.Json);
            var pretty = JsonSerializer.Serialize(document.RootElement, Indented);
            if (output is null)
            {
                Console.WriteLine(pretty);
                return 0;
            }

            await WriteReplacingAsync(output, file => file.WriteAsync(pretty + Environment.NewLine));
        }

        if (output is not null)
        {
            Console.Error.WriteLine($"exported {userId} to {output.FullName}");
        }

        return 0;
    }

    // Personal data: a file readable by the owner only (on Unix), whatever the umask, also when it replaces an existing one.
    // Writes beside the file (a name of this process's own) and renames over it once complete: a refused, broken or
    // failed export (a full disk) leaves an earlier export there as it was, never emptied or cut short.
    private static async Task WriteReplacingAsync(FileInfo output, Func<StreamWriter, Task> write)
    {
        var partial = new FileInfo($"{output.FullName}.{Environment.ProcessId}.partial");
        try
        {
            await using (var target = OwnerOnlyFile(partial))
            {
                await write(target);
            }

            File.Move(partial.FullName, output.FullName, overwrite: true);
        }
        catch
        {
            partial.Refresh();
            if (partial.Exists)
            {
                partial.Delete();
            }

            throw;
        }
    }

    private static StreamWriter OwnerOnlyFile(FileInfo output)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new StreamWriter(output.FullName, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(output.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return file;
    }

    /// <summary><c>segctl forget</c>: erases a user and every id linked to them (ForgetUser); asks for --yes.</summary>
    public static async Task<int> ForgetAsync(ServiceTarget address, string userId, bool confirmed, bool json, CancellationToken ct)
    {
        if (!confirmed)
        {
            throw new ArgumentException($"forget erases {userId} and every id linked to them, and cannot be undone: repeat with --yes");
        }

        using var grpc = Cli.OpenChannel(address);
        var response = await new PrivacyService.PrivacyServiceClient(grpc).ForgetUserAsync(new ForgetUserRequest { UserId = userId }, cancellationToken: ct);
        Console.WriteLine(json
            ? Cli.ToJson(response)
            : response.Existed
                ? $"erased {userId}{(response.LinkedIds.Count > 0 ? $" and linked ids {Joined(response.LinkedIds)}" : "")}"
                : $"nothing held about {userId} (recorded as erased all the same)");
        return 0;
    }

    internal static ConsentPurpose ParsePurpose(string purpose) => purpose.ToLowerInvariant().Replace('-', '_') switch
    {
        "personalization" or "personalisation" => ConsentPurpose.Personalization,
        "analytics" => ConsentPurpose.Analytics,
        "email_marketing" or "email" => ConsentPurpose.EmailMarketing,
        "advertising" or "ads" => ConsentPurpose.Advertising,
        _ => throw new ArgumentException($"unknown purpose '{purpose}': use personalization, analytics, email_marketing or advertising"),
    };

    private static async Task<List<string>> ReadIdsAsync(string source, CancellationToken ct)
    {
        using var reader = new StreamReader(source == "-" ? Console.OpenStandardInput() : File.OpenRead(source), CsvText.StrictUtf8); // ids that are not UTF-8 are refused, not merged by replacement characters
        var ids = new List<string>();
        var lines = 0;
        try
        {
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                lines++;
                if (line.Trim() is { Length: > 0 } id && !id.StartsWith('#'))
                {
                    ids.Add(id);
                }

                if (ids.Count > MaxBatchUsers)
                {
                    break;
                }
            }
        }
        catch (System.Text.DecoderFallbackException ex)
        {
            throw CsvText.NotUtf8(source == "-" ? "standard input" : source, $"line {lines + 1} (or one of the next few)", ex);
        }

        return ids;
    }

    private static string Joined(IEnumerable<string> items) => items.Any() ? string.Join(", ", items.Select(Terminal.Shown)) : "-";
}
