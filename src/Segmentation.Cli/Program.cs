using System.CommandLine;
using Segmentation.Cli;

// No default values here: help would print them, and the key may come from the environment. Both are resolved when
// a command runs (Cli.Target): the option, else the environment variable, else the local default.
var address = new Option<string?>("--address")
{
    Description = "Service address with its scheme, for example http://127.0.0.1:5107 (else env SEGCTL_ADDRESS, else " + Cli.DefaultAddress + ")",
    Recursive = true,
};
var apiKey = new Option<string?>("--api-key")
{
    Description = "API key sent as x-api-key (else env SEGMENTATION_API_KEY, else the local development key); prefer the variable: options show in process lists",
    Recursive = true,
};
var json = new Option<bool>("--json") { Description = "Print JSON instead of plain text", Recursive = true };
var timeout = new Option<int>("--timeout")
{
    Description = "Seconds one request may wait for its answer before it is given up (default 60); decide-batch and export --lines: for each message; import: events sent waiting for their results; not watch (see its --seconds); publish, rollback, experiments stop/promote and forget, which the service completes even when the caller gives up, are sent without a deadline and may still be done when given up",
    Recursive = true,
    DefaultValueFactory = _ => (int)Cli.DefaultCallTimeout.TotalSeconds,
};

var root = new RootCommand("segctl: command-line client of the Segmentation gRPC service");
root.Options.Add(address);
root.Options.Add(apiKey);
root.Options.Add(json);
root.Options.Add(AtLeast(timeout, 1));
timeout.Validators.Add(result =>
{
    if (result.Tokens.Count > 0 && int.TryParse(result.Tokens[^1].Value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > Cli.MaxCallTimeoutSeconds)
    {
        result.AddError($"--timeout must be at most {Cli.MaxCallTimeoutSeconds} (a day; got {seconds})");
    }
});

ServiceTarget Target(ParseResult parse) => Cli.Target(parse.GetValue(address), parse.GetValue(apiKey), TimeSpan.FromSeconds(parse.GetValue(timeout)));

// hash-key: what an operator puts in Segmentation:Security:ApiKeys:N:Sha256. The key is read from standard input, never
// an argument (arguments stay in shell history and process lists): printf %s "$KEY" | segctl hash-key
var hashKey = new Command("hash-key", "Print the SHA-256 (hex) of an API key read from standard input (one line), for Segmentation:Security:ApiKeys:N:Sha256; no server call");
hashKey.SetAction(_ => Cli.RunAsync(async () =>
{
    var key = (await Console.In.ReadLineAsync())?.TrimEnd('\r');
    if (string.IsNullOrEmpty(key))
    {
        await Console.Error.WriteLineAsync("error: no key on standard input: printf %s \"$KEY\" | segctl hash-key");
        return Cli.UsageError;
    }

    await Console.Out.WriteLineAsync(Cli.HashKey(key));
    return 0;
}));
root.Subcommands.Add(hashKey);

// import
var csv = new Argument<FileInfo>("csv") { Description = "A CSV of events: the UCI Online Retail layout (InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country), or any layout with --map/--mapping" };
var map = new Option<string[]>("--map") { Description = "Map an event field to a column, field=Column (repeatable): user_id, type, timestamp required; also event_id, anonymous_id, value, currency, order_id, product_id, category, campaign_id, search_query, device, page_type, page_path, country, session_id", AllowMultipleArgumentsPerToken = false };
var mappingFile = new Option<FileInfo?>("--mapping") { Description = "A file of field=Column lines (# comments), as --map" };
var importType = new Option<string?>("--type") { Description = "The event type of every row, when no column holds it" };
var timeFormat = new Option<string?>("--time-format") { Description = "The timestamp column's exact .NET format, for a day-first export (dd/MM/yyyy HH:mm); without it, RFC 3339 or any form the invariant culture reads (month first)" };
var shift = new Option<bool>("--shift-to-now")
{
    Description = "Shift timestamps by whole days so the last invoice falls on yesterday (UTC); on by default",
    DefaultValueFactory = _ => true,
};
var noShift = new Option<bool>("--no-shift") { Description = "Keep the dataset's original timestamps (2010-2011: the server rejects events older than their retention, 730 days unless configured)" };
var rfmWait = new Option<int>("--rfm-wait")
{
    Description = "Seconds to wait for the server's RFM model to cover the imported customers (0 skips the RFM report)",
    DefaultValueFactory = _ => 30,
};
var import = new Command("import", "Import events from a CSV through ProfileService.StreamEvents (progress on a terminal) and print a report; the key is checked before the file is read") { csv, shift, noShift, AtLeast(rfmWait, 0), map, mappingFile, importType, timeFormat };
import.Validators.Add(result =>
{
    if (result.GetValue(map) is not { Length: > 0 } && result.GetValue(mappingFile) is null && (result.GetValue(importType) is not null || result.GetValue(timeFormat) is not null))
    {
        result.AddError("--type and --time-format describe a mapped CSV (--map or --mapping); the Online Retail layout has its own event types and its date format (M/d/yyyy H:mm, month first)");
    }
});
import.SetAction((parse, ct) => Cli.RunAsync(() => ImportCommand.RunAsync(
    Target(parse),
    parse.GetValue(csv)!,
    parse.GetValue(map) is { Length: > 0 } || parse.GetValue(mappingFile) is not null ? MappedCsv.Create(parse.GetValue(map) ?? [], parse.GetValue(mappingFile), parse.GetValue(importType), parse.GetValue(timeFormat)) : null,
    parse.GetValue(shift) && !parse.GetValue(noShift),
    TimeSpan.FromSeconds(parse.GetValue(rfmWait)),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(import);

// decide
var decideUser = new Argument<string>("user_id") { Description = "User id (or anonymous id with --anonymous)" };
var explain = new Option<bool>("--explain") { Description = "Include the rule-by-rule trace" };
var anonymous = new Option<bool>("--anonymous") { Description = "Treat user_id as an anonymous visitor id" };
var device = new Option<string?>("--device") { Description = "Request context: device (desktop, mobile, tablet...)" };
var country = new Option<string?>("--country") { Description = "Request context: ISO country code" };
var pageType = new Option<string?>("--page-type") { Description = "Request context: page type (home, product, cart...)" };
var channel = new Option<string?>("--channel") { Description = "web (default), email, ads or app" };
var decide = new Command("decide", "Decide the winning segment and its variants for one user") { decideUser, explain, anonymous, device, country, pageType, channel };
decide.SetAction((parse, ct) => Cli.RunAsync(() => Commands.DecideAsync(
    Target(parse),
    parse.GetValue(decideUser)!,
    parse.GetValue(anonymous),
    parse.GetValue(explain),
    parse.GetValue(device),
    parse.GetValue(country),
    parse.GetValue(pageType),
    parse.GetValue(channel),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(decide);

// profile
var profileUser = new Argument<string>("user_id") { Description = "User id" };
var profile = new Command("profile", "Show a user's profile: aggregates, derived data, attributes with provenance, segment changes") { profileUser };
profile.SetAction((parse, ct) => Cli.RunAsync(() => Commands.ProfileAsync(Target(parse), parse.GetValue(profileUser)!, parse.GetValue(json), ct)));
root.Subcommands.Add(profile);

// catalog
var catalog = new Command("catalog", "Show the active catalog: version and segments in priority order");
catalog.SetAction((parse, ct) => Cli.RunAsync(() => Commands.CatalogAsync(Target(parse), parse.GetValue(json), ct)));
root.Subcommands.Add(catalog);

// track
var trackUser = new Argument<string>("user_id") { Description = "User id" };
var trackType = new Argument<string>("type") { Description = "Event type (page_view, product_view, add_to_cart, purchase, custom.<name>...)" };
var category = new Option<string?>("--category") { Description = "Product or content category" };
var value = new Option<double?>("--value") { Description = "Monetary value" };
var trackPageType = new Option<string>("--page-type") { Description = "Page type of the event context", DefaultValueFactory = _ => "home" };
var trackDevice = new Option<string>("--device") { Description = "Device of the event context", DefaultValueFactory = _ => "desktop" };
var product = new Option<string?>("--product") { Description = "Product id (product_view, add_to_cart, remove_from_cart)" };
var orderId = new Option<string?>("--order-id") { Description = "Order id (purchase, refund); generated when omitted" };
var trackAt = new Option<string?>("--timestamp") { Description = "When the event happened, RFC 3339 (e.g. 2026-11-30T14:05:00Z); default now" };
var track = new Command("track", "Send one event (TrackEvent) with a generated event id") { trackUser, trackType, category, value, trackPageType, trackDevice, product, orderId, trackAt };
track.SetAction((parse, ct) => Cli.RunAsync(() => Commands.TrackAsync(
    Target(parse),
    new TrackOptions(
        parse.GetValue(trackUser)!,
        parse.GetValue(trackType)!,
        parse.GetValue(category),
        parse.GetValue(value),
        parse.GetValue(trackPageType)!,
        parse.GetValue(trackDevice)!,
        parse.GetValue(product),
        parse.GetValue(orderId),
        Cli.ParseTime(parse.GetValue(trackAt), "--timestamp")),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(track);

// decide-batch
var batchSource = new Argument<string>("ids") { Description = "File of user ids, one per line (- for standard input); at most 10,000" };
var batchChannel = new Option<string?>("--channel") { Description = "web (default), email, ads or app; email adds the best send time and email blocks" };
var batchPurpose = new Option<string?>("--purpose") { Description = "Consent purpose users must have granted (default: the channel's, email_marketing for email)" };
var batchUnanswered = new Option<FileInfo?>("--unanswered") { Description = "When the stream ends before every user is answered, write the ids not answered to this file (one per line), to send again without deciding the answered users twice" };
var decideBatch = new Command("decide-batch", "Decide for many users at once (DecideBatch, streamed): one line per user in order, a summary on stderr; exit 3 when a user failed") { batchSource, batchChannel, batchPurpose, batchUnanswered };
decideBatch.SetAction((parse, ct) => Cli.RunAsync(() => UserCommands.DecideBatchAsync(Target(parse), parse.GetValue(batchSource)!, parse.GetValue(batchChannel), parse.GetValue(batchPurpose), parse.GetValue(json), parse.GetValue(batchUnanswered), ct)));
root.Subcommands.Add(decideBatch);

// traits
var traitsUser = new Argument<string>("user_id") { Description = "User id" };
var traitValues = new Argument<string[]>("traits") { Description = "name=value pairs: numbers, true/false, RFC 3339 times, lists with commas (garden,kitchen), else text (a leading = keeps text as text: tier==true)", Arity = ArgumentArity.OneOrMore };
var traitsSource = new Option<string>("--source") { Description = "Where the values come from (kept as provenance)", DefaultValueFactory = _ => "segctl" };
var traitsLayer = new Option<string>("--layer") { Description = "zero-party (declared by the user) or first-party (observed)", DefaultValueFactory = _ => "zero-party" };
var traitsAt = new Option<string?>("--timestamp") { Description = "When the values were true, RFC 3339; default now" };
var traits = new Command("traits", "Set a user's traits (SetTraits): declared data rules read as traits.<name>") { traitsUser, traitValues, traitsSource, traitsLayer, traitsAt };
traits.SetAction((parse, ct) => Cli.RunAsync(() => UserCommands.TraitsAsync(
    Target(parse), parse.GetValue(traitsUser)!, parse.GetValue(traitValues) ?? [], parse.GetValue(traitsSource)!, parse.GetValue(traitsLayer)!, Cli.ParseTime(parse.GetValue(traitsAt), "--timestamp"), parse.GetValue(json), ct)));
root.Subcommands.Add(traits);

// identify
var identifyAnonymous = new Argument<string>("anonymous_id") { Description = "The anonymous (device or cookie) id" };
var identifyUser = new Argument<string>("user_id") { Description = "The known user id it belongs to" };
var identify = new Command("identify", "Link an anonymous id to a user id (Identify): the anonymous history merges into the user's profile") { identifyAnonymous, identifyUser };
identify.SetAction((parse, ct) => Cli.RunAsync(() => UserCommands.IdentifyAsync(Target(parse), parse.GetValue(identifyAnonymous)!, parse.GetValue(identifyUser)!, parse.GetValue(json), ct)));
root.Subcommands.Add(identify);

// consent
var consentUser = new Argument<string>("user_id") { Description = "User id" };
var consentPurpose = new Option<string?>("--purpose") { Description = "personalization, analytics, email_marketing or advertising (with --grant or --withdraw)" };
var grant = new Option<bool>("--grant") { Description = "Record that the user granted the purpose" };
var withdraw = new Option<bool>("--withdraw") { Description = "Record that the user withdrew (or refused) the purpose" };
var consentSource = new Option<string>("--source") { Description = "Where the choice was made (kept in the consent trail)", DefaultValueFactory = _ => "segctl" };
var consent = new Command("consent", "Show a user's consent per purpose (GetConsent), or record a choice with --purpose and --grant/--withdraw (RecordConsent)") { consentUser, consentPurpose, grant, withdraw, consentSource };
consent.Validators.Add(result =>
{
    if (result.GetValue(grant) && result.GetValue(withdraw))
    {
        result.AddError("--grant and --withdraw exclude each other");
    }
});
consent.SetAction((parse, ct) => Cli.RunAsync(() => UserCommands.ConsentAsync(
    Target(parse),
    parse.GetValue(consentUser)!,
    parse.GetValue(consentPurpose),
    parse.GetValue(grant) ? true : parse.GetValue(withdraw) ? false : null,
    parse.GetValue(consentSource)!,
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(consent);

// export
var exportUser = new Argument<string>("user_id") { Description = "User id" };
var exportOutput = new Option<FileInfo?>("--output", "-o") { Description = "Write the JSON to this file instead of standard output" };
var exportLines = new Option<bool>("--lines") { Description = "JSON Lines sent in parts (StreamUserExport), for a profile of any size: the export without its events, then one event per line" };
var export = new Command("export", "Everything held about a user, as JSON (ExportUser: the right of access); needs the admin scope") { exportUser, exportOutput, exportLines };
export.SetAction((parse, ct) => Cli.RunAsync(() => UserCommands.ExportAsync(Target(parse), parse.GetValue(exportUser)!, parse.GetValue(exportOutput), parse.GetValue(exportLines), ct)));
root.Subcommands.Add(export);

// forget
var forgetUser = new Argument<string>("user_id") { Description = "User id" };
var forgetYes = new Option<bool>("--yes") { Description = "Confirm: erasure cannot be undone" };
var forget = new Command("forget", "Erase a user and every id linked to them (ForgetUser: the right to erasure); needs the admin scope and --yes") { forgetUser, forgetYes };
forget.SetAction((parse, ct) => Cli.RunAsync(() => UserCommands.ForgetAsync(Target(parse), parse.GetValue(forgetUser)!, parse.GetValue(forgetYes), parse.GetValue(json), ct)));
root.Subcommands.Add(forget);

// validate
var validateDir = new Argument<DirectoryInfo>("dir") { Description = "Catalog directory: every *.yaml / *.yml under it (recursively) is sent" };
var minSize = new Option<int>("--min-size") { Description = "Warn about segments with fewer members (0 = the server's default, 1,000)" };
var validate = new Command("validate", "Dry-run a catalog directory (ValidateCatalog): errors with file:line, segment and clause; warnings with their codes. Exit code 3 when invalid") { validateDir, AtLeast(minSize, 0) };
validate.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.ValidateAsync(Target(parse), parse.GetValue(validateDir)!, parse.GetValue(minSize), parse.GetValue(json), ct)));
root.Subcommands.Add(validate);

// publish
var publishDir = new Argument<DirectoryInfo>("dir") { Description = "Catalog directory: every *.yaml / *.yml under it (recursively) is sent" };
var comment = new Option<string?>("--comment") { Description = "Why, for the audit trail (for example \"spring campaign\")" };
var basedOn = new Option<long>("--based-on") { Description = "Publish only if this is still the active version (else ABORTED, nothing published): the version the files were read from" };
var publish = new Command("publish", "Validate and publish a catalog directory (PublishCatalog); exit code 3 when it is rejected") { publishDir, comment, basedOn };
publish.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.PublishAsync(Target(parse), parse.GetValue(publishDir)!, parse.GetValue(comment), parse.GetValue(basedOn), parse.GetValue(json), ct)));
root.Subcommands.Add(publish);

// rollback
var rollbackVersion = new Option<long>("--version") { Description = "Version to restore (default: the one before the active version)" };
var rollback = new Command("rollback", "Republish the files of an earlier catalog version as a new version (RollbackCatalog)") { rollbackVersion };
rollback.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.RollbackAsync(Target(parse), parse.GetValue(rollbackVersion), parse.GetValue(json), ct)));
root.Subcommands.Add(rollback);

// preview
var previewFile = new Argument<FileInfo>("segment.yaml") { Description = "One segment written as in a catalog file (a YAML mapping with id, name, type, rule, personalization)" };
var previewSample = new Option<int>("--sample") { Description = "Number of member ids to show, 1 to 100 (default 10)" };
var preview = new Command("preview", "Measure a candidate segment against the current profiles (PreviewSegment): members, share, sample, overlaps") { previewFile, previewSample };
preview.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.PreviewAsync(Target(parse), parse.GetValue(previewFile)!, parse.GetValue(previewSample), parse.GetValue(json), ct)));
root.Subcommands.Add(preview);

// audit
var auditMinSize = new Option<int>("--min-size") { Description = "Warn about segments with fewer members (0 = the server's default, 1,000)" };
var top = new Option<int>("--top") { Description = "Overlapping pairs to show, largest first (0 = all)", DefaultValueFactory = _ => 20 };
var audit = new Command("audit", "Audit the active catalog (AuditCatalog): sizes and shares, the overlap matrix, warnings") { AtLeast(auditMinSize, 0), AtLeast(top, 0) };
audit.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.AuditAsync(Target(parse), parse.GetValue(auditMinSize), parse.GetValue(top), parse.GetValue(json), ct)));
root.Subcommands.Add(audit);

// segments
var segments = new Command("segments", "List the active catalog's segments with their live member counts (ListSegments)");
segments.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.SegmentsAsync(Target(parse), parse.GetValue(json), ct)));
root.Subcommands.Add(segments);

// members
var membersSegment = new Argument<string>("segment_id") { Description = "Segment id" };
var pageSize = new Option<int>("--page-size") { Description = "Ids per page, 1 to 1000 (default 100)" };
var pageToken = new Option<string?>("--page-token") { Description = "Continue after this token (the next_page_token of the previous page)" };
var allPages = new Option<bool>("--all") { Description = "Follow next_page_token to the last page" };
var members = new Command("members", "List a segment's current members in user id order (ListSegmentMembers); ids on stdout, the count on stderr") { membersSegment, pageSize, pageToken, allPages };
members.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.MembersAsync(
    Target(parse), parse.GetValue(membersSegment)!, parse.GetValue(pageSize), parse.GetValue(pageToken), parse.GetValue(allPages), parse.GetValue(json), ct)));
