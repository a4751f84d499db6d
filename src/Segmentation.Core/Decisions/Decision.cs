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
/// <param name="Segment">The segment.</param>
/// <param name="Status">Winner, outranked, overridden or excluded.</param>
/// <param name="SuppressedBy">The id of the matched segment that overrides or excludes it, if any.</param>
public readonly record struct SegmentMatch(Segment Segment, MatchStatus Status, string? SuppressedBy);

/// <summary>
/// The matched segments of one decision in priority order, each with what resolution did with it. Kept
/// as the rule matches (one flag per segment) and read from them: a decision does not build a list it
/// may never be asked for, and a cached decision holds one flag per segment instead of an object per match.
/// </summary>
public sealed class SegmentMatches : IReadOnlyList<SegmentMatch>
{
    private readonly IReadOnlyList<Segment> _segments;
    private readonly bool[] _matched;
    private readonly Segment? _winner;
    private int[]? _ranks;

    internal SegmentMatches(IReadOnlyList<Segment> segments, bool[] matched, Segment? winner)
    {
        _segments = segments;
        _matched = matched;
        _winner = winner;
        foreach (var m in matched)
        {
            Count += m ? 1 : 0;
        }
    }

    /// <inheritdoc />
    public int Count { get; }

    /// <inheritdoc />
    public SegmentMatch this[int index]
    {
        get
        {
            _ranks ??= Ranks();
            return At((uint)index < (uint)_ranks.Length ? _ranks[index] : throw new ArgumentOutOfRangeException(nameof(index)));
        }
    }

    /// <inheritdoc />
    public IEnumerator<SegmentMatch> GetEnumerator()
    {
        for (var rank = 0; rank < _matched.Length; rank++)
        {
            if (_matched[rank])
            {
                yield return At(rank);
            }
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    private int[] Ranks()
    {
        var ranks = new int[Count];
        for (int rank = 0, k = 0; rank < _matched.Length; rank++)
        {
            if (_matched[rank])
            {
                ranks[k++] = rank;
            }
        }

        return ranks;
    }

    // Overrides come before exclusions, and the winner is the first matched segment neither suppresses.
    private SegmentMatch At(int rank)
    {
        var segment = _segments[rank];
        if (FirstMatched(segment.OverriddenByRanks) is { } overrider)
        {
            return new SegmentMatch(segment, MatchStatus.Overridden, overrider.Id);
        }

        if (FirstMatched(segment.ExclusionRanks) is { } excluder)
        {
            return new SegmentMatch(segment, MatchStatus.Excluded, excluder.Id);
        }

        return new SegmentMatch(segment, ReferenceEquals(segment, _winner) ? MatchStatus.Winner : MatchStatus.Outranked, null);
    }

    private Segment? FirstMatched(int[] ranks)
    {
        foreach (var rank in ranks)
        {
            if (_matched[rank])
            {
                return _segments[rank];
            }
        }

        return null;
    }
}

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

    /// <summary>The experiment of the winning segment the user is in, when one runs; randomised after arbitration.</summary>
    public Experiment? Experiment { get; init; }

    /// <summary>The user's arm of <see cref="Experiment"/>: its variants were served.</summary>
    public ExperimentArm? Arm { get; init; }

    /// <summary>The contact policies' verdict (send, suppress, send at a time) when the request's channel has a policy; null otherwise.</summary>
    public ContactDecision? Contact { get; init; }

    /// <summary>The explanation, when asked for.</summary>
    public Explanation? Explanation { get; init; }

    /// <summary>The variant of one kind.</summary>
    public RenderedVariant Variant(VariantKind kind) => Variants[(int)kind];
}
