using Segmentation.Core.Experiments;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Catalog;

/// <summary>The KPIs an experiment can be judged by (its primary metric and guardrails).</summary>
public static class ExperimentMetrics
{
    /// <summary>The metric names, as written in catalog files.</summary>
    public static readonly IReadOnlyList<string> Names = [.. ExperimentMetric.All.Select(m => m.Name)];

    /// <summary>The default primary metric.</summary>
    public const string Default = "conversion_rate";
}

/// <summary>An experiment as validated, its arms' templates still text.</summary>
/// <param name="Id">The experiment id.</param>
/// <param name="SegmentId">The segment whose winners it splits; null for an experiment of the whole catalog.</param>
/// <param name="Description">What it tests.</param>
/// <param name="Salt">The salt of its assignment hash.</param>
/// <param name="Start">When it starts (null: from publication).</param>
/// <param name="Stop">When it stops (null: until removed).</param>
/// <param name="PrimaryMetric">The metric that decides it.</param>
/// <param name="Guardrails">Metrics it must not harm.</param>
/// <param name="MinimumDetectableEffect">The relative effect it is sized to detect, if declared.</param>
/// <param name="Arms">Its arms, in the order written.</param>
/// <param name="Node">Where it was written.</param>
/// <param name="Exposure">When a user counts as exposed: when the decision is served, or on its first impression.</param>
/// <param name="Promoted">The arm promoted to be the segment's variants (the experiment no longer runs), if any.</param>
/// <param name="Layer">The layer whose users it shares with other experiments, mutually exclusively, if any.</param>
/// <param name="Traffic">Its share of the layer's users, when declared.</param>
/// <param name="BanditFloor">For a bandit (allocation: bandit), the least share each arm keeps; null for fixed weights.</param>
public sealed record ExperimentDefinition(
    string Id,
    string? SegmentId,
    string Description,
    string Salt,
    DateTimeOffset? Start,
    DateTimeOffset? Stop,
    string PrimaryMetric,
    IReadOnlyList<string> Guardrails,
    double? MinimumDetectableEffect,
    IReadOnlyList<ArmDefinition> Arms,
    SyntaxMap Node,
    ExposureTrigger Exposure = ExposureTrigger.Decision,
    string? Promoted = null,
    string? Layer = null,
    double? Traffic = null,
    double? BanditFloor = null);

/// <summary>When a user assigned to an arm counts as exposed to it (and enters its results).</summary>
public enum ExposureTrigger
{
    /// <summary>When a decision in the experiment is served to the user (the default).</summary>
    Decision,

