using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Segmentation.Core.Application.Audit;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Privacy;

/// <summary>A user's consent: the current state per purpose and the whole audit trail.</summary>
/// <param name="UserId">The profile key the id resolved to.</param>
/// <param name="Purposes">The current consent for every purpose (the default where none was recorded).</param>
/// <param name="Trail">Every grant and withdrawal recorded, in time order.</param>
public sealed record ConsentView(string UserId, IReadOnlyList<ConsentStatus> Purposes, IReadOnlyList<ConsentRecord> Trail);

/// <summary>The export of one user.</summary>
/// <param name="UserId">The profile key the id resolved to.</param>
/// <param name="Json">Everything held about the user, as a JSON object.</param>
public sealed record UserDataExport(string UserId, string Json);

/// <summary>The export of one user in parts, for a profile of any size (see <see cref="DataSubjectRights.ExportInParts"/>).</summary>
/// <param name="UserId">The profile key the id resolved to.</param>
/// <param name="EventCount">The events the export holds.</param>
/// <param name="Parts">
/// JSON Lines, in parts of whole lines: the first line is the export object without its events (with
/// <c>event_count</c>), then one line per stored event, oldest first. Each part is written as it is read.
/// </param>
public sealed record UserDataExportParts(string UserId, int EventCount, IEnumerable<string> Parts);