root.Subcommands.Add(members);

// audit-log
var auditAction = new Option<string?>("--action") { Description = "Only this action (catalog.publish, catalog.rollback, experiment.stop, experiment.promote, privacy.export, privacy.forget, privacy.get_consent, privacy.record_consent)" };
var auditActor = new Option<string?>("--actor") { Description = "Only this API key name" };
var auditUser = new Option<string?>("--user") { Description = "Only entries about this user id" };
var auditPageSize = new Option<int>("--page-size") { Description = "Entries per page, 1 to 1000 (default 100)" };
var auditPageToken = new Option<string?>("--page-token") { Description = "Continue with older entries (the token the previous page printed)" };
var auditAll = new Option<bool>("--all") { Description = "Follow the pages to the oldest entry" };
var auditLog = new Command("audit-log", "The admin audit trail (AuditService.ListAuditEntries), newest first: who published, rolled back, stopped or promoted, exported, erased, read or recorded consent, when, and the outcome; needs the admin scope") { auditAction, auditActor, auditUser, auditPageSize, auditPageToken, auditAll };
auditLog.SetAction((parse, ct) => Cli.RunAsync(() => AuditLogCommand.RunAsync(
    Target(parse),
    new AuditLogCommand.Options(parse.GetValue(auditAction), parse.GetValue(auditActor), parse.GetValue(auditUser), parse.GetValue(auditPageSize), parse.GetValue(auditPageToken), parse.GetValue(auditAll)),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(auditLog);

// watch
var watchSegments = new Option<string[]>("--segment") { Description = "Only changes of this segment (repeatable; default all)", AllowMultipleArgumentsPerToken = true };
var watchCount = new Option<int>("--count") { Description = "Stop after this many changes (0 = no limit)" };
var watchSeconds = new Option<double>("--seconds") { Description = "Stop after this many seconds (always bounded)", DefaultValueFactory = _ => 30 };
var watchAfter = new Option<long?>("--after") { Description = "Resume after this offset (the last one handled): the retained entries missed first, then live" };
var watchOldest = new Option<bool>("--from-oldest") { Description = "Start from the oldest retained entry" };
var watchStream = new Option<string?>("--stream") { Description = "The stream the --after offset is from (its id is printed when a watch starts, and is stream_id in --json): refused when the stream was reset since" };
var watch = new Command("watch", "Follow the change stream (WatchSegmentChanges): users entering and leaving segments and triggers firing, one line per entry with its offset (JSON Lines with --json)") { watchSegments, watchCount, watchSeconds, watchAfter, watchOldest, watchStream };
watch.SetAction((parse, ct) => Cli.RunAsync(() => CatalogCommands.WatchAsync(
    Target(parse),
    new WatchOptions(parse.GetValue(watchSegments) ?? [], parse.GetValue(watchCount), parse.GetValue(watchSeconds), parse.GetValue(watchAfter), parse.GetValue(watchOldest), parse.GetValue(watchStream)),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(watch);

// report
var reportSample = new Option<int>("--sample") { Description = "Members sampled per segment for its profile, 1 to 1000", DefaultValueFactory = _ => 200 };
var report = new Command("report", "The segmentation strategy in the framework's output shape: approach, segments, data sources; per segment size, criteria, profile, strategy, KPIs") { reportSample };
report.SetAction((parse, ct) => Cli.RunAsync(() => ReportCommand.RunAsync(Target(parse), parse.GetValue(reportSample), parse.GetValue(json), ct)));
root.Subcommands.Add(report);

// kpis
var kpiDays = new Option<int>("--days") { Description = "The last N days (default 30; at most 90)", DefaultValueFactory = _ => 30 };
var kpiBy = new Option<string[]>("--by") { Description = "Group by segment (default), variant, channel, version and/or arm (repeatable)", AllowMultipleArgumentsPerToken = true };
var kpiSegment = new Option<string?>("--segment") { Description = "Only this segment" };
var kpiSeries = new Option<bool>("--series") { Description = "One line per hour (with --csv or --json)" };
var kpiCsv = new Option<bool>("--csv") { Description = "Print CSV (a header row, then one line per group, or per group and hour with --series) for BI tools" };
var kpis = new Command("kpis", "KPIs of what decisions did (InsightsService.GetKpis): decisions, reach, impressions, CTR, conversions, revenue per segment; definitions in docs/outcomes.md") { kpiDays, kpiBy, kpiSegment, kpiSeries, kpiCsv };
kpis.SetAction((parse, ct) => Cli.RunAsync(() => KpisCommand.RunAsync(
    Target(parse),
    parse.GetValue(kpiDays),
    parse.GetValue(kpiBy) ?? [],
    parse.GetValue(kpiSegment),
    parse.GetValue(kpiSeries),
    parse.GetValue(json) ? KpisCommand.Format.Json : parse.GetValue(kpiCsv) ? KpisCommand.Format.Csv : KpisCommand.Format.Table,
    ct)));
root.Subcommands.Add(kpis);

// sizes
var sizeDays = new Option<int>("--days") { Description = "The last N days (default 30; at most 90)", DefaultValueFactory = _ => 30 };
var sizeSegment = new Option<string?>("--segment") { Description = "Only this segment" };
var sizes = new Command("sizes", "Member counts per segment over time (InsightsService.GetSegmentSizes): first, now, change, min, max of the hourly points") { sizeDays, sizeSegment };
sizes.SetAction((parse, ct) => Cli.RunAsync(() => SizesCommand.RunAsync(Target(parse), parse.GetValue(sizeDays), parse.GetValue(sizeSegment), parse.GetValue(json), ct)));
root.Subcommands.Add(sizes);

// experiments, results, simulate
var experiments = new Command("experiments", "The serving catalog's experiments (ExperimentService.ListExperiments): status, arms, exposed users; see docs/experiments.md");
experiments.SetAction((parse, ct) => Cli.RunAsync(() => ExperimentsCommand.ListAsync(Target(parse), parse.GetValue(json), ct)));
var experimentId = new Argument<string>("experiment_id") { Description = "The experiment id" };
var experimentComment = new Option<string>("--comment") { Description = "Comment of the catalog version published", DefaultValueFactory = _ => "" };
var stopExperiment = new Command("stop", "Stop an experiment now (publishes a catalog version with its stop time)") { experimentId, experimentComment };
stopExperiment.SetAction((parse, ct) => Cli.RunAsync(() => ExperimentsCommand.StopAsync(Target(parse), parse.GetValue(experimentId)!, parse.GetValue(experimentComment)!, parse.GetValue(json), ct)));
var promoteArm = new Option<string>("--arm") { Description = "The arm to promote (default: the recommended winner; refused when there is none)", DefaultValueFactory = _ => "" };
var promoteExperiment = new Command("promote", "Promote an arm: its variants become the segment's in a new catalog version, and the experiment stops") { experimentId, promoteArm, experimentComment };
promoteExperiment.SetAction((parse, ct) => Cli.RunAsync(() => ExperimentsCommand.PromoteAsync(Target(parse), parse.GetValue(experimentId)!, parse.GetValue(promoteArm)!, parse.GetValue(experimentComment)!, parse.GetValue(json), ct)));
experiments.Subcommands.Add(stopExperiment);
experiments.Subcommands.Add(promoteExperiment);
root.Subcommands.Add(experiments);

var resultsId = new Argument<string>("experiment_id") { Description = "The experiment id" };
var results = new Command("results", "An experiment's results (ExperimentService.GetExperimentResults): per arm users and metrics, lift with fixed and always-valid intervals, sample ratio check, recommendation") { resultsId };
results.SetAction((parse, ct) => Cli.RunAsync(() => ExperimentsCommand.ResultsAsync(Target(parse), parse.GetValue(resultsId)!, parse.GetValue(json), ct)));
root.Subcommands.Add(results);

var simUsers = new Option<int>("--users") { Description = "Users to simulate, taken from the service's segment members (the demo population)", DefaultValueFactory = _ => 2_000 };
var simSegment = new Option<string?>("--segment") { Description = "Only members of this segment (default: every segment's, in priority order)" };
var simViews = new Option<int>("--views") { Description = "Page views per user: one Decide call and one impression each", DefaultValueFactory = _ => 3 };
var simClick = new Option<double>("--click-rate") { Description = "True chance an impression is clicked", DefaultValueFactory = _ => 0.1 };
var simConversion = new Option<double>("--conversion-rate") { Description = "True chance a user converts (once, after the last view)", DefaultValueFactory = _ => 0.1 };
var simSegmentRate = new Option<string[]>("--segment-rate") { Description = "SEGMENT=RATE: a segment's own true conversion rate (repeatable)", AllowMultipleArgumentsPerToken = true };
var simLift = new Option<string[]>("--lift") { Description = "ARM=LIFT or EXPERIMENT:ARM=LIFT: true relative lift of that arm's click and conversion rates, 0.2 for +20 % (repeatable)", AllowMultipleArgumentsPerToken = true };
var simSeed = new Option<int>("--seed") { Description = "Seed of every draw; the same seed re-sends the same event ids (counted once)", DefaultValueFactory = _ => 1 };
var simParallel = new Option<int>("--parallel") { Description = "Users simulated at once", DefaultValueFactory = _ => 8 };
var simulate = new Command("simulate", "Drive the running service with traffic whose truth is known (decisions, impressions, clicks, conversions per segment and arm), to watch an experiment find it")
{
    AtLeast(simUsers, 1), simSegment, AtLeast(simViews, 1), simClick, simConversion, simSegmentRate, simLift, simSeed, AtLeast(simParallel, 1),
};
simulate.SetAction((parse, ct) => Cli.RunAsync(() => ExperimentsCommand.SimulateAsync(
    Target(parse),
    parse.GetValue(simUsers),
    parse.GetValue(simSegment),
    new SimulationTruth(
        parse.GetValue(simViews),
        parse.GetValue(simClick),
        parse.GetValue(simConversion),
        ExperimentsCommand.Pairs("--segment-rate", parse.GetValue(simSegmentRate) ?? []),
        ExperimentsCommand.Pairs("--lift", parse.GetValue(simLift) ?? []),
        Seed: parse.GetValue(simSeed),
        Parallelism: parse.GetValue(simParallel)),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(simulate);

// quality
var qualityDays = new Option<int>("--days") { Description = "Fallback rate over the decisions of the last N days (default 1; at most 90)", DefaultValueFactory = _ => 1 };
var qualityCsv = new Option<bool>("--csv") { Description = "Print CSV (metric,key,value), one line per figure, for BI tools" };
var quality = new Command("quality", "Data quality (InsightsService.GetDataQuality): events rejected by reason, duplicates, completeness, declared data, freshness, fallback rate, unsegmented profiles") { qualityDays, qualityCsv };
quality.SetAction((parse, ct) => Cli.RunAsync(() => QualityCommand.RunAsync(Target(parse), parse.GetValue(qualityDays), parse.GetValue(json), parse.GetValue(qualityCsv), ct)));
root.Subcommands.Add(quality);

// No response files: System.CommandLine reads a token starting with '@' as a file of further arguments, which would
// turn `segctl forget @alice` into whatever a file named alice in the working directory holds.
var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine("error: " + error.Message);
    }

    Console.Error.WriteLine("run 'segctl --help' (or 'segctl COMMAND --help') for usage");
    return Cli.UsageError; // documented exit codes: 0 ok, 1 failure, 2 usage, 3 invalid or rejected input
}

return await parsed.InvokeAsync();

// A number option below its least value is a usage error (exit 2), not quietly taken as another setting.
static Option<int> AtLeast(Option<int> option, int least)
{
    option.Validators.Add(result =>
    {
        int value;
        try
        {
            value = result.GetValueOrDefault<int>();
        }
        catch (InvalidOperationException)
        {
            return; // not a number at all: the parser reports that itself (validators run before conversion)
        }

        if (value < least)
        {
            result.AddError($"{option.Name} must be at least {least} (got {value})");
        }
    });
    return option;
}
