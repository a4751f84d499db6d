using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Decisions;

/// <summary>A request for a decision; <see cref="ThrowIfInvalid"/> is the one check of its fields.</summary>
/// <param name="UserId">Known user id, or empty.</param>
/// <param name="AnonymousId">Anonymous visitor id, used when <paramref name="UserId"/> is empty.</param>
/// <param name="Context">The request context.</param>
/// <param name="At">Evaluation time; null means now.</param>
/// <param name="Explain">Whether to return an explanation (bypasses the cache).</param>
public sealed record DecisionRequest(string UserId, string AnonymousId, RequestContext Context, DateTimeOffset? At = null, bool Explain = false)
{
    /// <summary>
    /// The earliest evaluation time a caller may ask for: decision ids are time-ordered UUIDs (v7),
    /// which cannot encode an earlier time.
    /// </summary>
    public static readonly DateTimeOffset MinEvaluationTime = DateTimeOffset.UnixEpoch;

    /// <summary>The id decided for: the user id, or the anonymous id when there is none.</summary>
    public string SubjectId => UserId.Length > 0 ? UserId : AnonymousId;

    /// <summary>
    /// Throws <see cref="ValidationException"/> naming every invalid field: an id is required (user or
    /// anonymous), neither may be blank or longer than <see cref="InputLimits.MaxIdLength"/>, context fields
    /// are bounded, and the evaluation time is not before 1970. Valid requests (the common case) cost no allocation.
    /// </summary>
    public void ThrowIfInvalid()
    {
        if (!string.IsNullOrWhiteSpace(SubjectId) && UserId.Length <= InputLimits.MaxIdLength && AnonymousId.Length <= InputLimits.MaxIdLength
            && Context.IsWithinLimits() && !(At < MinEvaluationTime) && !(AnonymousId.Length > 0 && string.IsNullOrWhiteSpace(AnonymousId)))
        {
            return;
        }

        var v = new ViolationList();
        if (SubjectId.Length == 0)
        {
            v.Add("user_id", "user_id or anonymous_id is required");
        }

        v.OptionalId("user_id", UserId);
        v.OptionalId("anonymous_id", AnonymousId);
        CheckShared(v, Context, At);
        v.ThrowIfAny();
    }

    /// <summary>The checks a single decision and a batch share: the context's fields and the evaluation time.</summary>
    internal static void CheckShared(ViolationList v, RequestContext context, DateTimeOffset? at)
    {
        context.Validate(v, "context");
        if (at < MinEvaluationTime)
        {
            v.Add("timestamp", "must not be before 1970-01-01T00:00:00Z");
        }
    }

    /// <summary>Why one user id of a batch is invalid, or null.</summary>
    internal static FieldViolation? CheckBatchId(string id, int index) =>
        string.IsNullOrWhiteSpace(id) ? new FieldViolation($"user_ids[{index}]", "must not be empty")
        : id.Length > InputLimits.MaxIdLength ? new FieldViolation($"user_ids[{index}]", $"must be at most {InputLimits.MaxIdLength} characters")
        : null;
}

/// <summary>One result of a batch: a decision, or the reason there is none for that user.</summary>
/// <param name="Index">Position in the request.</param>
/// <param name="UserId">The id as requested.</param>
/// <param name="Decision">The decision, when one was made.</param>
/// <param name="Error">Why the id was invalid.</param>
/// <param name="Skipped">When the user was skipped for lack of consent to the batch's purpose: that consent (not an error).</param>
public sealed record BatchItem(int Index, string UserId, Decision? Decision, FieldViolation? Error, ConsentStatus? Skipped = null)
{
    /// <summary>For an email batch: when to send this user (their best hour, at or after what the contact policy allows); null otherwise, or when contact is suppressed with no next time.</summary>
    public SendTimeAdvice? SendTime { get; init; }

    /// <summary>For an email batch: the winning segment's named email blocks, rendered (empty when it declares none).</summary>
    public IReadOnlyList<(string Name, RenderedVariant Block)> EmailBlocks { get; init; } = [];
}