/// <summary>
/// The data subject's rights over their data: see it (<see cref="Export"/>, <see cref="GetConsent"/>)
/// and erase it (<see cref="ForgetAsync"/>). Recording consent is a write and goes through
/// <see cref="ProfileIngestion.RecordConsent"/>.
/// </summary>
public sealed class DataSubjectRights(
    ProfileIngestion ingestion,
    IProfileStore store,
    CatalogProvider catalogs,
    RfmModelProvider rfm,
    MembershipIndex memberships,
    DecisionCache cache,
    TimeProvider time,
    IStoreCompaction? compaction = null,
    IMeasurementCheckpoint? checkpoint = null,
    OutcomeRecorder? outcomes = null,
    AdminAuditTrail? audit = null,
    ChangeStream.IChangeFeedJournal? journal = null,
    ChangeStream.TriggerScheduler? triggers = null,
    IEnumerable<IErasureParticipant>? participants = null)
{
    private readonly IErasureParticipant[] _participants = [.. participants ?? []];

    private readonly IStoreCompaction _compaction = compaction ?? NoStoreCompaction.Instance;

    // Each erasure whose files are not cleaned yet (a compaction failed), by each of its ids: its ids and the stream
    // offset it blanked through. A retry finds the profile gone and the ids stitched to it with it; it cleans their files
    // from here, through that offset only (a later entry under one of them is a new profile's, which the retry leaves alone).
    private readonly Dictionary<string, List<Unfinished>> _unfinished = new(StringComparer.Ordinal); // under its own lock

    private sealed record Unfinished(IReadOnlySet<string> Ids, long Through);

    /// <summary>
    /// Erases a user everywhere: the profile and every id stitched to it, identity links and segment
    /// memberships (<see cref="ProfileIngestion.Forget"/>, logged write-ahead), every cached decision for
    /// any of those ids, the decisions and impressions remembered for attribution, the ids in the admin audit trail
    /// (replaced by <see cref="AdminAuditTrail.Erased"/>), and then durable storage, by compacting it (<see cref="IStoreCompaction"/>: a
    /// snapshot without the user replaces the older snapshots and log segments, including the one holding
    /// the erasure record), the saved measurement state, the change stream's files and every <see cref="IErasureParticipant"/> (holders outside the store). Nothing is emitted on the membership change feed. Idempotent: erasing an
    /// unknown or erased id succeeds (and compacts again, so a retry after a failed compaction completes it, for the ids stitched to the user too: they are kept until the files are cleaned, in this run of the process).
    /// Compaction is not cancelled when the caller goes away. When the compaction fails (a full disk), the
    /// erasure still holds in memory and in the log, and <see cref="StorageUnavailableException"/> tells the
    /// caller to retry.
    /// </summary>
    public async Task<ForgetResult> ForgetAsync(string userId)
    {
        var result = ingestion.Forget(userId);
        var erasedThrough = memberships.Feed.Last; // the entries blanked in memory; a later one under the id is a new profile's
        var ids = new HashSet<string>([userId, result.UserId, .. result.LinkedIds], StringComparer.Ordinal);
        List<Unfinished> earlier;
        lock (_unfinished)
        {
            earlier = [.. ids.SelectMany(id => _unfinished.GetValueOrDefault(id) ?? []).Distinct()];
        }

        var everyId = new HashSet<string>(ids.Concat(earlier.SelectMany(e => e.Ids)), StringComparer.Ordinal); // with an earlier attempt's
        cache.RemoveUsers(ids);
        outcomes?.Forget(ids); // remembered decisions and impressions hold the ids too
        triggers?.Forget(ids); // pending triggers too: none fires for a new profile under the id, none is saved again
        try
        {
            audit?.Erase(everyId); // the admin audit trail keeps the actions, not the person's id
            await _compaction.CompactAsync(CancellationToken.None).ConfigureAwait(false);
            outcomes?.Forget(ids); // again: a decision computed from the profile before the erasure (in flight then) may have been remembered since
            checkpoint?.Save(); // the saved measurement state (remembered decisions, impressions) no longer holds the ids either
            checkpoint?.DeleteSetAside(); // nor a copy of it set aside as unreadable
            journal?.Redact(ids, erasedThrough); // nor the change stream's files (entries blanked as in memory, saved memberships and triggers)
            foreach (var e in earlier)
            {
                journal?.Redact(e.Ids, e.Through); // an earlier attempt's ids, as far as it blanked them
            }

            foreach (var participant in _participants)
            {
                await participant.EraseAsync(everyId, CancellationToken.None).ConfigureAwait(false); // holders outside the store (dead letters)
            }

            List<Unfinished> meanwhile;
            lock (_unfinished)
            {
                // An attempt about these ids that was still running when this one started (a client's timeout, then its
                // retry) may have failed since, naming ids this one did not know (an anonymous id linked to the user):
                // this one is then not complete either, and its record must stay for the retry.
                meanwhile = [.. everyId.SelectMany(id => _unfinished.GetValueOrDefault(id) ?? []).Distinct().Where(u => !earlier.Contains(u))];
                if (meanwhile.Count == 0)
                {
                    foreach (var id in everyId)
                    {
                        _unfinished.Remove(id);
                    }
                }
            }

            if (meanwhile.Count > 0)
            {
                throw new StorageUnavailableException("another erasure of this user, still running when this one started, failed meanwhile; retry ForgetUser (it is idempotent) to complete both");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var unfinished = new Unfinished(ids, erasedThrough);
            lock (_unfinished)
            {
                foreach (var id in ids)
                {
                    ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_unfinished, id, out _);
                    (list ??= []).Add(unfinished);
                }
            }

            // Erased in memory and logged as erased (a restart never brings the user back), but older files
            // still hold the user's data: the caller must retry until the compaction succeeds.
            throw new StorageUnavailableException($"the user was erased from the live store, but removing their data from the files on disk (or another holder of it, such as dead letters) failed ({StorageUnavailableException.Describe(ex)}); retry ForgetUser (it is idempotent) until it succeeds", ex);
        }
        finally
        {
            // Again: a decision computed from the profile before the erasure (a Decide in flight) may have been cached
            // since the first removal; never served (its profile version is gone), but it holds rendered personal text.
            cache.RemoveUsers(ids);
        }

        return result;
    }

    /// <summary>
    /// The consent of a user for every purpose and its trail. An unknown user has no trail and the
    /// defaults of the <see cref="ConsentPolicy"/> (this is not an error: a consent banner may ask first).
    /// </summary>
    public ConsentView GetConsent(string userId)
    {
        RequireId(userId);
        var profile = store.Get(userId);
        return new ConsentView(
            profile?.UserId ?? store.Resolve(userId),
            [.. ConsentPolicy.Purposes.Select(p => ingestion.Consent.Status(profile, p))],
            profile?.ConsentTrail ?? []);
    }

    /// <summary>
    /// Everything held about a user, as indented JSON (snake_case): attributes with layer, source, time and
    /// PII flag, every stored event, the consent trail and current consent, the segment history and current
    /// memberships, linked ids, aggregates and derived scores. Throws <see cref="NotFoundException"/> for an
    /// unknown user, and <see cref="NotReadyException"/> (retry shortly) while memberships are rebuilt after a restart.
    /// </summary>
    public UserDataExport Export(string userId) => ExportAtMost(userId, MaxEventsInOneExport);

    /// <summary>
    /// Most events <see cref="Export"/> puts in one document (about 35 MB of JSON); a larger profile is exported with
    /// <see cref="ExportInParts"/>, so no larger export is ever built whole in memory.
    /// </summary>
    public const int MaxEventsInOneExport = 100_000;

    /// <summary>Most events in one part of <see cref="ExportInParts"/>.</summary>
    public const int EventsPerPart = 1_000;

    internal UserDataExport ExportAtMost(string userId, int maxEvents)
    {
        var profile = ProfileToExport(userId);
        if (profile.Events.Count > maxEvents)
        {
            throw new LimitExceededException(
                $"this user's export holds {profile.Events.Count:N0} events, more than one document carries ({maxEvents:N0}): use StreamUserExport, which sends it in parts");
        }

        return new UserDataExport(profile.UserId, JsonSerializer.Serialize(Describe(profile, withEvents: true), UserExportJson.Default.UserExport));
    }

    /// <summary>
    /// Everything <see cref="Export"/> holds, as JSON Lines in parts of at most <see cref="EventsPerPart"/> events:
    /// the export object without its events first, then each event on a line of its own. The profile is read once,
    /// so the parts are one consistent export however long they take to send. Throws as <see cref="Export"/> does for
    /// a missing id or an unknown user; there is no size limit.
    /// </summary>
    public UserDataExportParts ExportInParts(string userId)
    {
        var profile = ProfileToExport(userId);
        return new UserDataExportParts(profile.UserId, profile.Events.Count, Lines(profile));
    }

    private IEnumerable<string> Lines(Profile profile)
    {
        var part = new System.Text.StringBuilder();
        part.Append(JsonSerializer.Serialize(Describe(profile, withEvents: false), UserExportLinesJson.Default.UserExport)).Append('\n');
        var inPart = 0;
        foreach (var e in profile.Events)
        {
            if (inPart == EventsPerPart)
            {
                yield return part.ToString();
                part.Clear();
                inPart = 0;
            }

            part.Append(JsonSerializer.Serialize(Exported(e), UserExportLinesJson.Default.ExportedEvent)).Append('\n');
            inPart++;
        }

        yield return part.ToString();
    }

    private Profile ProfileToExport(string userId)
    {
        RequireId(userId);
        var profile = store.Get(userId) ?? throw new NotFoundException("no profile for this user_id (never written, or erased)");
        memberships.ThrowIfIncomplete(); // the export lists the user's segments: not from an index still being rebuilt
        return profile;
    }

    private static ExportedEvent Exported(StoredEvent e) =>
        new(e.EventId, e.Type, new DateTimeOffset(e.Ticks, TimeSpan.Zero), e.Value, e.Quantity, e.SessionId, e.Source, e.PageType, e.Category, e.ProductId, e.CampaignId, e.Country);

    /// <summary>Most remembered decisions an export lists (the newest; it says how many there are).</summary>
    public const int MaxDecisionsInOneExport = 1_000;

    private UserExport Describe(Profile profile, bool withEvents)
    {
        var traits = catalogs.Current.Traits;
        var model = rfm.Current;
        var a = profile.Aggregates;
        var linked = store.LinkedIds(profile.UserId);
        var held = outcomes?.HeldAbout(new HashSet<string>([profile.UserId, .. linked], StringComparer.Ordinal), MaxDecisionsInOneExport);
        return new UserExport(
            profile.UserId,
            time.GetUtcNow(),
            profile.Version,
            linked,
            [.. profile.AttributesAsObserved().OrderBy(x => x.Name, StringComparer.Ordinal).Select(x => new ExportedAttribute(
                x.Name,
                ValueOf(x.Value),
                x.Layer switch { AttributeLayer.ZeroParty => "zero_party", AttributeLayer.FirstParty => "first_party", _ => "derived" },
                x.Source,
                x.UpdatedAt,
                traits.TryGetValue(x.Name, out var t) && t.Pii))],
            profile.Events.Count,
            withEvents ? [.. profile.Events.Select(Exported)] : null,
            [.. ConsentPolicy.Purposes.Select(p => ingestion.Consent.Status(profile, p)).Select(s => new ExportedConsentState(ConsentPolicy.NameOf(s.Purpose), s.Granted, s.Recorded, s.Latest?.Source, s.Latest?.At))],
            [.. profile.ConsentTrail.Select(c => new ExportedConsent(ConsentPolicy.NameOf(c.Purpose), c.Granted, c.Source, c.At))],
            profile.CurrentSegment,
            [.. profile.SegmentHistory.Select(c => new ExportedSegmentChange(c.From, c.To, c.At, c.Cause))],
            memberships.SegmentsOf(profile.UserId),
            new ExportedAggregates(
                a.TotalEvents,
                profile.Sessions,
                Time(a.FirstSeenTicks),
                Time(a.LastSeenTicks),
                a.Orders,
                a.Revenue,
                Time(a.FirstPurchaseTicks),
                Time(a.LastPurchaseTicks),
                a.CartItems,
                [.. a.OpenedCampaigns.Order(StringComparer.Ordinal)],
                [.. a.ClickedCampaigns.Order(StringComparer.Ordinal)]),
            new ExportedRfm(model.Recency(profile), model.Frequency(profile), model.Monetary(profile)),
            [.. (held?.Experiments ?? []).Select(e => new ExportedExperiment(
                e.ExperimentId,
                e.ArmId,
                e.SegmentId,
                new DateTimeOffset(e.Record.AssignedTicks, TimeSpan.Zero),
                e.Record.ExposedTicks == 0 ? null : new DateTimeOffset(e.Record.ExposedTicks, TimeSpan.Zero),
                e.Record.Impressions,
                e.Record.Clicks,
                e.Record.Conversions,
                e.Record.Unsubscribes,
                e.Record.Revenue))],
            held?.Decisions ?? 0,
            [.. (held?.Newest ?? []).Select(d => new ExportedDecision(d.DecisionId.ToString(), d.UserId, d.Segment.Id, d.Channel, d.CatalogVersion, new DateTimeOffset(d.Ticks, TimeSpan.Zero), d.Key.Arm?.ExperimentId, d.Key.Arm?.Id))]);
    }

    private static void RequireId(string userId)
    {
        var v = new ViolationList();
        v.RequiredId("user_id", userId);
        v.ThrowIfAny();
    }

    private static DateTimeOffset? Time(long ticks) => ticks == long.MinValue ? null : new DateTimeOffset(ticks, TimeSpan.Zero);

    private static JsonNode? ValueOf(object value) => value switch
    {
        string s => JsonValue.Create(s),
        double d => JsonValue.Create(d),
        bool b => JsonValue.Create(b),
        DateTimeOffset t => JsonValue.Create(t),
        IEnumerable<string> l => new JsonArray([.. l.Select(x => (JsonNode?)JsonValue.Create(x))]),
        _ => JsonValue.Create(value.ToString()),
    };
}

