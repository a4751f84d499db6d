using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Experiments;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Experiments;

/// <summary>Where an experiment is in its life.</summary>
public enum ExperimentStatus
{
    /// <summary>Its start is still ahead.</summary>
    Scheduled,

    /// <summary>It splits its segment's users now.</summary>
    Running,

    /// <summary>Its stop has passed.</summary>
    Stopped,

    /// <summary>An arm was promoted: its variants are the segment's.</summary>
    Promoted,
}

/// <summary>An experiment of the serving catalog with its status and exposed users.</summary>
/// <param name="Experiment">The experiment.</param>
/// <param name="Status">Its status now.</param>
/// <param name="Exposed">Users exposed so far, all arms.</param>
public sealed record ExperimentInfo(Experiment Experiment, ExperimentStatus Status, long Exposed);

/// <summary>An experiment's results with what they were computed from.</summary>
/// <param name="Info">The experiment.</param>
/// <param name="Result">The results.</param>
/// <param name="ComputedAt">When.</param>
/// <param name="AnalyzedSince">
/// When the split last changed, when it did: the results count only the users assigned since (null: every user).
/// </param>
public sealed record ExperimentReport(ExperimentInfo Info, ExperimentResult Result, DateTimeOffset ComputedAt, DateTimeOffset? AnalyzedSince = null);

/// <summary>
/// Experiments as an experimenter handles them: listed with status and exposure, results computed from the records of
/// the users exposed under the current split, stopped, and their winner promoted. Stopping and promoting publish a new catalog version whose files
/// say so (<c>stop:</c> and <c>promoted:</c> written into the experiment), so the change is versioned, visible in
/// the files, and undone by a rollback like any other.
/// </summary>
public sealed class ExperimentLifecycle(CatalogGovernance governance, DecisionMeasurement measurement, TimeProvider time)
{
    /// <summary>The serving catalog's version and experiments.</summary>
    public (long CatalogVersion, IReadOnlyList<ExperimentInfo> Experiments) List()
    {
        measurement.Drain();
        var now = time.GetUtcNow().UtcTicks;
        var catalog = governance.Current;
        return (catalog.Version, [.. catalog.Experiments.Select(e => Info(e, now))]);
    }

    /// <summary>The results of <paramref name="experimentId"/> now.</summary>
    public ExperimentReport Results(string experimentId)
    {
        var experiment = Find(experimentId);
        measurement.Drain(); // every decision served so far is recorded before counting
        var now = time.GetUtcNow();
        // After a change of a fixed split (new weights, an arm added, a bandit turned fixed) the arms hold different mixes
        // of earlier and later users: outcomes drift over time and accumulate since exposure, so comparing them would
        // credit an arm with its users' period. Only the users assigned since the change are compared, as the sample
        // ratio is checked. A bandit's split moves all the time; its results count every user and never name a winner.
        var summary = measurement.Exposures.Summarize(experiment.Id, currentSplit: !experiment.IsBandit);
        var breakdowns = summary?.Segments.Select(s => (s.SegmentId, Observations(s.Arms))).ToList();
        var since = summary is { AssignedSinceTicks: > 0 and var ticks } ? new DateTimeOffset(ticks, TimeSpan.Zero) : (DateTimeOffset?)null;
        var result = ExperimentAnalysis.Analyze(Design(experiment), Observations(summary?.Arms), breakdowns);
        if (since is not null && result.SampleRatio.NotChecked == ExperimentStatistics.NoUserExposed)
        {
            result = result with { SampleRatio = result.SampleRatio with { NotChecked = "no user has been exposed since the split changed" } };
        }

        return new ExperimentReport(Info(experiment, now.UtcTicks, summary), result, now, since);
    }

    /// <summary>Stops <paramref name="experimentId"/> now: a new catalog version with its <c>stop</c> set to this moment.</summary>
    public PublishedCatalog Stop(string experimentId, string comment)
    {
        var catalog = governance.Current; // checked and edited as of this version; published only if it is still current
        var experiment = Find(catalog, experimentId);
        if (experiment.Promoted is not null || experiment.StopTicks <= time.GetUtcNow().UtcTicks)
        {
            throw new PreconditionFailedException($"experiment '{experimentId}' is not running or scheduled (it was stopped or promoted already)");
        }

        if (time.GetUtcNow().UtcTicks < experiment.StartTicks)
        {
            // A stop before the start would be an invalid catalog ('stop' must be after 'start'): say what to do instead.
            throw new PreconditionFailedException($"experiment '{experimentId}' has not started (it starts at {new DateTimeOffset(experiment.StartTicks, TimeSpan.Zero):yyyy-MM-ddTHH:mm:ssZ}): there is nothing to stop yet; to call it off, remove it from the catalog or move its start, and publish");
        }

        // Written to the second: in the second the experiment started (or before a start with a fraction), the stop is
        // the next whole second, as 'stop' must be after 'start' (the moment itself was refused as an invalid catalog).
        var now = time.GetUtcNow().UtcTicks;
        var second = now - (now % TimeSpan.TicksPerSecond);
        var stop = CatalogText.Instant(new DateTimeOffset(second > experiment.StartTicks ? second : experiment.StartTicks - (experiment.StartTicks % TimeSpan.TicksPerSecond) + TimeSpan.TicksPerSecond, TimeSpan.Zero));
        return Edit(catalog, experiment, "stop", stop, comment.Length > 0 ? comment : $"stop experiment {experimentId}");
    }

