using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Membership;
using Segmentation.Core.Privacy;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using Segmentation.Core.Storage;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Profiles;

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
/// (<see cref="Forget"/>) removes a user and its linked ids, and events past their retention are rejected,
/// skipped on replay and removed by <see cref="ApplyRetention"/>.
/// </summary>
public sealed class ProfileIngestion(
    IProfileStore store,
    CatalogProvider catalogs,
    RfmModelProvider rfm,
    MembershipIndex memberships,
    TimeProvider time,
    IChangeLog? changeLog = null,
    ConsentPolicy? consent = null,
    RetentionPolicy? retention = null)
{
    private readonly IChangeLog _log = changeLog ?? NoChangeLog.Instance;

    /// <summary>What unknown consent means.</summary>
    public ConsentPolicy Consent { get; } = consent ?? ConsentPolicy.Default;

    /// <summary>How long events are kept.</summary>
    public RetentionPolicy Retention { get; } = retention ?? RetentionPolicy.KeepForever;

    /// <summary>Maximum traits per write.</summary>
    public const int MaxTraits = 100;

    /// <summary>Maximum events per bulk call.</summary>
    public const int MaxBatch = 1000;

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

        var update = ApplyEvent(e.ProfileKey, StoredEvent.From(e), now, log: true);
        return new TrackResult(update.After, !update.Changed);
    }

    /// <summary>
    /// Applies a change read back from the change log, through the same path as the live write but
    /// without logging it again. Events already recorded (same id) and events past their retention are
    /// skipped; a consent entry already in the trail is not added again; an erasure removes again.
    /// Applying the same record twice therefore gives the same store (snapshot and log tail may overlap).
    /// </summary>
    public void Replay(ChangeRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var now = time.GetUtcNow();
        switch (record)
        {
            case EventChange change:
                if (!Retention.IsExpired(change.Event, now.UtcTicks))
                {
                    ApplyEvent(change.Key, change.Event, now, log: false);
                }

                break;
            case TraitsChange change:
                ApplyTraits(change.UserId, [.. change.Attributes.Select(a => a.ToAttribute())], now, "replay", null, null, log: false);
                break;
            case MergeChange change:
                ApplyMerge(change.AnonymousId, change.UserId, now, log: false, out _, out _);
                break;
            case ConsentChange change:
                ApplyConsent(change.Key, change.Consent, now, log: false);
                break;
            case ForgetChange change:
                ApplyForget(change.UserId, log: false);
                foreach (var linked in change.LinkedIds)
                {
                    ApplyForget(linked, log: false);
                }

                break;
            default:
                throw new ArgumentException($"unknown change record {record.GetType().Name}", nameof(record));
        }
    }

    // Under the user's lock: skips a recorded event id, logs the event (write-ahead), then applies and derives.
    private ProfileUpdate ApplyEvent(string key, StoredEvent stored, DateTimeOffset now, bool log)
    {
        var update = store.Update(key, (p, v) =>
        {
            if (p.HasEvent(stored.EventId))
            {
                return p;
            }

            if (log)
            {
                _log.Append(new EventChange(key, stored));
            }

            var applied = p.Apply(stored, v);
            return ReferenceEquals(applied, p) ? p : Derive(applied, now, $"event:{stored.EventId}");
        });
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

            attributes.Add(new ProfileAttribute(name, value!, layer, source, when));
        }

        v.ThrowIfAny();
        var applied = new List<string>();
        var ignored = new List<string>();
        var update = ApplyTraits(userId, attributes, now, source, applied, ignored, log: true);
        return new SetTraitsResult(update.After, applied, ignored);
    }

    // Under the user's lock: applies the attributes under the layer hierarchy; when any is stored, logs
    // the write (write-ahead) before the new profile is published, then derives.
    private ProfileUpdate ApplyTraits(string userId, IReadOnlyList<ProfileAttribute> attributes, DateTimeOffset now, string source, List<string>? applied, List<string>? ignored, bool log) =>
        store.Update(userId, (p, version) =>
        {
            applied?.Clear();
            ignored?.Clear();
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

            if (log)
            {
                _log.Append(new TraitsChange(userId, [.. attributes.Select(LoggedAttribute.From)]));
            }

            return Derive(profile, now, $"traits:{source}");
        });

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
        var update = ApplyMerge(anonymousId, userId, time.GetUtcNow(), log: true, out var merged, out var duplicates);
        return new IdentifyResult(update.After, merged, duplicates);
    }

    // Logs the merge (write-ahead, unless both ids already resolve to one profile), then merges. Events
    // are logged under the key they were sent for and links are followed on replay, so an event logged
    // just before or after the merge record ends up in the same profile either way.
    private ProfileUpdate ApplyMerge(string anonymousId, string userId, DateTimeOffset now, bool log, out int merged, out int duplicates)
    {
        if (log && store.Resolve(anonymousId) != store.Resolve(userId))
        {
            _log.Append(new MergeChange(anonymousId, userId));
        }

        int m = 0, d = 0;
        var update = store.Merge(anonymousId, userId, (into, from, version) =>
        {
            var result = into.Merge(from, version, out m, out d);
            memberships.Set(from.UserId, [], catalogs.Current.Version, long.MaxValue, now, $"identify:{userId}", publish: Consent.Gate(from) == ConsentGate.FullProfile);
            return Derive(result, now, $"identify:{anonymousId}");
        });
        if (update.After.Orders > 0)
        {
            rfm.MarkDirty();
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

        var now = time.GetUtcNow();
        var when = at ?? now;
        if (when > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", "must not be in the future");
        }

        v.ThrowIfAny();
        var update = ApplyConsent(key, new ConsentRecord(purpose, granted, source, when), now, log: true);
        return new ConsentResult(update.After, !update.Changed);
    }

    // Under the user's lock: skips an entry already in the trail, logs (write-ahead), then applies and derives.
    private ProfileUpdate ApplyConsent(string key, ConsentRecord record, DateTimeOffset now, bool log) =>
        store.Update(key, (p, version) =>
        {
            var next = p.WithConsent(record, version);
            if (ReferenceEquals(next, p))
            {
                return p;
            }

            if (log)
            {
                _log.Append(new ConsentChange(key, record));
            }

            return Derive(next, now, $"consent:{ConsentPolicy.NameOf(record.Purpose)}:{(record.Granted ? "granted" : "withdrawn")}");
        });

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
                _log.Append(new ForgetChange(resolved, linked));
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
        var purchasesRemoved = false;
        foreach (var key in store.Snapshot().Select(p => p.UserId).ToList())
        {
            cancellation.ThrowIfCancellationRequested();
            var removed = 0;
            var update = store.Update(key, (p, version) =>
            {
                var next = p.WithoutEvents(e => Retention.IsExpired(e, nowTicks), version, out removed);
                return ReferenceEquals(next, p) ? p : Derive(next, now, "retention");
            });
            if (update.Changed && removed > 0)
            {
                profiles++;
                events += removed;
                purchasesRemoved |= update.Before is { } before && (before.Orders != update.After.Orders || before.Revenue != update.After.Revenue);
            }
        }

        if (purchasesRemoved)
        {
            rfm.MarkDirty();
        }

        return new RetentionResult(profiles, events);
    }

    /// <summary>Returns a profile or throws <see cref="NotFoundException"/>.</summary>
    public Profile Get(string userId)
    {
        var v = new ViolationList();
        v.Required("user_id", userId, 256);
        v.ThrowIfAny();
        return store.Get(userId) ?? throw new NotFoundException($"no profile for user '{userId}'");
    }

    // Derived data on write: derived traits in the derived layer, and the winning segment.
    private Profile Derive(Profile profile, DateTimeOffset now, string cause)
    {
        var catalog = catalogs.Current;
        var model = rfm.Current;
        var context = new EvalContext(profile, RequestContext.Empty, now.UtcTicks, model);
        var lead = DerivedScores.LeadScore(context, catalog.Scoring.Lead);
        SetDerived(ref profile, "lifecycle_stage", DerivedScores.LifecycleStage(context), now);
        SetDerived(ref profile, "engagement_status", DerivedScores.Engagement(context), now);
        SetDerived(ref profile, "intent_level", DerivedScores.Intent(context), now);
        SetDerived(ref profile, "lead_score", (double)lead, now);
        SetDerived(ref profile, "lead_grade", DerivedScores.LeadGrade(lead, catalog.Scoring.Lead), now);
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
            if (p.TotalEvents + p.Attributes.Count > 0)
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
        (FieldType.Timestamp, DateTimeOffset) => null,
        (FieldType.List, IReadOnlyList<string> l) => l.Count > 100 || l.Any(x => x.Length > 256) ? "at most 100 values of at most 256 characters" : null,
        _ => $"must be a {type.ToString().ToLowerInvariant()} (the type declared in the catalog schema)",
    };
}
