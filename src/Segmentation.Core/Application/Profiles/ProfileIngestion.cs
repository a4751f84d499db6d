using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>Result of recording one event.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Duplicate">True when the event id had been recorded before; nothing changed.</param>
public readonly record struct TrackResult(Profile Profile, bool Duplicate);

/// <summary>What happened to one event of a bulk write.</summary>
public enum EventStatus
{
    /// <summary>Recorded.</summary>
    Accepted,

    /// <summary>Already recorded (same event id); nothing changed.</summary>
    Duplicate,

    /// <summary>Invalid; nothing stored. See the violations.</summary>
    Rejected,
}

/// <summary>The result of one event of a bulk write.</summary>
public sealed record EventResult(int Index, string EventId, EventStatus Status, Profile? Profile, IReadOnlyList<FieldViolation> Violations);

/// <summary>Result of a traits write.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Applied">Names whose value was stored.</param>
/// <param name="Ignored">Names not stored because a more reliable layer holds them (F2).</param>
public sealed record SetTraitsResult(Profile Profile, IReadOnlyList<string> Applied, IReadOnlyList<string> Ignored);

/// <summary>Result of recording a consent grant or withdrawal.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Duplicate">True when the identical entry (purpose, grant, source, time) was already in the trail; nothing changed.</param>
public sealed record ConsentResult(Profile Profile, bool Duplicate);

/// <summary>Result of an erasure.</summary>
/// <param name="UserId">The erased profile's key (the id the request resolved to through identity links).</param>
/// <param name="Existed">False when there was nothing to erase (unknown id, or erased before).</param>
/// <param name="LinkedIds">The anonymous or session ids that were linked to it and were erased with it.</param>
public sealed record ForgetResult(string UserId, bool Existed, IReadOnlyList<string> LinkedIds);

/// <summary>Result of a retention pass.</summary>
/// <param name="ProfilesChanged">Profiles that lost at least one event.</param>
/// <param name="EventsRemoved">Events removed.</param>
public sealed record RetentionResult(int ProfilesChanged, int EventsRemoved);

/// <summary>What a start-up restore read.</summary>
/// <param name="Snapshot">The snapshot loaded, or null.</param>
/// <param name="Log">The log replayed after it.</param>
/// <param name="Rfm">The RFM model in force afterwards.</param>
/// <param name="Expired">What the retention sweep after the replay removed.</param>
public sealed record StoreRestore(RestoredSnapshot? Snapshot, LogReplay Log, RfmModel Rfm, RetentionResult Expired);

/// <summary>Result of stitching an anonymous id to a user.</summary>
public sealed record IdentifyResult(Profile Profile, int MergedEvents, int DuplicateEvents);