/// <summary>The export of one user (see <see cref="DataSubjectRights.Export"/>).</summary>
internal sealed record UserExport(
    string UserId,
    DateTimeOffset ExportedAt,
    long ProfileVersion,
    IReadOnlyList<string> LinkedIds,
    IReadOnlyList<ExportedAttribute> Attributes,
    int EventCount,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ExportedEvent>? Events,
    IReadOnlyList<ExportedConsentState> Consent,
    IReadOnlyList<ExportedConsent> ConsentTrail,
    string? CurrentSegment,
    IReadOnlyList<ExportedSegmentChange> SegmentHistory,
    IReadOnlyList<string> Memberships,
    ExportedAggregates Aggregates,
    ExportedRfm Rfm,
    IReadOnlyList<ExportedExperiment> Experiments,
    int RememberedDecisionCount,
    IReadOnlyList<ExportedDecision> RememberedDecisions);

/// <summary>The user's record in one experiment: the arm, when given and first exposed, and the outcomes counted after.</summary>
internal sealed record ExportedExperiment(string ExperimentId, string ArmId, string SegmentId, DateTimeOffset AssignedAt, DateTimeOffset? ExposedAt, int Impressions, int Clicks, int Conversions, int Unsubscribes, double Revenue);

/// <summary>A decision remembered for attributing outcomes: its id, the id decided for, the winner, channel, catalog version, time and arm.</summary>
internal sealed record ExportedDecision(string DecisionId, string DecidedFor, string SegmentId, string Channel, long CatalogVersion, DateTimeOffset At, string? ExperimentId, string? ArmId);

