using Segmentation.Core.Experiments;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Catalog;

/// <summary>The KPIs an experiment can be judged by (its primary metric and guardrails).</summary>
public static class ExperimentMetrics
{
    /// <summary>The metric names, as written in catalog files.</summary>
    public static readonly IReadOnlyList<string> Names = ["ctr", "conversion_rate", "revenue_per_user", "unsubscribe_rate"];

    /// <summary>The default primary metric.</summary>
    public const string Default = "conversion_rate";
}

/// <summary>An experiment as validated, its arms' templates still text.</summary>
/// <param name="Id">The experiment id.</param>
/// <param name="SegmentId">The segment whose winners it splits.</param>
/// <param name="Description">What it tests.</param>
/// <param name="Salt">The salt of its assignment hash.</param>
/// <param name="Start">When it starts (null: from publication).</param>
/// <param name="Stop">When it stops (null: until removed).</param>
/// <param name="PrimaryMetric">The metric that decides it.</param>
/// <param name="Guardrails">Metrics it must not harm.</param>
/// <param name="MinimumDetectableEffect">The relative effect it is sized to detect, if declared.</param>
/// <param name="Arms">Its arms, in the order written.</param>
/// <param name="Node">Where it was written.</param>
public sealed record ExperimentDefinition(
    string Id,
    string SegmentId,
    string Description,
    string Salt,
    DateTimeOffset? Start,
    DateTimeOffset? Stop,
    string PrimaryMetric,
    IReadOnlyList<string> Guardrails,
    double? MinimumDetectableEffect,
    IReadOnlyList<ArmDefinition> Arms,
    SyntaxMap Node);

/// <summary>One arm as validated.</summary>
/// <param name="Id">The arm id.</param>
/// <param name="Weight">Its share of the experiment's users, relative to the other arms' weights.</param>
/// <param name="Variants">The variants it overrides (any of the five; the others are the segment's).</param>
public sealed record ArmDefinition(string Id, double Weight, IReadOnlyList<VariantDefinition> Variants);

/// <summary>
/// A compiled experiment: it splits the users a segment wins, after arbitration, into arms by a hash of the salt,
/// its id and the user's id (<see cref="Assignment"/>); each arm serves its own variants where it overrides them.
/// </summary>
public sealed class Experiment
{
    /// <summary>The experiment id decisions of the decisioning holdout report.</summary>
    public const string HoldoutId = "decisioning_holdout";

    /// <summary>The arm id decisions of the decisioning holdout report.</summary>
    public const string HoldoutArmId = "holdout";

    private readonly double[] _weights;

    internal Experiment(ExperimentDefinition definition, Segment segment, IReadOnlyList<ExperimentArm> arms)
    {
        Id = definition.Id;
        Segment = segment;
        Description = definition.Description;
        Salt = definition.Salt;
        StartTicks = definition.Start?.UtcTicks ?? long.MinValue;
        StopTicks = definition.Stop?.UtcTicks ?? long.MaxValue;
        PrimaryMetric = definition.PrimaryMetric;
        Guardrails = definition.Guardrails;
        MinimumDetectableEffect = definition.MinimumDetectableEffect;
        Arms = arms;
        _weights = [.. arms.Select(a => a.Weight)];
    }

    /// <summary>The experiment id.</summary>
    public string Id { get; }

    /// <summary>The segment whose winners it splits.</summary>
    public Segment Segment { get; }

    /// <summary>What it tests.</summary>
    public string Description { get; }

    /// <summary>The salt of its assignment hash.</summary>
    public string Salt { get; }

    /// <summary>When it starts (UTC ticks; <see cref="long.MinValue"/> when not set).</summary>
    public long StartTicks { get; }

    /// <summary>When it stops (UTC ticks; <see cref="long.MaxValue"/> when not set).</summary>
    public long StopTicks { get; }

    /// <summary>The metric that decides it.</summary>
    public string PrimaryMetric { get; }

    /// <summary>Metrics it must not harm.</summary>
    public IReadOnlyList<string> Guardrails { get; }

    /// <summary>The relative effect it is sized to detect, if declared.</summary>
    public double? MinimumDetectableEffect { get; }

    /// <summary>Its arms, in the order written.</summary>
    public IReadOnlyList<ExperimentArm> Arms { get; }

    /// <summary>True when it runs at <paramref name="ticks"/>.</summary>
    public bool RunsAt(long ticks) => ticks >= StartTicks && ticks < StopTicks;

    /// <summary>The arm of <paramref name="subjectId"/>: the same on every node and after every restart.</summary>
    public ExperimentArm Assign(string subjectId) => Arms[Assignment.Arm(_weights, Assignment.Place(Salt, Id, subjectId))];
}

/// <summary>One arm of a compiled experiment.</summary>
/// <param name="Id">The arm id.</param>
/// <param name="Weight">Its relative weight.</param>
/// <param name="Variants">The five variants it serves: its own where it overrides them, the segment's otherwise.</param>
/// <param name="Overrides">Which kinds it overrides.</param>
/// <param name="ExperimentId">The experiment it belongs to.</param>
public sealed record ExperimentArm(string Id, double Weight, IReadOnlyList<VariantTemplate> Variants, IReadOnlyList<VariantKind> Overrides, string ExperimentId)
{
    /// <summary>"experiment:arm", how KPIs name the arm.</summary>
    public string Key { get; } = ExperimentId + ":" + Id;
}
