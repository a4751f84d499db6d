using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Membership;
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

/// <summary>Result of stitching an anonymous id to a user.</summary>
public sealed record IdentifyResult(Profile Profile, int MergedEvents, int DuplicateEvents);

/// <summary>
/// The one way data gets into profiles: validates events and traits, applies them under the user's
/// lock, and before the call returns derives what depends on them (F6): aggregates, derived traits in
/// the derived layer (lifecycle, engagement, intent, lead score, RFM segment) and the winning segment,
/// recording a change of segment with its cause. Used by the gRPC services and the demo import alike.
/// With a durable <see cref="IChangeLog"/>, every accepted change is appended to the log (and on disk)
/// before it is applied to memory (write-ahead); <see cref="Replay"/> applies logged changes at start-up.
/// </summary>
public sealed class ProfileIngestion(IProfileStore store, CatalogProvider catalogs, RfmModelProvider rfm, MembershipIndex memberships, TimeProvider time, IChangeLog? changeLog = null)
{
    private readonly IChangeLog _log = changeLog ?? NoChangeLog.Instance;

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
        var update = ApplyEvent(e.ProfileKey, StoredEvent.From(e), now, log: true);
        return new TrackResult(update.After, !update.Changed);
    }

    /// <summary>
    /// Applies a change read back from the change log, through the same path as the live write but
    /// without logging it again. Events already recorded (same id) are skipped.
    /// </summary>
    public void Replay(ChangeRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var now = time.GetUtcNow();
        switch (record)
        {
            case EventChange change:
                ApplyEvent(change.Key, change.Event, now, log: false);
                break;
            case TraitsChange change:
                ApplyTraits(change.UserId, [.. change.Attributes.Select(a => a.ToAttribute())], now, "replay", null, null, log: false);
                break;
            case MergeChange change:
                ApplyMerge(change.AnonymousId, change.UserId, now, log: false, out _, out _);
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
            memberships.Remove(from.UserId, now, catalogs.Current.Version, $"identify:{userId}");
            return Derive(result, now, $"identify:{anonymousId}");
        });
        if (update.After.Orders > 0)
        {
            rfm.MarkDirty();
        }

        (merged, duplicates) = (m, d);
        return update;
    }

    /// <summary>Returns a profile or throws <see cref="NotFoundException"/>.</summary>
    public Profile Get(string userId)
    {
        if (string.IsNullOrEmpty(userId))
        {
            throw new ValidationException("user_id", "is required");
        }

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

        var evaluation = Decider.Evaluate(catalog, profile, RequestContext.Empty, now, model);
        memberships.Set(profile.UserId, evaluation.MatchedIds(catalog), catalog.Version, evaluation.ValidUntilTicks, now, cause, model.Version);
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
    /// restored from a snapshot), in parallel, each under its user's lock. Returns how many.
    /// </summary>
    public int EvaluateNewMemberships()
    {
        var now = time.GetUtcNow();
        var count = 0;
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
                var evaluation = Decider.Evaluate(catalog, p, RequestContext.Empty, now, model);
                memberships.Set(user, evaluation.MatchedIds(catalog), catalog.Version, evaluation.ValidUntilTicks, now, why, model.Version);
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
