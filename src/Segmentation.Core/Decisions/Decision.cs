using Segmentation.Core.Catalog;
using Segmentation.Core.Privacy;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Decisions;

/// <summary>How priority resolution treated a matched segment.</summary>
public enum MatchStatus
{
    /// <summary>The segment won.</summary>
    Winner,

    /// <summary>Eligible, but a higher-priority segment won.</summary>
    Outranked,

    /// <summary>Suppressed by a matched segment that overrides it.</summary>
    Overridden,

    /// <summary>Suppressed because the user is in a segment it excludes.</summary>
    Excluded,
}

/// <summary>A segment whose rule matched, and what resolution did with it.</summary>
public sealed record SegmentMatch(Segment Segment, MatchStatus Status, string? SuppressedBy);

/// <summary>The evaluation of one segment, for explanations.</summary>
public sealed record SegmentTrace(Segment Segment, bool Matched, IReadOnlyList<ClauseTrace> Clauses)
{
    /// <summary>Path of the first failing leaf clause, or null when matched.</summary>
    public string? FirstFailingClause => Matched ? null : Clauses.LastOrDefault(c => c.Actual is not null && !c.Result)?.Path;
}

/// <summary>The rule-by-rule explanation of a decision.</summary>
/// <param name="Segments">Every segment's rule result, in priority order.</param>
/// <param name="Summary">A one-line summary.</param>
/// <param name="ContextFieldsRead">The context fields the catalog reads.</param>
/// <param name="Consent">Which consent gate applied and why, for example "personalization consent withdrawn by 'web-banner' at ...: only the request context was read".</param>
public sealed record Explanation(IReadOnlyList<SegmentTrace> Segments, string Summary, IReadOnlyList<string> ContextFieldsRead, string Consent = "");

/// <summary>The output of a decision (see <see cref="Decider"/>).</summary>
public sealed record Decision
{
    /// <summary>Unique id of this decision.</summary>
    public required string DecisionId { get; init; }

    /// <summary>The user (or anonymous id) decided for.</summary>
    public required string UserId { get; init; }

    /// <summary>The winning segment, or the fallback.</summary>
    public required Segment Winner { get; init; }

    /// <summary>True when no segment was eligible and the fallback was used.</summary>
    public required bool FallbackUsed { get; init; }

    /// <summary>Matched segments in priority order.</summary>
    public required IReadOnlyList<SegmentMatch> Matched { get; init; }

    /// <summary>The winner's five rendered variants, indexed by <see cref="VariantKind"/>.</summary>
    public required IReadOnlyList<RenderedVariant> Variants { get; init; }

    /// <summary>Catalog version used.</summary>
    public required long CatalogVersion { get; init; }

    /// <summary>Evaluation time used.</summary>
    public required DateTimeOffset EvaluatedAt { get; init; }

    /// <summary>Until when (UTC ticks) the same inputs are guaranteed to give the same result.</summary>
    public required long ValidUntilTicks { get; init; }

    /// <summary>
    /// Which data the decision read: the whole profile (personalization consent applies) or only the
    /// request context (no personalization consent: as for an unknown visitor).
    /// </summary>
    public ConsentGate ConsentGate { get; init; } = ConsentGate.FullProfile;

    /// <summary>True when served from the decision cache.</summary>
    public bool FromCache { get; init; }

    /// <summary>The explanation, when asked for.</summary>
    public Explanation? Explanation { get; init; }

    /// <summary>The variant of one kind.</summary>
    public RenderedVariant Variant(VariantKind kind) => Variants[(int)kind];
}