    /// <summary>On the first impression outcome reported for such a decision (the variant was actually shown).</summary>
    Impression,
}

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

    internal Experiment(ExperimentDefinition definition, Segment? segment, IReadOnlyList<ExperimentArm> arms)
    {
        Layer = definition.Layer;
        BanditFloor = definition.BanditFloor;
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
        Exposure = definition.Exposure;
        Node = definition.Node;
        Promoted = definition.Promoted;
        _weights = [.. arms.Select(a => a.Weight)];
        foreach (var arm in arms)
        {
            arm.Experiment = this;
        }
    }

    /// <summary>Where it was written (stopping and promoting edit the file there).</summary>
    public SyntaxMap Node { get; }

    /// <summary>When a user counts as exposed.</summary>
    public ExposureTrigger Exposure { get; }

    /// <summary>The arm promoted to be the segment's variants, if any: the experiment then no longer runs.</summary>
    public string? Promoted { get; }

    /// <summary>The experiment id.</summary>
    public string Id { get; }

    /// <summary>The segment whose winners it splits; null when it splits every user (scope catalog).</summary>
    public Segment? Segment { get; }

    /// <summary>For a bandit, the least share each arm keeps; null when its weights are fixed.</summary>
    public double? BanditFloor { get; }

    /// <summary>True when a bandit reallocates new users between arms (<see cref="Allocate"/>).</summary>
    public bool IsBandit => BanditFloor is not null;

    private double[]? _allocation;

    /// <summary>The weights new users are assigned by now: a bandit's latest allocation, else the declared weights.</summary>
    public IReadOnlyList<double> Allocation => Volatile.Read(ref _allocation) ?? _weights;

    /// <summary>Sets a bandit's allocation of new users (one share per arm); users already assigned keep their arm.</summary>
    public void Allocate(IReadOnlyList<double> shares)
    {
        ArgumentNullException.ThrowIfNull(shares);
        if (!IsBandit || shares.Count != Arms.Count || shares.Any(s => s < 0 || !double.IsFinite(s)) || shares.Sum() <= 0)
        {
            throw new ArgumentException("a bandit's allocation: one non-negative share per arm", nameof(shares));
        }

        Volatile.Write(ref _allocation, [.. shares]);
    }

    /// <summary>The layer it shares users with other experiments in, mutually exclusively; null when in none.</summary>
    public string? Layer { get; }

    /// <summary>Start of its range of the layer's users, in [0, 1).</summary>
    public double LayerFrom { get; internal set; }

    /// <summary>End of its range of the layer's users (exclusive).</summary>
    public double LayerTo { get; internal set; } = 1;

    /// <summary>True when the user falls in its share of its layer (always, outside layers).</summary>
    public bool InLayer(string subjectId)
    {
        if (Layer is null)
        {
            return true;
        }

        var place = Assignment.Place(Layer, Assignment.LayerId, subjectId);
        return place >= LayerFrom && place < LayerTo;
    }

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
    public bool RunsAt(long ticks) => Promoted is null && ticks >= StartTicks && ticks < StopTicks;

    /// <summary>The arm of <paramref name="subjectId"/> by its hash: the same on every node and after every restart.</summary>
    public ExperimentArm Assign(string subjectId) => Arms[Assignment.Arm(Volatile.Read(ref _allocation) ?? _weights, Assignment.Place(Salt, Id, subjectId))];

    /// <summary>
    /// The arm of <paramref name="subjectId"/>: the one recorded for <paramref name="recordedSubject"/> when there is
    /// one and it still exists (so weight changes and identification never move a user who was already assigned),
    /// otherwise by the hash of <paramref name="subjectId"/>.
    /// </summary>
    public ExperimentArm Assign(string subjectId, IRecordedAssignments? recorded, string recordedSubject)
    {
        if (recorded?.RecordedArm(Id, recordedSubject) is { } armId)
        {
            foreach (var arm in Arms)
            {
                if (string.Equals(arm.Id, armId, StringComparison.Ordinal))
                {
                    return arm;
                }
            }
        }

        return Assign(subjectId);
    }

    /// <summary>The arm with this id, or null.</summary>
    public ExperimentArm? ArmById(string armId) => Arms.FirstOrDefault(a => string.Equals(a.Id, armId, StringComparison.Ordinal));
}

/// <summary>One arm of a compiled experiment.</summary>
/// <param name="Id">The arm id.</param>
/// <param name="Weight">Its relative weight.</param>
/// <param name="Variants">The five variants it serves: its own where it overrides them, the segment's otherwise.</param>
/// <param name="Overrides">Which kinds it overrides.</param>
/// <param name="ExperimentId">The experiment it belongs to.</param>
public sealed record ExperimentArm(string Id, double Weight, IReadOnlyList<VariantTemplate> Variants, IReadOnlyList<VariantKind> Overrides, string ExperimentId)
{
    /// <summary>The experiment it belongs to (null for the decisioning holdout's arm).</summary>
    public Experiment? Experiment { get; internal set; }

    private VariantTemplate?[]? _overrides;

    /// <summary>The arm's own template of <paramref name="kind"/>, or null where it serves the winner's.</summary>
    public VariantTemplate? OverrideAt(int kind)
    {
        var overrides = _overrides ??= BuildOverrides();
        return overrides[kind];
    }

    private VariantTemplate?[] BuildOverrides()
    {
        var overrides = new VariantTemplate?[Variants.Count];
        foreach (var kind in Overrides)
        {
            overrides[(int)kind] = Variants[(int)kind];
        }

        return overrides;
    }

    /// <summary>"experiment:arm", how KPIs name the arm.</summary>
    public string Key { get; } = ExperimentId + ":" + Id;
}