/// <summary>
/// The one way data gets into profiles: validates events and traits, applies them under the user's
/// lock, and before the call returns derives what depends on them (F6): aggregates, derived traits in
/// the derived layer (lifecycle, engagement, intent, lead score, RFM segment) and the winning segment,
/// recording a change of segment with its cause. Used by the gRPC services and the demo import alike.
/// With a durable <see cref="IChangeLog"/>, every accepted change is appended to the log (and on disk)
/// before it is applied to memory (write-ahead); <see cref="Replay"/> applies logged changes at start-up.
/// Privacy (F9) is enforced here too: consent is recorded with its trail, segment membership of users
/// without personalization consent is evaluated on the request context only and never emitted, erasure
/// (<see cref="Forget"/>) removes a user and its linked ids, and events past their retention are rejected
/// and removed by <see cref="ApplyRetention"/> (also right after a restart's replay).
/// </summary>
public sealed class ProfileIngestion(
    IProfileStore store,
    CatalogProvider catalogs,
    RfmModelProvider rfm,
    MembershipIndex memberships,
    TimeProvider time,
    IChangeLog? changeLog = null,
    ConsentPolicy? consent = null,
    RetentionPolicy? retention = null) : ISnapshotStateSource
{
    private readonly IChangeLog _log = changeLog ?? NoChangeLog.Instance;

    /// <summary>What a snapshot carries besides profiles: the recent RFM models (writes logged after it may name them) and the highest version handed out.</summary>
    public SnapshotState Capture() => new([.. rfm.Recent.Where(m => m.Version > 0).Select(RfmModelChange.From)], store.Version);

    /// <summary>What unknown consent means.</summary>
    public ConsentPolicy Consent { get; } = consent ?? ConsentPolicy.Default;

    /// <summary>How long events are kept.</summary>
    public RetentionPolicy Retention { get; } = retention ?? RetentionPolicy.KeepForever;

    /// <summary>Maximum traits per write.</summary>
    public const int MaxTraits = 100;

    /// <summary>The default of <see cref="EventLimit"/>.</summary>
    public const int MaxEventsPerProfile = 1_000_000;

    /// <summary>Most events one profile holds; an event beyond it is refused (RESOURCE_EXHAUSTED) until retention or erasure makes room.</summary>
    public int EventLimit { get; init; } = MaxEventsPerProfile;

    /// <summary>Maximum events per bulk call.</summary>
    public const int MaxBatch = 1000;

    /// <summary>The earliest timestamp a trait may hold (time arithmetic over stored times never leaves the representable range).</summary>
    public static readonly DateTimeOffset EarliestTimestamp = new(1800, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The first timestamp a trait may no longer hold.</summary>
    public static readonly DateTimeOffset LatestTimestamp = new(2200, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Source recorded on derived attributes.</summary>
    public const string DerivedSource = "segmentation-service";

    /// <summary>Validates and records one event. Throws <see cref="ValidationException"/> when invalid.</summary>
    public TrackResult Track(BehaviourEvent e, string prefix = "event")
    {
        var now = time.GetUtcNow();
        EventValidator.Validate(e, now, prefix);
        if (Retention.IsExpired(e.Type, e.Timestamp.UtcTicks, now.UtcTicks))
        {
            throw new ValidationException($"{prefix}.timestamp", $"is older than the retention period of '{(e.Type.Length > 64 ? e.Type[..64] : e.Type)}' events ({Retention.For(e.Type)!.Value.TotalDays:0.##} days): such events are not stored");
        }

        var update = ApplyEvent(e.ProfileKey, StoredEvent.From(e), Live(now));
        return new TrackResult(update.After, !update.Changed);
    }

    // How a write is applied: live (now, the current RFM model, the store's next version, logged write-ahead)
    // or replayed from the change log (the record's time, model and version; not logged again).
    private readonly record struct WriteStamp(DateTimeOffset Now, RfmModel Model, long Version, bool Log)
    {
        // The logged record with this write's version, time and model.
        public T Stamp<T>(T record, long version)
            where T : ChangeRecord => record with { Version = version, AppliedTicks = Now.UtcTicks, RfmVersion = Model.Version };

        // True when a replayed record is already part of the profile: every write to a profile takes a
        // newer version under its lock, so a profile at the record's version or later holds its change.
        public bool AlreadyIn(Profile p) => Version > 0 && p.Version >= Version;
    }

    private WriteStamp Live(DateTimeOffset now) => new(now, rfm.Current, 0, Log: true);

    private WriteStamp Replayed(ChangeRecord record) => new(
        record.AppliedTicks > 0 ? new DateTimeOffset(record.AppliedTicks, TimeSpan.Zero) : time.GetUtcNow(),
        (record.RfmVersion > 0 ? rfm.Find(record.RfmVersion) : null) ?? rfm.Current,
        record.Version,
        Log: false);

    /// <summary>
    /// Applies a change read back from the change log, through the same path as the live write but
    /// without logging it again, at the record's time, version and RFM model, so the profile ends up exactly
    /// as it was acknowledged. A record whose version the profile already has (or an event already recorded,
    /// or a consent entry already in the trail) is skipped; an erasure removes again. Applying the same
    /// record twice therefore gives the same store (snapshot and log tail may overlap).
    /// </summary>
    public void Replay(ChangeRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var stamp = Replayed(record);
        switch (record)
        {
            case EventChange change:
                ApplyEvent(change.Key, change.Event, stamp);
                break;
            case TraitsChange change:
                var schema = catalogs.Current.Traits;
                ApplyTraits(
                    change.UserId,
                    [.. change.Attributes.Select(a => a.ToAttribute()).Select(a => schema.TryGetValue(a.Name, out var d) ? a.Shared(d.Name, d.Pii) : a)],
                    stamp,
                    change.Attributes.Count > 0 ? change.Attributes[0].Source : "replay",
                    null,
                    null);
                break;
            case MergeChange change:
                ApplyMerge(change.AnonymousId, change.UserId, stamp, out _, out _);
                break;
            case ConsentChange change:
                ApplyConsent(change.Key, change.Consent, stamp);
                break;
            case ForgetChange change:
                store.RaiseVersion(change.Version);
                ApplyForget(change.UserId, log: false);
                foreach (var linked in change.LinkedIds)
                {
                    ApplyForget(linked, log: false);
                }

                break;
            case ExpireChange change:
                var ids = change.EventIds.ToHashSet(StringComparer.Ordinal);
                ApplyExpiry(change.UserId, e => ids.Contains(e.EventId), stamp, out _);
                break;
            case RfmModelChange change:
                rfm.Publish(change.ToModel(), replayed: true);
                break;
            default:
                throw new ArgumentException($"unknown change record {record.GetType().Name}", nameof(record));
        }
    }

    // Under the user's lock: skips a recorded event id, logs the event (write-ahead), then applies and derives.
    private ProfileUpdate ApplyEvent(string key, StoredEvent stored, WriteStamp stamp)
    {
        var update = store.Update(
            key,
            (p, v) =>
            {
                if (p.HasEvent(stored.EventId) || stamp.AlreadyIn(p))
                {
                    return p;
                }

                if (stamp.Log && p.Events.Count >= EventLimit)
                {
                    throw new LimitExceededException($"the profile holds {EventLimit:N0} events, the most one profile may hold; this event was not stored");
                }

                if (stamp.Log)
                {
                    _log.Append(stamp.Stamp(new EventChange(key, stored), v));
                }

                var applied = p.Apply(stored, v);
                return ReferenceEquals(applied, p) ? p : Derive(applied, stamp, $"event:{stored.EventId}");
            },
            stamp.Version);
        if (update.Changed && stored.Type is EventTypes.Purchase or EventTypes.Refund)
        {
            rfm.MarkDirty();
        }

        return update;
    }

    /// <summary>
    /// Records many events; each is validated and applied on its own, so one bad event is rejected by
    /// itself and never affects the others. Results are yielded in order.
    /// </summary>
    public IEnumerable<EventResult> TrackMany(IReadOnlyList<BehaviourEvent> events)
    {
        if (events.Count > MaxBatch)
        {
            throw new ValidationException("events", $"at most {MaxBatch} events per call (got {events.Count}); use StreamEvents for more");
        }

        for (var i = 0; i < events.Count; i++)
        {
            yield return TrackOne(i, events[i], $"events[{i}]");
        }
    }

    /// <summary>Records one event of a stream, reporting rather than throwing a validation failure.</summary>
    public EventResult TrackOne(int index, BehaviourEvent e, string prefix = "event")
    {
        try
        {
            var result = Track(e, prefix);
            return new EventResult(index, e.EventId, result.Duplicate ? EventStatus.Duplicate : EventStatus.Accepted, result.Profile, []);
        }
        catch (ValidationException ex)
        {
            return new EventResult(index, e.EventId, EventStatus.Rejected, null, ex.Violations);
        }
        catch (LimitExceededException ex)
        {
            return new EventResult(index, e.EventId, EventStatus.Rejected, null, [new FieldViolation(prefix, ex.Message)]);
        }
    }

    /// <summary>
    /// Validates and writes traits. Names must be declared in the catalog schema and values must have
    /// the declared type; lists are at most 100 strings of at most 256 characters.
    /// </summary>
    public SetTraitsResult SetTraits(string userId, IReadOnlyDictionary<string, object?> traits, string source, AttributeLayer layer, DateTimeOffset? at)
    {
        var schema = catalogs.Current.Traits;
        var v = new ViolationList();
        v.Required("user_id", userId, 256);
        v.Required("source", source, 64);
        if (traits.Count is 0 or > MaxTraits)
        {
            v.Add("traits", $"between 1 and {MaxTraits} traits are required (got {traits.Count})");
        }

        if (!Enum.IsDefined(layer))
        {
            v.Add("layer", $"unknown data layer {(int)layer}"); // an undefined layer would outrank every real one (F2)
        }

        var now = time.GetUtcNow();
        var when = at ?? now;
        if (when > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", "must not be in the future");
        }

        if (traits.Count > MaxTraits)
        {
            v.ThrowIfAny(); // too many to look at one by one
        }

        var attributes = new List<ProfileAttribute>();
        foreach (var (name, value) in traits.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (name.Length > 64)
            {
                v.Add("traits", $"trait names are at most 64 characters ('{name[..64]}…')");
                continue;
            }

            var field = $"traits[{name}]";
            if (!schema.TryGetValue(name, out var definition))
            {
                v.Add(field, $"unknown trait '{(name.Length > 64 ? name[..64] : name)}': declare it in the catalog schema");
                continue;
            }

            var problem = CheckValue(definition.Type, value);
            if (problem is not null)
            {
                v.Add(field, problem);
                continue;
            }

            attributes.Add(new ProfileAttribute(name, value!, layer, source, when).Shared(definition.Name, definition.Pii));
        }

        v.ThrowIfAny();
        var applied = new List<string>();
        var ignored = new List<string>();
        var update = ApplyTraits(userId, attributes, Live(now), source, applied, ignored);
        return new SetTraitsResult(update.After, applied, ignored);
    }

    // Under the user's lock: applies the attributes under the layer hierarchy; when any is stored, logs
    // the write (write-ahead) before the new profile is published, then derives.
    private ProfileUpdate ApplyTraits(string userId, IReadOnlyList<ProfileAttribute> attributes, WriteStamp stamp, string source, List<string>? applied, List<string>? ignored) =>
        store.Update(
            userId,
            (p, version) =>
            {
                applied?.Clear();
                ignored?.Clear();
                if (stamp.AlreadyIn(p))
                {
                    return p;
                }

                var profile = p;
                foreach (var attribute in attributes)
                {
                    if (profile.TrySetAttribute(attribute, version, out var next))
                    {
                        profile = next;
                        applied?.Add(attribute.Name);
                    }
                    else
                    {
                        ignored?.Add(attribute.Name);
                    }
                }

                if (ReferenceEquals(profile, p))
                {
                    return p;
                }

                if (stamp.Log)
                {
                    _log.Append(stamp.Stamp(new TraitsChange(userId, [.. attributes.Select(LoggedAttribute.From)]), version));
                }

                return Derive(profile, stamp, $"traits:{source}");
            },
            stamp.Version);

    /// <summary>
    /// Stitches an anonymous or session id to a known user (F5): the anonymous history merges into the
    /// user's, events both recorded count once, and later events and decisions for the anonymous id go
    /// to the user.
    /// </summary>
    public IdentifyResult Identify(string anonymousId, string userId)
    {
        var v = new ViolationList();
        v.Required("anonymous_id", anonymousId, 256);
        v.Required("user_id", userId, 256);
        if (anonymousId == userId && anonymousId.Length > 0)
        {
            v.Add("anonymous_id", "must differ from user_id");
        }

        v.ThrowIfAny();
        var update = ApplyMerge(anonymousId, userId, Live(time.GetUtcNow()), out var merged, out var duplicates);
        return new IdentifyResult(update.After, merged, duplicates);
    }

    // Under both profiles' locks: logs the merge (write-ahead), then merges. Nothing is logged when both ids
    // already resolve to one profile. Holding both locks while logging keeps the record in order with every
    // write to either profile, so a compaction that captures them after its rotation either sees the merge or
    // finds the record in the log it replays. Events are logged under the key they were sent for and links are
    // followed on replay, so an event logged before or after the merge record ends up in the same profile.
    private ProfileUpdate ApplyMerge(string anonymousId, string userId, WriteStamp stamp, out int merged, out int duplicates)
    {
        int m = 0, d = 0;
        var update = store.Merge(
            anonymousId,
            userId,
            (into, from, version) =>
            {
                if (stamp.Log)
                {
                    _log.Append(stamp.Stamp(new MergeChange(anonymousId, userId), from is null ? 0 : version));
                }

                if (from is null)
                {
                    return into;
                }

                var result = into.Merge(from, version, out m, out d);

                // The anonymous id leaves its segments (watchers see it leave) and is then no member of anything:
                // from now on it resolves to the user, who is counted once, under the user's id.
                memberships.Set(from.UserId, [], catalogs.Current.Version, long.MaxValue, stamp.Now, $"identify:{userId}", publish: Consent.Gate(from) == ConsentGate.FullProfile);
                memberships.Forget(from.UserId);
                return Derive(result, stamp, $"identify:{anonymousId}");
            },
            stamp.Version);
        if (update.Changed && ((update.Before?.Orders ?? 0) != update.After.Orders || (update.Before?.Revenue ?? 0) != update.After.Revenue))
        {
            rfm.MarkDirty(); // the anonymous history held purchases: the population changed
        }

        (merged, duplicates) = (m, d);
        return update;
    }

    /// <summary>
    /// Records a consent grant or withdrawal for a purpose (F9) in the profile's audit trail, with its source
    /// and time (null: now). Logged write-ahead like every other write; the profile's version changes, so no
    /// decision cached under the previous consent is served. Memberships are re-evaluated at once: without
    /// personalization consent only the request context counts, and the change is not emitted to watchers.
    /// </summary>
    public ConsentResult RecordConsent(string key, ConsentPurpose purpose, bool granted, string source, DateTimeOffset? at)
    {
        var v = new ViolationList();
        v.Required("user_id", key, 256);
        v.Required("source", source, 64);
        if (!Enum.IsDefined(purpose))
        {
            v.Add("purpose", "must be one of personalization, analytics, email_marketing, advertising");
        }

        // An undated record takes the time it was received. A dated one a little in the future (clock skew,
        // within the accepted 5 minutes) is taken as now: a grant "from the future" must never outrank a
        // withdrawal received after it. Records are ordered by time; of two with the same time, the one
        // recorded last counts.
        var now = time.GetUtcNow();
        var when = at ?? now;
        if (when > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", "must not be in the future");
        }
        else if (when > now)
        {
            when = now;
        }

        v.ThrowIfAny();
        var update = ApplyConsent(key, new ConsentRecord(purpose, granted, source, when), Live(now));
        return new ConsentResult(update.After, !update.Changed);
    }

    // Under the user's lock: skips an entry already in the trail, logs (write-ahead), then applies and derives.
    private ProfileUpdate ApplyConsent(string key, ConsentRecord record, WriteStamp stamp) =>
        store.Update(
            key,
            (p, version) =>
            {
                var next = stamp.AlreadyIn(p) ? p : p.WithConsent(record, version);
                if (ReferenceEquals(next, p))
                {
                    return p;
                }

                if (stamp.Log)
                {
                    _log.Append(stamp.Stamp(new ConsentChange(key, record), version));
                }

                return Derive(next, stamp, $"consent:{ConsentPolicy.NameOf(record.Purpose)}:{(record.Granted ? "granted" : "withdrawn")}");
            },
            stamp.Version);

    /// <summary>
    /// Erases a user (F9, right to erasure): the profile <paramref name="userId"/> resolves to, every
    /// anonymous or session id stitched to it (their data was merged into it) and the identity links, and
    /// the user's segment memberships, without emitting any membership change. The erasure is logged
    /// write-ahead (<see cref="ForgetChange"/>) under the user's lock before anything is removed; compacting
    /// durable storage afterwards is the caller's part. Erasing an unknown or already erased id succeeds and
    /// logs nothing. Later writes for any of the ids start a fresh profile.
    /// </summary>
    public ForgetResult Forget(string userId)
    {
        var v = new ViolationList();
        v.Required("user_id", userId, 256);
        v.ThrowIfAny();
        var removal = ApplyForget(userId, log: true);
        return new ForgetResult(removal.UserId, removal.Removed is not null || removal.LinkedIds.Count > 0, removal.LinkedIds);
    }

    private ProfileRemoval ApplyForget(string key, bool log)
    {
        var removal = store.Remove(key, (resolved, profile, linked) =>
        {
            if (log && (profile is not null || linked.Count > 0))
            {
                // Its version keeps the versions of a profile written after the erasure above the erased one's.
                _log.Append(new ForgetChange(resolved, linked) { Version = Math.Max(profile?.Version ?? 0, store.Version), AppliedTicks = time.GetUtcNow().UtcTicks });
            }

            memberships.Forget(resolved);
            foreach (var id in linked)
            {
                memberships.Forget(id);
            }
        });
        if (removal.Removed is { Orders: > 0 })
        {
            rfm.MarkDirty();
        }

        return removal;
    }

    /// <summary>
    /// Applies the retention policy (F9) at the current time: per profile, under its lock, removes the
    /// events older than their type's retention with their ids, replays the aggregates over the rest (the
    /// same replay as a late event's) and derives again, so removed events stop counting everywhere. Run
    /// periodically; compact durable storage afterwards so removed events also leave the disk (on replay
    /// they are skipped anyway).
    /// </summary>
    public RetentionResult ApplyRetention(CancellationToken cancellation = default)
    {
        if (Retention.IsKeepForever)
        {
            return new RetentionResult(0, 0);
        }

        var now = time.GetUtcNow();
        var nowTicks = now.UtcTicks;
        int profiles = 0, events = 0;
        foreach (var key in store.Snapshot().Select(p => p.UserId).ToList())
        {
            cancellation.ThrowIfCancellationRequested();
            var update = ApplyExpiry(key, e => Retention.IsExpired(e, nowTicks), Live(now), out var removed);
            if (update.Changed && removed > 0)
            {
                profiles++;
                events += removed;
            }
        }

        return new RetentionResult(profiles, events);
    }

    // Under the user's lock: removes the events expired selects, logs their ids (write-ahead), derives again
    // and takes their ids out of the segment history's causes, so a removed event is named nowhere.
    private ProfileUpdate ApplyExpiry(string key, Func<StoredEvent, bool> expired, WriteStamp stamp, out int removed)
    {
        var count = 0;
        var update = store.Update(
            key,
            (p, version) =>
            {
                if (stamp.AlreadyIn(p))
                {
                    return p;
                }

                var gone = p.Events.Where(expired).Select(e => e.EventId).ToList();
                if (gone.Count == 0)
                {
                    return p;
                }

                if (stamp.Log)
                {
                    _log.Append(stamp.Stamp(new ExpireChange(p.UserId, gone), version));
                }

                var ids = gone.ToHashSet(StringComparer.Ordinal);
                var next = p.WithoutEvents(e => ids.Contains(e.EventId), version, out count).WithoutEventCauses(ids);
                return Derive(next, stamp, "retention");
            },
            stamp.Version);
        removed = count;
        if (update.Changed && update.Before is { } before && (before.Orders != update.After.Orders || before.Revenue != update.After.Revenue))
        {
            rfm.MarkDirty();
        }

        return update;
    }

    /// <summary>
    /// Restores the durable store at start-up, before anything else writes: loads the snapshot the
    /// directory's manifest names, replays the state it carries (the RFM models) and then the log segments
    /// after it, each change at its logged time, version and model, so that every profile is exactly as it
    /// was acknowledged; opens the log for appending; leaves the last logged RFM model current (dirty when
    /// purchases were logged after it, as the running server's was); and then applies retention at the current
    /// time, as the running server's next sweep would have, so no event past its retention is served after a
    /// restart. Memberships of profiles restored from the snapshot are evaluated separately
    /// (<see cref="EvaluateNewMemberships"/>).
    /// </summary>
    public StoreRestore Restore(IStoreRecovery durable)
    {
        ArgumentNullException.ThrowIfNull(durable);
        var snapshot = durable.RestoreSnapshot();
        if (snapshot is not null)
        {
            store.RaiseVersion(snapshot.State.VersionFloor);
            foreach (var record in snapshot.State.Preamble)
            {
                Replay(record);
            }
        }

        var recovery = durable.ReplayLog(Replay);
        // The last logged model is current again, dirty when purchases were logged after it: the periodic
        // recomputation then follows as it would have. A log without any model (written before models were
        // logged) gets one now rather than scoring everyone 0 until then.
        var model = rfm.Current.Version == 0 && rfm.IsDirty ? RecomputeRfm() : rfm.Current;
        var expired = ApplyRetention();
        return new StoreRestore(snapshot, recovery, model, expired);
    }

    /// <summary>
    /// Recomputes the RFM model over the store, logs it (write-ahead, like every change: a restart derives
    /// the changes logged after it with the same model) and publishes it.
    /// </summary>
    public RfmModel RecomputeRfm()
    {
        var model = rfm.Compute(store);
        try
        {
            _log.Append(RfmModelChange.From(model));
        }
        catch
        {
            rfm.MarkDirty(); // not published: the next attempt recomputes
            throw;
        }

        rfm.Publish(model);
        return model;
    }

    /// <summary>Returns a profile or throws <see cref="NotFoundException"/>.</summary>
    public Profile Get(string userId)
    {
        var v = new ViolationList();
        v.Required("user_id", userId, 256);
        v.ThrowIfAny();
        return store.Get(userId) ?? throw new NotFoundException("no profile for this user_id (never written, or erased)");
    }

    // Derived data on write: derived traits in the derived layer, and the winning segment.
    private Profile Derive(Profile profile, WriteStamp stamp, string cause)
    {
        var catalog = catalogs.Current;
        var model = stamp.Model;
        var now = stamp.Now;
        var context = new EvalContext(profile, RequestContext.Empty, now.UtcTicks, model);
        var lead = DerivedScores.LeadScore(context, catalog.Scoring.Lead);
        SetDerived(ref profile, "lifecycle_stage", DerivedScores.LifecycleStage(context), now);
        SetDerived(ref profile, "engagement_status", DerivedScores.Engagement(context), now);
        SetDerived(ref profile, "intent_level", DerivedScores.Intent(context), now);
        SetDerived(ref profile, "lead_score", (double)lead, now);
        SetDerived(ref profile, "lead_grade", DerivedScores.LeadGrade(DerivedScores.GradedLeadScore(profile, lead), catalog.Scoring.Lead), now);
        SetDerived(ref profile, "rfm_segment", DerivedScores.RfmSegment(model.Recency(profile), model.Frequency(profile), model.Monetary(profile)), now);

        // Membership honours consent like Decide: without personalization consent only the (empty) request
        // context is evaluated, and nothing about the user is emitted to watchers.
        var full = Consent.Gate(profile) == ConsentGate.FullProfile;
        var evaluation = Decider.Evaluate(catalog, full ? profile : null, RequestContext.Empty, now, model);
        memberships.Set(profile.UserId, evaluation.MatchedIds(catalog), catalog.Version, evaluation.ValidUntilTicks, now, cause, model.Version, publish: full);
        return profile.WithSegment(evaluation.Winner.Id, now, cause);
    }

    /// <summary>
    /// Re-evaluates the memberships of users evaluated under another catalog version or RFM model, or
    /// whose results may have changed with time (F15: memberships migrate when definitions change). Runs under each
    /// user's lock without changing the profile, so Decide is never blocked. Returns how many were re-evaluated.
    /// </summary>
    public int RefreshMemberships(CancellationToken cancellation = default)
    {
        var now = time.GetUtcNow();
        var count = 0;
        foreach (var user in memberships.StaleUsers(catalogs.Current.Version, rfm.Current.Version, now.UtcTicks).ToList())
        {
            cancellation.ThrowIfCancellationRequested();
            EvaluateMembership(user, now, cause: null);
            count++;
        }

        return count;
    }

    /// <summary>
    /// Evaluates the memberships of every profile the membership index does not know yet (profiles
    /// restored from a snapshot), in parallel, each under its user's lock. Returns how many. For start-up,
    /// before traffic: an index still empty is first sized for the store (<see cref="MembershipIndex.Reserve"/>).
    /// </summary>
    public int EvaluateNewMemberships()
    {
        var now = time.GetUtcNow();
        var count = 0;
        memberships.Reserve(store.Count); // empty after a snapshot restore: sized once instead of grown a million entries
        Parallel.ForEach(store.Snapshot(), profile =>
        {
            if (memberships.CatalogVersionOf(profile.UserId) == 0)
            {
                EvaluateMembership(profile.UserId, now, "restore");
                Interlocked.Increment(ref count);
            }
        });
        return count;
    }

    // Re-evaluates one user's memberships under the user's lock without changing the profile.
    private void EvaluateMembership(string user, DateTimeOffset now, string? cause) =>
        store.Update(user, (p, _) =>
        {
            if (p.UserId != user)
            {
                // An id stitched to another profile is no member of anything: its user is counted, once.
                memberships.Forget(user);
            }
            else if (p.TotalEvents + p.Attributes.Count > 0)
            {
                var catalog = catalogs.Current;
                var model = rfm.Current;
                var why = cause ?? (memberships.CatalogVersionOf(user) != catalog.Version ? $"catalog:v{catalog.Version}" : "time");
                var full = Consent.Gate(p) == ConsentGate.FullProfile;
                var evaluation = Decider.Evaluate(catalog, full ? p : null, RequestContext.Empty, now, model);
                memberships.Set(user, evaluation.MatchedIds(catalog), catalog.Version, evaluation.ValidUntilTicks, now, why, model.Version, publish: full);
            }
            else
            {
                memberships.Forget(user);
            }

            return p;
        });

    // Stores a derived value in the derived layer (F1) when it changed; a declared or observed value of the same name is kept (F2).
    private static void SetDerived(ref Profile profile, string name, object? value, DateTimeOffset now)
    {
        if (value is not null && !Equals(profile.Trait(name), value))
        {
            profile.TrySetAttribute(new ProfileAttribute(name, value, AttributeLayer.Derived, DerivedSource, now), profile.Version, out profile);
        }
    }

    private static string? CheckValue(FieldType type, object? value) => (type, value) switch
    {
        (_, null) => "a value is required",
        (FieldType.String, string s) => s.Length > 1024 ? "must be at most 1024 characters" : null,
        (FieldType.Number, double d) => double.IsFinite(d) ? null : "must be a finite number",
        (FieldType.Bool, bool) => null,
        (FieldType.Timestamp, DateTimeOffset t) => t >= EarliestTimestamp && t < LatestTimestamp ? null : "must be between 1800-01-01 and 2199-12-31",
        (FieldType.List, IReadOnlyList<string> l) => l.Count > 100 || l.Any(x => x.Length > 256) ? "at most 100 values of at most 256 characters" : null,
        _ => $"must be a {type.ToString().ToLowerInvariant()} (the type declared in the catalog schema)",
    };
}
