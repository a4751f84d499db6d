using Segmentation.Core.Catalog;
using Segmentation.Core.Experiments;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Decisions;

/// <summary>Which segments' rules matched (indexed by rank), the winner, and until when this holds (UTC ticks).</summary>
public sealed record Membership(bool[] Matched, Segment Winner, long ValidUntilTicks)
{
    /// <summary>Ids of the matched segments, in priority order.</summary>
    public IReadOnlyList<string> MatchedIds(CatalogSnapshot catalog) => IdsOf(Matched, catalog);

    /// <summary>Ids of the segments of <paramref name="catalog"/> flagged in <paramref name="matched"/> (by rank), in priority order.</summary>
    public static string[] IdsOf(ReadOnlySpan<bool> matched, CatalogSnapshot catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var ids = new string[matched.Count(true)];
        for (int i = 0, k = 0; i < matched.Length; i++)
        {
            if (matched[i])
            {
                ids[k++] = catalog.Segments[i].Id;
            }
        }

        return ids;
    }
}

/// <summary>The winning segment and until when (UTC ticks) the same inputs give it.</summary>
/// <param name="Winner">The winner, or the fallback.</param>
/// <param name="ValidUntilTicks">Until when the result holds with time alone.</param>
public readonly record struct Resolution(Segment Winner, long ValidUntilTicks);

/// <summary>
/// The decision as a pure function of (profile, catalog, request context, now, population model):
/// no I/O, no locks, no clock reads. Evaluates every rule, resolves priority, overrides, exclusions
/// and fallback, and renders the winner's five variants.
/// </summary>
public sealed class Decider(TemplateRenderer renderer)
{
    /// <summary>
    /// The named email blocks of <paramref name="winner"/> (the segment a decision chose) rendered for the user, in
    /// the order written: what an email batch sends besides the five outcomes. <paramref name="profile"/> is the view
    /// the decision was allowed (consent-gated). A block that fails to render yields its fallback, as variants do.
    /// </summary>
    public IReadOnlyList<(string Name, RenderedVariant Block)> RenderEmailBlocks(CatalogSnapshot catalog, Segment winner, Profile? profile, RequestContext request, DateTimeOffset now, RfmModel rfm)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(winner);
        if (winner.EmailBlocks.Count == 0)
        {
            return [];
        }

        var context = new EvalContext(profile, request, now.UtcTicks, rfm, catalog.Features);
        var blocks = new (string, RenderedVariant)[winner.EmailBlocks.Count];
        RenderModel? model = null;
        try
        {
            for (var i = 0; i < blocks.Length; i++)
            {
                var block = winner.EmailBlocks[i];
                blocks[i] = (block.Name, renderer.Plain(block.Template) ?? renderer.Render(block.Template, model ??= RenderModel.Rent(context, winner.Subject, renderer.Products, catalog.Scoring)));
            }
        }
        finally
        {
            model?.Return();
        }

