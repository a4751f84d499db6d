using System.Collections.Concurrent;
using System.Collections.Frozen;
using Segmentation.Core.Experiments;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;

namespace Segmentation.Core.Catalog;

/// <summary>
/// An immutable, compiled catalog: segments in priority order with rules as delegates and templates
/// parsed, override and exclusion sets resolved to ranks. Published by swapping one reference.
/// </summary>
public sealed class CatalogSnapshot
{
    internal CatalogSnapshot(
        string name,
        string origin,
        IReadOnlyList<Segment> segments,
        Segment fallback,
        IReadOnlyDictionary<string, TraitDefinition> traits,
        IReadOnlyList<Persona> personas,
        IReadOnlyList<ContextField> contextFieldsRead,
        ScoringSettings scoring,
        FieldRegistry fields,
        FeatureLayout features,
        IReadOnlyList<Experiment>? experiments = null,
        double holdout = 0,
        ContactPolicies? contactPolicies = null,
        IReadOnlyList<SegmentTrigger>? triggers = null)
    {
        Triggers = triggers ?? [];
        TriggersBySegment = Triggers.GroupBy(t => t.Segment, StringComparer.Ordinal).ToFrozenDictionary(g => g.Key, g => (IReadOnlyList<SegmentTrigger>)[.. g], StringComparer.Ordinal);
        TriggersById = Triggers.ToFrozenDictionary(t => t.Id, StringComparer.Ordinal);
        ContactPolicies = contactPolicies ?? ContactPolicies.None;
        Holdout = holdout;
        Experiments = experiments ?? [];
        _experimentByRank = new Experiment?[segments.Count];
        Features = features;
        Scoring = scoring;
        _fields = fields;
        Name = name;
        Origin = origin;
        Segments = segments;
        Fallback = fallback;
        Traits = traits;
        Personas = personas;
        ContextFieldsRead = contextFieldsRead;
        ById = segments.ToFrozenDictionary(s => s.Id, StringComparer.Ordinal);
        HoldoutArm = new ExperimentArm(Experiment.HoldoutArmId, holdout, fallback.Variants, [], Experiment.HoldoutId);
        foreach (var experiment in Experiments)
        {
            if (experiment.Segment is { } segment)
            {
                _experimentByRank[segment.Rank] = experiment; // marks the segments that have one
            }
        }

        _catalogExperiments = [.. Experiments.Where(e => e.Segment is null)];
        _layers = Experiments.Where(e => e.Layer is not null).GroupBy(e => e.Layer!, StringComparer.Ordinal).ToFrozenDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
        _evaluateAll = new Lazy<Action<EvalContext, bool[]>>(() => RuleNode.CompileAll([.. Segments.Select(s => s.Rule)], Features));
    }

    private readonly Lazy<Action<EvalContext, bool[]>> _evaluateAll;
    private readonly Experiment?[] _experimentByRank;
    private readonly Experiment[] _catalogExperiments;
    private readonly FrozenDictionary<string, Experiment[]> _layers;

    /// <summary>
    /// The share of users in the decisioning holdout (catalog setting <c>holdout</c>): they get the fallback experience
    /// for everything, so the lift of segment-driven personalization itself can be measured against them.
    /// </summary>
    public double Holdout { get; }

    /// <summary>The arm decisions of held-out users report (<c>decisioning_holdout:holdout</c>), serving the fallback's variants.</summary>
    public ExperimentArm HoldoutArm { get; }

    /// <summary>The catalog's scheduled triggers, in the order written.</summary>
    public IReadOnlyList<SegmentTrigger> Triggers { get; }

    /// <summary>The triggers scheduled by entering each segment.</summary>
    public FrozenDictionary<string, IReadOnlyList<SegmentTrigger>> TriggersBySegment { get; }

    /// <summary>The triggers by id.</summary>
    public FrozenDictionary<string, SegmentTrigger> TriggersById { get; }

    /// <summary>The catalog's contact policies: caps, quiet hours and suppression per channel.</summary>
    public ContactPolicies ContactPolicies { get; }

    /// <summary>The catalog's experiments, in the order written.</summary>
    public IReadOnlyList<Experiment> Experiments { get; }

    /// <summary>
    /// The experiment a decision won by <paramref name="winner"/> is in at <paramref name="ticks"/>, or null: the
    /// segment's own experiment running now if the user is in its share of its layer, else the first experiment of the
    /// whole catalog running now whose layer share holds the user. A decision is in at most one experiment. With
    /// <paramref name="recorded"/>, a user recorded in an experiment of a layer stays in it (see <see cref="InLayer"/>).
    /// </summary>
    public Experiment? ExperimentFor(Segment winner, string subjectId, long ticks, IRecordedAssignments? recorded = null)
    {
        ArgumentNullException.ThrowIfNull(winner);
        if ((uint)winner.Rank < (uint)_experimentByRank.Length && _experimentByRank[winner.Rank] is not null)
        {
            foreach (var e in Experiments)
            {
                if (ReferenceEquals(e.Segment, winner) && e.RunsAt(ticks) && InLayer(e, subjectId, ticks, recorded))
                {
                    return e;
                }
            }
        }

        foreach (var e in _catalogExperiments)
        {
            if (e.RunsAt(ticks) && InLayer(e, subjectId, ticks, recorded))
            {
                return e;
            }
        }

        return null;
    }