    /// <summary>
    /// Promotes <paramref name="armId"/> of <paramref name="experimentId"/> (the recommended winner when empty): a new
    /// catalog version in which everyone the segment wins is served that arm's variants and the experiment no longer runs.
    /// </summary>
    public (PublishedCatalog Published, string ArmId) Promote(string experimentId, string armId, string comment)
    {
        var catalog = governance.Current;
        var experiment = Find(catalog, experimentId);
        if (experiment.Promoted is { } already)
        {
            throw new PreconditionFailedException($"experiment '{experimentId}' already promoted arm '{already}'");
        }

        if (armId.Length == 0)
        {
            var result = Results(experimentId).Result;
            if (result.Recommendation != Recommendation.Winner || result.WinningArmId is null)
            {
                throw new PreconditionFailedException($"experiment '{experimentId}' has no winner to promote ({result.Reason}); name the arm to promote it anyway");
            }

            armId = result.WinningArmId;
        }
        else if (experiment.ArmById(armId) is null)
        {
            throw new ValidationException("arm_id", $"experiment '{experimentId}' has no arm '{armId}'; its arms: {string.Join(", ", experiment.Arms.Select(a => a.Id))}");
        }

        return (Edit(catalog, experiment, "promoted", armId, comment.Length > 0 ? comment : $"promote arm {armId} of experiment {experimentId}"), armId);
    }

    /// <summary>What <see cref="ExperimentAnalysis"/> needs to know about <paramref name="experiment"/>.</summary>
    public static ExperimentDesign Design(Experiment experiment)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        var weights = experiment.Allocation;
        return new ExperimentDesign(experiment.Id, experiment.PrimaryMetric, experiment.Guardrails, experiment.MinimumDetectableEffect, [.. experiment.Arms.Select((a, i) => (a.Id, weights[i]))], experiment.IsBandit);
    }

    /// <summary>Each arm's observation from an exposure summary's arms.</summary>
    public static IReadOnlyList<ArmObservation> Observations(IReadOnlyList<ArmSums>? arms) =>
        arms is null ? [] : [.. arms.Select(a => new ArmObservation(a.ArmId, a.Assigned, a.Exposed, ExperimentMetric.All.ToDictionary(m => m.Name, m => a.Of(m.Name)), a.ExposedUnderCurrentWeights))];

    private Experiment Find(string experimentId) => Find(governance.Current, experimentId);

    private static Experiment Find(CatalogSnapshot catalog, string experimentId)
    {
        if (string.IsNullOrEmpty(experimentId))
        {
            throw new ValidationException("experiment_id", "an experiment id is required");
        }

        return catalog.Experiments.FirstOrDefault(e => e.Id == experimentId)
            ?? throw new NotFoundException($"the serving catalog (version {catalog.Version}) has no experiment '{InputLimits.Bounded(experimentId, 64)}'");
    }

    private ExperimentInfo Info(Experiment e, long now, ExposureSummary? summary = null)
    {
        summary ??= measurement.Exposures.Summarize(e.Id);
        var status = e.Promoted is not null ? ExperimentStatus.Promoted
            : now < e.StartTicks ? ExperimentStatus.Scheduled
            : now >= e.StopTicks ? ExperimentStatus.Stopped
            : ExperimentStatus.Running;
        return new ExperimentInfo(e, status, summary?.ExposedEver ?? 0);
    }

    // Sets key: value in the experiment's mapping, in the file of `catalog` it was written in, and publishes the files
    // as a new version if `catalog` is still the current one (the checks were made on it).
    private PublishedCatalog Edit(CatalogSnapshot catalog, Experiment experiment, string key, string value, string comment)
    {
        var node = experiment.Node;
        var files = catalog.Files.ToList();
        var index = files.FindIndex(f => f.Name == node.At.File);
        if (index < 0)
        {
            throw new PreconditionFailedException($"experiment '{experiment.Id}' was written in '{node.At.File}', which the serving catalog's files do not hold; publish an edited copy instead");
        }

        files[index] = files[index] with { Text = CatalogText.SetScalar(files[index].Text, node, key, value) };

        // Published only on the version the edit was made on: a stop and a promote (or a publish) at the same moment
        // cannot silently undo each other; the later one is refused (ABORTED) and may be retried.
        return governance.Publish(files, comment, catalog.Version);
    }
}