        return blocks;
    }

    /// <summary>
    /// Decides for one user. <paramref name="personalization"/> is the user's personalization consent
    /// (null: granted); without it the profile is not read at all: the decision is evaluated against the
    /// request context only, as for an unknown visitor, and says so (<see cref="ConsentGate.ContextOnly"/>).
    /// <paramref name="cancellation"/> is checked before rendering (the costly part): an abandoned call
    /// throws <see cref="OperationCanceledException"/> instead of rendering.
    /// </summary>
    public Decision Decide(CatalogSnapshot catalog, string userId, Profile? profile, RequestContext request, DateTimeOffset now, RfmModel rfm, bool explain, ConsentStatus? personalization = null, CancellationToken cancellation = default) =>
        Decide(catalog, userId, profile, request, now, rfm, explain, DecisionIds.Next(now), personalization, cancellation: cancellation);

    /// <summary>As the other overload, with the decision id given by the caller (who remembers decisions by it).</summary>
    /// <remarks>
    /// <paramref name="assignments"/> are the arms users were already given: a user with one keeps it (see
    /// <see cref="Experiment.Assign(string, IRecordedAssignments?, string)"/>); they are read under the profile's id
    /// (so an anonymous user's arm, recorded under the anonymous id and moved to the user when identified, is kept).
    /// </remarks>
    public Decision Decide(CatalogSnapshot catalog, string userId, Profile? profile, RequestContext request, DateTimeOffset now, RfmModel rfm, bool explain, string decisionId, ConsentStatus? personalization = null, IRecordedAssignments? assignments = null, CancellationToken cancellation = default)
    {
        // Read before the consent gate may hide the profile: the assignment and contact limits are not personalization. The
        // profile's own id is the subject every id of the user resolves to (an anonymous id identified as the user included).
        var subject = profile?.UserId ?? userId;
        var contactProfile = profile;
        var gate = personalization is { Granted: false } ? ConsentGate.ContextOnly : ConsentGate.FullProfile;
        if (gate == ConsentGate.ContextOnly)
        {
            profile = null; // behavioural, transactional and declared data are not read
        }

        var context = EvalContext.Rent(profile, request, now.UtcTicks, rfm, catalog.Features);
        var segments = catalog.Segments;
        var matched = new bool[segments.Count];
        List<SegmentTrace>? traces = explain ? new(segments.Count) : null;

        if (traces is null)
        {
            catalog.EvaluateAll(context, matched);
        }
        else
        {
            for (var i = 0; i < segments.Count; i++)
            {
                if (segments[i].Rule is { } rule) // the fallback has none
                {
                    var clauses = new List<ClauseTrace>();
                    matched[i] = rule.Explain(context, clauses);
                    traces.Add(new SegmentTrace(segments[i], matched[i], clauses));
                }
            }
        }

        var (winner, matches) = Resolve(segments, matched);

        // The decisioning holdout: a fixed share of users, by a hash of their id, get the fallback experience for
        // everything (and no experiment), so personalization's own lift is measured against them.
        var heldOut = catalog.Holdout > 0 && Assignment.InHoldout(subject, catalog.Holdout);
        if (heldOut)
        {
            winner = null;
            matches = new SegmentMatches(segments, matched, null); // matched, but none served
        }

        var fallbackUsed = winner is null;
        winner ??= catalog.Fallback;

        cancellation.ThrowIfCancellationRequested();

        // Randomised after arbitration: the winner's experiment, if one runs now, picks the user's arm, whose variants
        // are served. The decision is valid until the winner's next experiment starts or stops.
        Experiment? experiment = null;
        ExperimentArm? arm = null;
        var served = winner.Variants;
        if (heldOut)
        {
            arm = catalog.HoldoutArm;
        }
        else if (catalog.Experiments.Count > 0)
        {
            experiment = catalog.ExperimentFor(winner, subject, context.NowTicks, assignments);
            arm = experiment?.Assign(subject, assignments, subject);
            context.Until(catalog.NextExperimentChange(winner, context.NowTicks));
        }

        // Contact policies come after consent (the gate above) and after the winner is known.
        var contact = catalog.ContactPolicies.Channels.Count == 0 ? null
            : ContactEvaluation.Evaluate(catalog.ContactPolicies, request.Channel, winner, contactProfile, context, request, explain);

        // Plain-text variants are pre-rendered; the model is bound only when a variant has code, and
        // computes what its templates read as they read it.
        RenderModel? model = null;
        var variants = new RenderedVariant[served.Count];
        try
        {
            for (var k = 0; k < variants.Length; k++)
            {
                var variant = arm?.OverrideAt(k) ?? served[k]; // an arm serves its own templates where it overrides the winner's
                variants[k] = renderer.Plain(variant) ?? renderer.Render(variant, model ??= RenderModel.Rent(context, winner.Subject, renderer.Products, catalog.Scoring));
                if (variant.ReadsNow)
                {
                    context.Until(context.NowTicks + 1); // output depends on the exact time: valid for this instant only
                }
            }
        }
        finally
        {
            model?.Return();
        }

        Explanation? explanation = null;
        if (traces is not null)
        {
            var summary = fallbackUsed
                ? matches.Count == 0
                    ? $"no segment matched: fallback '{winner.Id}'"
                    : $"all {matches.Count} matched segment(s) were suppressed: fallback '{winner.Id}'"
                : $"'{winner.Id}' won: highest priority ({winner.Priority}) of {matches.Count} matched, {matches.Count(m => m.Status is MatchStatus.Overridden or MatchStatus.Excluded)} suppressed";
            var consent = personalization is not { } status
                ? "personalization consent not checked: the whole profile was read"
                : gate == ConsentGate.ContextOnly
                    ? $"{status.Describe()}: only the request context was read (gate: context only)"
                    : $"{status.Describe()}: the whole profile was read (gate: full profile)";
            if (heldOut)
            {
                summary = $"in the decisioning holdout ({catalog.Holdout:P0} of users, by a hash of the user id): the fallback '{winner.Id}' for everything; " + summary;
            }

            if (experiment is not null)
            {
                summary += $"; experiment '{experiment.Id}': arm '{arm!.Id}' ({(assignments?.RecordedArm(experiment.Id, subject) == arm!.Id ? "recorded when the user was first assigned" : "assigned by a hash of the user id")}; {(arm.Overrides.Count == 0 ? "the segment's own variants" : "its own " + string.Join(", ", arm.Overrides.Select(k => k.ToString().ToLowerInvariant())))})";
            }

            if (contact is not null)
            {
                summary += $"; contact ({contact.Channel}): {contact.Reason}";
            }

            explanation = new Explanation(traces, summary, catalog.ContextFieldsRead.Select(RequestContext.NameOf).ToList(), consent);
        }

        var decision = new Decision
        {
            DecisionId = decisionId,
            UserId = userId,
            Winner = winner,
            FallbackUsed = fallbackUsed,
            Matched = matches,
            Variants = variants,
            CatalogVersion = catalog.Version,
            EvaluatedAt = now,
            ValidUntilTicks = context.ValidUntilTicks,
            Explanation = explanation,
            ConsentGate = gate,
            Experiment = experiment,
            Arm = arm,
            Contact = contact,
        };
        context.Return(); // nothing above keeps it: variants are rendered, traces hold values
        return decision;
    }

    /// <summary>
    /// Rule matches (by rank), the winner, and until when they hold, without rendering: used on write
    /// for segment membership and change tracking, and by audits and previews.
    /// </summary>
    public static Membership Evaluate(CatalogSnapshot catalog, Profile? profile, RequestContext request, DateTimeOffset now, RfmModel rfm)
    {
        var context = EvalContext.Rent(profile, request, now.UtcTicks, rfm, catalog.Features);
        var segments = catalog.Segments;
        var matched = new bool[segments.Count];
        catalog.EvaluateAll(context, matched);
        var membership = new Membership(matched, Winner(segments, matched) ?? catalog.Fallback, context.ValidUntilTicks);
        context.Return();
        return membership;
    }

    /// <summary>
    /// The winner alone (rules, priority, overrides, exclusions, fallback) written into the caller's
    /// <paramref name="matched"/> (one entry per segment, by rank): what a send or a membership check needs,
    /// without allocating.
    /// </summary>
    public static Resolution EvaluateWinner(CatalogSnapshot catalog, Profile? profile, RequestContext request, DateTimeOffset now, RfmModel rfm, bool[] matched)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(matched);
        var segments = catalog.Segments;
        if (matched.Length != segments.Count)
        {
            throw new ArgumentException($"one entry per segment is needed ({segments.Count}, got {matched.Length})", nameof(matched));
        }

        var context = EvalContext.Rent(profile, request, now.UtcTicks, rfm, catalog.Features);
        catalog.EvaluateAll(context, matched); // writes every rule's entry; the fallback has none
        matched[catalog.Fallback.Rank] = false;
        var resolution = new Resolution(Winner(segments, matched) ?? catalog.Fallback, context.ValidUntilTicks);
        context.Return();
        return resolution;
    }

    // The winner: the first matched segment that no matched segment overrides or excludes.
    private static Segment? Winner(IReadOnlyList<Segment> segments, bool[] matched)
    {
        for (var i = 0; i < segments.Count; i++)
        {
            if (matched[i] && !AnyMatched(segments[i].OverriddenByRanks, matched) && !AnyMatched(segments[i].ExclusionRanks, matched))
            {
                return segments[i];
            }
        }

        return null;
    }

    private static bool AnyMatched(int[] ranks, bool[] matched)
    {
        foreach (var rank in ranks)
        {
            if (matched[rank])
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Priority resolution over the matched set (segments are already in priority order). A matched
    /// segment is overridden when another matched segment lists it in <c>overrides</c>, and excluded
    /// when the user matches one of the segments in its <c>exclusions</c>. Suppression uses rule
    /// matches, so it does not depend on evaluation order. The winner is the first eligible segment.
    /// </summary>
    internal static (Segment? Winner, SegmentMatches Matches) Resolve(IReadOnlyList<Segment> segments, bool[] matched)
    {
        var winner = Winner(segments, matched);
        return (winner, new SegmentMatches(segments, matched, winner));
    }
}