    // A layer's experiments never share a user. The layer's ranges place users not yet in any of them; a user recorded
    // in one stays in it while it runs, wherever the ranges move (an experiment of the layer added, removed or given
    // another share) and whatever id the user is known by now (an anonymous visitor's record moves to the user at
    // Identify, the user's own id places them elsewhere) — results keep crediting the user to that experiment.
    private bool InLayer(Experiment e, string subjectId, long ticks, IRecordedAssignments? recorded)
    {
        if (e.Layer is null || recorded is null)
        {
            return e.InLayer(subjectId);
        }

        if (recorded.IsRecorded(e.Id, subjectId))
        {
            return true;
        }

        foreach (var other in _layers[e.Layer])
        {
            if (!ReferenceEquals(other, e) && other.RunsAt(ticks) && recorded.IsRecorded(other.Id, subjectId))
            {
                return false;
            }
        }

        return e.InLayer(subjectId);
    }

    /// <summary>When the experiments a decision won by <paramref name="winner"/> could be in next start or stop after <paramref name="ticks"/> (a decision is valid until then), or <see cref="long.MaxValue"/>.</summary>
    public long NextExperimentChange(Segment winner, long ticks)
    {
        var next = long.MaxValue;
        foreach (var e in Experiments)
        {
            // With a layer's siblings too: one ending lets the users recorded in it into this winner's experiment.
            if (e.Segment is null || ReferenceEquals(e.Segment, winner) || (e.Layer is { } layer && _layers[layer].Any(x => x.Segment is null || ReferenceEquals(x.Segment, winner))))
            {
                if (e.StartTicks > ticks)
                {
                    next = Math.Min(next, e.StartTicks);
                }

                if (e.StopTicks > ticks)
                {
                    next = Math.Min(next, e.StopTicks);
                }
            }
        }

        return next;
    }

    /// <summary>
    /// Evaluates every segment's rule into <paramref name="matched"/> (by rank) with one method compiled
    /// from the whole catalog on first use: the same results and validity bounds as evaluating each
    /// <see cref="Segment.Rule"/>, without a delegate call per clause.
    /// </summary>
    public void EvaluateAll(EvalContext context, bool[] matched) => _evaluateAll.Value(context, matched);

    /// <summary>Version assigned at publish; 0 before publishing.</summary>
    public long Version { get; private set; }

    /// <summary>When this snapshot was published.</summary>
    public DateTimeOffset LoadedAt { get; private set; }

    /// <summary>Catalog name.</summary>
    public string Name { get; }

    /// <summary>Where the catalog was loaded from.</summary>
    public string Origin { get; }

    /// <summary>Every segment, highest priority first (the fallback is last).</summary>
    public IReadOnlyList<Segment> Segments { get; }

    /// <summary>Segments by id.</summary>
    public FrozenDictionary<string, Segment> ById { get; }

    /// <summary>The fallback segment.</summary>
    public Segment Fallback { get; }

    /// <summary>Declared traits (the catalog's schema).</summary>
    public IReadOnlyDictionary<string, TraitDefinition> Traits { get; }

    private readonly FieldRegistry _fields;
    private readonly ConcurrentDictionary<string, FieldAccessor> _accessors = new(StringComparer.Ordinal);

    /// <summary>
    /// The compiled accessor of a field (no window or last parameters), resolved with this catalog's
    /// schema and scoring settings once and then reused; throws for an unknown field.
    /// </summary>
    public FieldAccessor Field(string name) =>
        _accessors.GetOrAdd(name, static (n, fields) => fields.Resolve(n, null, null, out var error, out _) ?? throw new ArgumentException(error, nameof(name)), _fields);

    /// <inheritdoc cref="FieldRegistry.LayerOf"/>
    public AttributeLayer? LayerOf(string field) => _fields.LayerOf(field);

    /// <summary>The profile features this catalog's rules read, remembered per evaluation by an <see cref="EvalContext"/> made with it.</summary>
    public FeatureLayout Features { get; }

    /// <summary>Settings of derived data: cart abandonment, affinity decay, lead scoring.</summary>
    public ScoringSettings Scoring { get; }

    /// <summary>Personas.</summary>
    public IReadOnlyList<Persona> Personas { get; }

    /// <summary>Request context fields read by any rule or template, in a stable order. Only these form the cache key.</summary>
    public IReadOnlyList<ContextField> ContextFieldsRead { get; }

    /// <summary>The files this snapshot was compiled from (kept for rollback and audit).</summary>
    public IReadOnlyList<CatalogFile> Files { get; private set; } = [];

    internal void SetFiles(IReadOnlyList<CatalogFile> files) => Files = files;

    internal CatalogSnapshot Publish(long version, DateTimeOffset at)
    {
        Version = version;
        LoadedAt = at;
        return this;
    }
}