/// <summary>
/// Feeds the pure <see cref="Decider"/>: reads the current catalog snapshot and the profile, applies
/// the consent gate (<see cref="ConsentPolicy"/>), consults the decision cache, and caches fresh decisions.
/// Consent is part of the profile, so a consent change is a new profile version and a new cache key.
/// </summary>
public sealed class DecisionEngine(CatalogProvider catalogs, IProfileStore profiles, RfmModelProvider rfm, DecisionCache cache, Decider decider, TimeProvider time, ConsentPolicy? consent = null, DecisionMeasurement? measurement = null, SendTimePriorProvider? sendTimes = null)
{
    private readonly ConsentPolicy _consent = consent ?? ConsentPolicy.Default;

    /// <summary>Maximum users per batch.</summary>
    public const int MaxBatchSize = 10_000;

    /// <summary>
    /// Decides for one user. <paramref name="cancellation"/> (the caller's deadline) is checked before
    /// any work and again before rendering: an abandoned call throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public Decision Decide(DecisionRequest request, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellation.ThrowIfCancellationRequested();
        request.ThrowIfInvalid();
        var (now, served) = EvaluationTime(request.At);
        return DecideOne(catalogs.Current, rfm.Current, request.SubjectId, profiles.Get(request.SubjectId), request.Context, now, request.Explain, cancellation, fillCache: served, served: served);
    }

    /// <summary>
    /// Decides for one user at a past time as if the decision had been served then: remembered and counted at that time
    /// (the demo's simulated history; a caller's own past times are previews).
    /// </summary>
    internal Decision DecideAsServed(DecisionRequest request)
    {
        request.ThrowIfInvalid();
        var now = request.At ?? time.GetUtcNow();
        if (now > time.GetUtcNow() + ServedClockSkew)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "a decision served later than now cannot be counted");
        }

        return DecideOne(catalogs.Current, rfm.Current, request.SubjectId, profiles.Get(request.SubjectId), request.Context, now, request.Explain, CancellationToken.None);
    }

    /// <summary>
    /// How far a caller's evaluation time may be from the server's clock for the decision to count as served: further
    /// off, it is a preview or a replay, answered like any decision but neither remembered for outcomes nor counted in
    /// the KPIs and experiments (a decision dated years ahead would take over the KPIs' time slots).
    /// </summary>
    public static readonly TimeSpan ServedClockSkew = TimeSpan.FromMinutes(5);

    // The evaluation time, and whether a decision made at it is a served one (unset, or within the clock skew of now).
    private (DateTimeOffset Now, bool Served) EvaluationTime(DateTimeOffset? at)
    {
        var now = time.GetUtcNow();
        return at is not { } asked ? (now, true) : (asked, (asked - now).Duration() <= ServedClockSkew);
    }

    /// <summary>
    /// Decides for many users with one catalog snapshot and one frozen evaluation time. Results are
    /// yielded in order as each is ready; an invalid user id yields an error item and the batch goes on.
    /// With a <paramref name="purpose"/> (email marketing for an email send), users without consent to it
    /// are yielded as skipped, with that consent as the reason; unknown users have none and are skipped too.
    /// <paramref name="cancellation"/> is checked before each user: once it is cancelled (the caller's
    /// deadline passed) enumeration stops with <see cref="OperationCanceledException"/>.
    /// A batch answers from the decision cache where it can but does not fill it: a send's thousands of
    /// decisions are asked for once, and would push out the storefront's hot entries. A user listed again (the same id,
    /// or another id of the same profile) gets an error item naming the first.
    /// </summary>
    public IEnumerable<BatchItem> DecideBatch(IReadOnlyList<string> userIds, RequestContext context, DateTimeOffset? at, bool explain, ConsentPurpose? purpose = null, CancellationToken cancellation = default)
    {
        cancellation.ThrowIfCancellationRequested();
        if (userIds.Count == 0)
        {
            throw new ValidationException("user_ids", "at least one user id is required");
        }

        if (userIds.Count > MaxBatchSize)
        {
            throw new ValidationException("user_ids", $"at most {MaxBatchSize} users per batch (got {userIds.Count})");
        }

        var v = new ViolationList();
        DecisionRequest.CheckShared(v, context, at);
        v.ThrowIfAny();

        var (now, served) = EvaluationTime(at);
        return Batch(userIds, context, catalogs.Current, rfm.Current, now, served, explain, purpose, cancellation);
    }

    private IEnumerable<BatchItem> Batch(IReadOnlyList<string> userIds, RequestContext context, CatalogSnapshot catalog, RfmModel model, DateTimeOffset now, bool served, bool explain, ConsentPurpose? purpose, CancellationToken cancellation)
    {
        var prior = context.Channel == "email" ? sendTimes?.Current ?? SendTimePrior.Default : null; // send times are for email sends

        // Each person once: a second id of the same profile (the same id again, or an id stitched to it) is an error of
        // its item, not a second decision (an email send would mail them twice, each time within the contact cap).
        var decided = new Dictionary<string, int>(userIds.Count, StringComparer.Ordinal);
        for (var i = 0; i < userIds.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            var id = userIds[i];
            if (DecisionRequest.CheckBatchId(id, i) is { } invalid)
            {
                yield return new BatchItem(i, InputLimits.Bounded(id, InputLimits.MaxIdLength + 1), null, invalid); // echoed, never whole: an id of megabytes stays in its request
            }
            else
            {
                // One read of the profile per user: the consent check, the decision, its send time and its email blocks
                // all see the same version of it.
                var profile = profiles.Get(id);
                if (!decided.TryAdd(profile?.UserId ?? id, i))
                {
                    yield return new BatchItem(i, id, null, new FieldViolation($"user_ids[{i}]", $"the same user as user_ids[{decided[profile?.UserId ?? id]}]: a batch decides each user once"));
                    continue;
                }

                if (purpose is { } p && _consent.Status(profile, p) is { Granted: false } missing)
                {
                    yield return new BatchItem(i, id, null, null, missing);
                    continue;
                }

                var decision = DecideOne(catalog, model, id, profile, context, now, explain, cancellation, fillCache: false, served: served);
                yield return new BatchItem(i, id, decision, null)
                {
                    SendTime = prior is null ? null : SendTimeFor(catalog, model, profile, decision, context, prior, now),
                    EmailBlocks = prior is null || decision.Winner.EmailBlocks.Count == 0 ? [] : BlocksFor(catalog, model, profile, decision, context, now),
                };
            }
        }
    }

    // The winner's email blocks, rendered from the profile the decision could see (consent-gated).
    private IReadOnlyList<(string Name, RenderedVariant Block)> BlocksFor(CatalogSnapshot catalog, RfmModel model, Profile? stored, Decision decision, RequestContext context, DateTimeOffset now)
    {
        var profile = stored is null ? null : _consent.GatedView(stored);
        return decider.RenderEmailBlocks(catalog, decision.Winner, profile, context, now, model);
    }

    // The user's best hour, at or after the contact policy's earliest time (none when contact is suppressed for good).
    // An hour past the decision's validity is checked against the policy as it will be then (an unopened send becoming
    // ignored may start a pause before it, or the user's engagement drop to a level whose cap allows none), and moved on
    // to when contact is allowed again.
    private SendTimeAdvice? SendTimeFor(CatalogSnapshot catalog, RfmModel model, Profile? stored, Decision decision, RequestContext context, SendTimePrior prior, DateTimeOffset now)
    {
        var advice = SendTimeAt(catalog, stored, decision.Contact, context, prior, now);
        for (var check = 0; advice is not null && advice.SendAtTicks >= decision.ValidUntilTicks; check++)
        {
            var then = ContactEvaluation.Evaluate(catalog.ContactPolicies, context.Channel, decision.Winner, stored, new Rules.EvalContext(stored, context, advice.SendAtTicks, model), context);
            if (then is null or { Action: ContactAction.Send })
            {
                break;
            }

            if (check == MaxSendTimeChecks)
            {
                return null; // still refused after so many moves (pauses following one another): none rather than one inside a pause
            }

            advice = SendTimeAt(catalog, stored, then, context, prior, now);
        }

        return advice;
    }

    // How many times a send time past its decision's validity is moved on to when the policy allows contact again.
    private const int MaxSendTimeChecks = 32;

    // The user's best hour at or after the earliest time the verdict allows.
    private SendTimeAdvice? SendTimeAt(CatalogSnapshot catalog, Profile? stored, ContactDecision? verdict, RequestContext context, SendTimePrior prior, DateTimeOffset now)
    {
        var earliest = verdict switch
        {
            { Action: ContactAction.Suppress, SendAtTicks: 0 } => -1L,
            { Action: ContactAction.Suppress or ContactAction.SendAt } c => c.SendAtTicks,
            _ => now.UtcTicks,
        };
        if (earliest < 0)
        {
            return null;
        }

        var profile = stored is null ? null : _consent.GatedView(stored); // behaviour the decision could not see is not used for timing either
        return SendTimeEstimator.Estimate(profile, ContactEvaluation.ZoneOf(catalog.ContactPolicies, stored, context), prior, now.UtcTicks, earliest, catalog.ContactPolicies.For(context.Channel)?.Quiet);
    }

    private Decision DecideOne(CatalogSnapshot catalog, RfmModel model, string userId, Profile? profile, RequestContext context, DateTimeOffset now, bool explain, CancellationToken cancellation, bool fillCache = true, bool served = true)
    {
        var versions = new DecisionVersions(profile?.Version ?? 0, catalog.Version, model.Version);

        if (explain)
        {
            // For inspection: computed afresh, neither cached nor remembered (so not counted in KPIs).
            return decider.Decide(catalog, userId, profile, context, now, model, explain, DecisionIds.Next(now), _consent.Status(profile, ConsentPurpose.Personalization), measurement?.Exposures, cancellation);
        }

        var (sequence, decisionId) = (served ? measurement?.Ledger.Issue(now) : null) ?? (-1, DecisionIds.Next(now));
        try
        {
            return DecideIssued(catalog, model, userId, profile, context, now, fillCache, versions, sequence, decisionId, cancellation);
        }
        catch when (sequence >= 0)
        {
            measurement!.Ledger.Abandon(sequence); // never to be written: the KPIs' drain and the journal pass it at once
            throw;
        }
    }

    // A decision whose id is issued: from the cache or computed, then cached and remembered.
    private Decision DecideIssued(CatalogSnapshot catalog, RfmModel model, string userId, Profile? profile, RequestContext context, DateTimeOffset now, bool fillCache, DecisionVersions versions, long sequence, string decisionId, CancellationToken cancellation)
    {
        Decision decision;
        var cached = cache.Find(userId, versions, catalog.ContextFieldsRead, context, now.UtcTicks);
        if (cached is not null)
        {
            decision = cached.Decision with { DecisionId = decisionId, FromCache = true, EvaluatedAt = now }; // valid at now: it is the decision for now (one batch, one time)
        }
        else
        {
            decision = decider.Decide(catalog, userId, profile, context, now, model, explain: false, decisionId, _consent.Status(profile, ConsentPurpose.Personalization), measurement?.Exposures, cancellation);
            // Not cached while its experiment arm may still change (the user's first arm not recorded yet after the weights
            // changed): a hit would go on serving this arm after the recorded one is known.
            if (fillCache && !TimedOut(decision) && !(decision.Arm is { } arm && measurement is not null && measurement.Exposures.ArmMayChange(arm.ExperimentId, profile?.UserId ?? userId))) // the subject its arm is recorded under (a linked id's user)
            {
                cache.Set(userId, versions, catalog.ContextFieldsRead, context, decision);
            }
        }

        if (sequence >= 0)
        {
            // The profile's own id string where it is the same id: the ledger then holds no copy of it.
            var subject = profile is not null && string.Equals(profile.UserId, userId, StringComparison.Ordinal) ? profile.UserId : userId;
            measurement!.Remember(sequence, subject, KeyOf(measurement, catalog, decision, cached, context.Channel), now.UtcTicks);
        }

        return decision;
    }

    // A render abandoned for its time is a failure of the moment, not of the template: such a decision is not cached
    // (its fallback text would be served until the profile, catalog or model changed).
    private static bool TimedOut(Decision decision)
    {
        var variants = decision.Variants;
        for (var i = 0; i < variants.Count; i++)
        {
            if (variants[i].TimedOut)
            {
                return true;
            }
        }

        return false;
    }

    // The ledger's key of a decision; one served from the cache keeps its key beside it, so a hit skips the lookup.
    private static DecisionKey KeyOf(DecisionMeasurement measurement, CatalogSnapshot catalog, Decision decision, CachedDecision? cached, string? channel)
    {
        if (cached is null)
        {
            return measurement.KeyFor(catalog, decision.Winner, channel, fromCache: false, decision.Arm);
        }

        if (cached.ServedKey is { } kept && Channels.Is(kept.Channel, channel))
        {
            return kept;
        }

        return cached.ServedKey = measurement.KeyFor(catalog, decision.Winner, channel, fromCache: true, decision.Arm);
    }
}