internal sealed record ExportedAttribute(string Name, JsonNode? Value, string Layer, string Source, DateTimeOffset UpdatedAt, bool Pii);

internal sealed record ExportedEvent(string EventId, string Type, DateTimeOffset Timestamp, double Value, int Quantity, string SessionId, string Source, string PageType, string? Category, string? ProductId, string? CampaignId, string? Country);

internal sealed record ExportedConsentState(string Purpose, bool Granted, bool Recorded, string? Source, DateTimeOffset? At);

internal sealed record ExportedConsent(string Purpose, bool Granted, string Source, DateTimeOffset At);

internal sealed record ExportedSegmentChange(string? From, string To, DateTimeOffset At, string Cause);

internal sealed record ExportedAggregates(int TotalEvents, int Sessions, DateTimeOffset? FirstSeen, DateTimeOffset? LastSeen, int Orders, double Revenue, DateTimeOffset? FirstPurchase, DateTimeOffset? LastPurchase, int CartItems, IReadOnlyList<string> OpenedCampaigns, IReadOnlyList<string> ClickedCampaigns);

internal sealed record ExportedRfm(int Recency, int Frequency, int Monetary);

/// <summary>Source-generated JSON metadata for user exports.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(UserExport))]
internal sealed partial class UserExportJson : JsonSerializerContext;

/// <summary>Source-generated JSON metadata for user exports in parts: one object per line.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(UserExport))]
[JsonSerializable(typeof(ExportedEvent))]
internal sealed partial class UserExportLinesJson : JsonSerializerContext;
