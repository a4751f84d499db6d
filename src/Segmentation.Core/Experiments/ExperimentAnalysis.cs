namespace Segmentation.Core.Experiments;

/// <summary>A metric an experiment can be judged by.</summary>
/// <param name="Name">Its name, as written in catalog files.</param>
/// <param name="IsRate">True for a per-user 0/1 value (tested with the two-proportion z test); false for a mean (Welch's t).</param>
/// <param name="HigherIsBetter">False where a rise is harm (unsubscribes).</param>
/// <param name="Description">What one user's value is.</param>
public sealed record ExperimentMetric(string Name, bool IsRate, bool HigherIsBetter, string Description)
{
    /// <summary>Every metric, by name.</summary>
    public static readonly IReadOnlyList<ExperimentMetric> All =
    [
        new("ctr", true, true, "share of exposed users who clicked at least once"),
        new("conversion_rate", true, true, "share of exposed users who converted at least once"),
        new("revenue_per_user", false, true, "conversion value per exposed user"),
        new("unsubscribe_rate", true, false, "share of exposed users who unsubscribed"),
    ];

    /// <summary>The metric named <paramref name="name"/>.</summary>
    public static ExperimentMetric Named(string name) =>
        All.FirstOrDefault(m => m.Name == name) ?? throw new ArgumentOutOfRangeException(nameof(name), name, "unknown metric");
}

/// <summary>What an experiment was designed as: what results are computed against.</summary>
/// <param name="ExperimentId">The experiment.</param>
/// <param name="PrimaryMetric">The metric that decides it.</param>
/// <param name="Guardrails">Metrics it must not harm.</param>
/// <param name="MinimumDetectableEffect">The relative effect it is sized to detect, if declared.</param>
/// <param name="Arms">Arm ids and weights (a bandit's current allocation), the control first.</param>
/// <param name="Bandit">True when a bandit allocates users: the split is not fixed, so the sample ratio is not checked, and estimates carry the bias of adaptive allocation.</param>
public sealed record ExperimentDesign(string ExperimentId, string PrimaryMetric, IReadOnlyList<string> Guardrails, double? MinimumDetectableEffect, IReadOnlyList<(string ArmId, double Weight)> Arms, bool Bandit = false);

/// <summary>One arm's observed data: users assigned and exposed, and each metric's sufficient statistics over the exposed.</summary>
/// <param name="ArmId">The arm.</param>
/// <param name="Assigned">Users given the arm.</param>
/// <param name="Exposed">Users exposed to it.</param>
/// <param name="Metrics">Each metric's sums, by name.</param>
/// <param name="ExposedUnderCurrentWeights">Exposed users assigned under the current weights (null: all of them), what the sample ratio is checked over.</param>
public sealed record ArmObservation(string ArmId, long Assigned, long Exposed, IReadOnlyDictionary<string, MetricSums> Metrics, long? ExposedUnderCurrentWeights = null);

/// <summary>What the results recommend.</summary>
public enum Recommendation
{
    /// <summary>Not enough evidence yet: keep it running.</summary>
    KeepRunning,

    /// <summary>An arm is better on the primary metric with no guardrail harmed: promote it.</summary>
    Winner,

    /// <summary>The arms do not differ by the minimum detectable effect: stop and keep the control (or either).</summary>
    NoDifference,

    /// <summary>An arm harms a guardrail metric: stop it.</summary>
    GuardrailHarmed,

    /// <summary>The assignment is broken (sample ratio mismatch): the results are not to be trusted.</summary>
    Invalid,
}

/// <summary>One arm's value of one metric.</summary>
/// <param name="Metric">The metric.</param>
/// <param name="Users">Exposed users.</param>
/// <param name="Mean">The mean per user (the rate, for a rate).</param>
/// <param name="Variance">The per-user sample variance.</param>
/// <param name="Total">The sum over users (conversions, revenue).</param>
public sealed record ArmMetricValue(string Metric, long Users, double Mean, double Variance, double Total);

/// <summary>One arm's results.</summary>
/// <param name="ArmId">The arm.</param>
/// <param name="Weight">Its weight now.</param>
/// <param name="ExpectedShare">Its share of users by weight.</param>
/// <param name="Assigned">Users given the arm.</param>
/// <param name="Exposed">Users exposed.</param>
/// <param name="Metrics">Its value of every metric the experiment reads.</param>
public sealed record ArmResult(string ArmId, double Weight, double ExpectedShare, long Assigned, long Exposed, IReadOnlyList<ArmMetricValue> Metrics);

/// <summary>Whether a comparison shows a difference, by its always-valid interval.</summary>
public enum Verdict
{
    /// <summary>The interval holds 0: no difference shown (yet).</summary>
    Inconclusive,

    /// <summary>Better than the control (in the metric's good direction).</summary>
    Better,

    /// <summary>Worse than the control.</summary>
    Worse,
}

/// <summary>A treatment arm compared with the control on one metric.</summary>
/// <param name="Metric">The metric.</param>
/// <param name="ArmId">The treatment arm.</param>
/// <param name="Guardrail">True for a guardrail, false for the primary metric.</param>
/// <param name="Test">The test: <c>two-proportion z</c> or <c>welch t</c>; CUPED-adjusted values are tested with Welch's t.</param>
/// <param name="Comparison">The comparison reported: CUPED-adjusted where the covariate reduced the variance, the raw one otherwise.</param>
/// <param name="Raw">The comparison without CUPED.</param>
/// <param name="Cuped">True when <paramref name="Comparison"/> is CUPED-adjusted.</param>
/// <param name="VarianceReduction">The share of the difference's variance CUPED removed (0 without it).</param>
/// <param name="SequentialDifference">The always-valid interval of the difference.</param>
/// <param name="SequentialLift">The always-valid interval of the relative lift.</param>
/// <param name="AdjustedPValue">The fixed-horizon p-value after Benjamini–Hochberg across every comparison of the experiment.</param>
/// <param name="Verdict">Better, worse or inconclusive by the always-valid interval.</param>
public sealed record MetricComparison(
    string Metric,
    string ArmId,
    bool Guardrail,
    string Test,
    Comparison Comparison,
    Comparison Raw,
    bool Cuped,
    double VarianceReduction,
    (double Lower, double Upper) SequentialDifference,
    (double Lower, double Upper) SequentialLift,
    double AdjustedPValue,
    Verdict Verdict);

/// <summary>An experiment's results.</summary>
/// <param name="ExperimentId">The experiment.</param>
/// <param name="ControlArmId">The control (the first arm).</param>
/// <param name="Arms">Each arm's results.</param>
/// <param name="SampleRatio">The sample ratio check over exposed users.</param>
/// <param name="Comparisons">Every treatment arm against the control on the primary metric and every guardrail.</param>
/// <param name="UsersPerArmNeeded">Users per arm to detect the minimum detectable effect on the primary metric (α 0.05, power 0.8), when declared and computable.</param>
/// <param name="Recommendation">What to do.</param>
/// <param name="WinningArmId">The arm to promote when the recommendation is <see cref="Recommendation.Winner"/>.</param>
/// <param name="Reason">Why, in words.</param>
public sealed record ExperimentResult(
    string ExperimentId,
    string ControlArmId,
    IReadOnlyList<ArmResult> Arms,
    SampleRatioCheck SampleRatio,
    IReadOnlyList<MetricComparison> Comparisons,
    long? UsersPerArmNeeded,
    Recommendation Recommendation,
    string? WinningArmId,
    string Reason)
{
    /// <summary>The primary metric per segment that won the users' exposing decisions, when there are several (an experiment of the whole catalog).</summary>
    public IReadOnlyList<SegmentBreakdown> Breakdowns { get; init; } = [];
}

/// <summary>An experiment's primary metric among the users one segment won.</summary>
/// <param name="SegmentId">The segment.</param>
/// <param name="Exposed">Its exposed users, all arms.</param>
/// <param name="Comparisons">Every treatment against the control on the primary metric, among those users (p-values adjusted with the experiment's other comparisons).</param>
/// <param name="Arms">Each arm's primary metric among those users, in the order declared: the means the comparisons compare.</param>
public sealed record SegmentBreakdown(string SegmentId, long Exposed, IReadOnlyList<MetricComparison> Comparisons, IReadOnlyList<SegmentArmValue> Arms);

/// <summary>One arm's primary metric among the users one segment won.</summary>
/// <param name="ArmId">The arm.</param>
/// <param name="Exposed">Its exposed users among them.</param>
/// <param name="Primary">Its value of the primary metric among them.</param>
public sealed record SegmentArmValue(string ArmId, long Exposed, ArmMetricValue Primary);

/// <summary>
/// Results of an experiment as a pure function of its design and each arm's sufficient statistics: per-arm values,
/// every treatment against the control (CUPED-adjusted where it helps), always-valid intervals safe to look at
/// every day, the sample ratio check, Benjamini–Hochberg across comparisons, the sample size the minimum
/// detectable effect needs, and a recommendation. docs/experiments.md says what each number means.
/// </summary>
public static class ExperimentAnalysis
{
    /// <summary>The significance level.</summary>
    public const double Alpha = 0.05;

    /// <summary>The least share of the variance CUPED must remove to be used (below it, the plain test is reported).</summary>
    public const double CupedThreshold = 0.05;

    /// <summary>
    /// Analyzes <paramref name="observations"/> (arms missing from it have no users yet), and the primary metric per
    /// segment of <paramref name="breakdowns"/> when there are two or more; Benjamini–Hochberg covers them all.
    /// </summary>
    public static ExperimentResult Analyze(ExperimentDesign design, IReadOnlyList<ArmObservation> observations, IReadOnlyList<(string SegmentId, IReadOnlyList<ArmObservation> Arms)>? breakdowns = null)
    {
        ArgumentNullException.ThrowIfNull(design);
        ArgumentNullException.ThrowIfNull(observations);
        if (design.Arms.Count < 2)
        {
            throw new ArgumentException("an experiment has at least two arms", nameof(design));
        }

        var metrics = new[] { design.PrimaryMetric }.Concat(design.Guardrails.Where(g => g != design.PrimaryMetric)).Select(ExperimentMetric.Named).ToList();
        var byId = observations.ToDictionary(o => o.ArmId, StringComparer.Ordinal);
        var weightSum = design.Arms.Sum(a => a.Weight);
        var arms = design.Arms.Select(a =>
        {
            var o = byId.GetValueOrDefault(a.ArmId);
            var values = metrics.Select(m => Value(o, m.Name)).ToList();
            return new ArmResult(a.ArmId, a.Weight, weightSum > 0 ? a.Weight / weightSum : 0, o?.Assigned ?? 0, o?.Exposed ?? 0, values);
        }).ToList();

        // Sample ratio over the arms that take traffic (an arm turned off keeps its users but expects no new ones).
        var live = arms.Where(a => a.Weight > 0).ToList();
        var split = live.Select(a => byId.GetValueOrDefault(a.ArmId)?.ExposedUnderCurrentWeights ?? a.Exposed).ToList();
        var srm = design.Bandit ? SampleRatioCheck.Unchecked("a bandit moves its split on purpose: there is no fixed ratio to check")
            : live.Count < 2 ? SampleRatioCheck.Unchecked("fewer than two arms take new users")
            : ExperimentStatistics.SampleRatio(split, live.Select(a => a.Weight).ToList());

        var control = design.Arms[0].ArmId;
        var treatments = design.Arms.Skip(1).Select(a => a.ArmId).ToList();
        var sequentialAlpha = Alpha / treatments.Count; // Bonferroni over treatment arms keeps each family's error at α
        var draft = new List<Draft>();
        foreach (var metric in metrics)
        {
            draft.AddRange(Drafts(metric, control, treatments, byId, segment: null));
        }

        var segments = breakdowns is { Count: >= 2 } ? breakdowns : [];
        foreach (var (segmentId, segmentArms) in segments)
        {
            draft.AddRange(Drafts(metrics[0], control, treatments, segmentArms.ToDictionary(o => o.ArmId, StringComparer.Ordinal), segmentId));
        }

        var adjustedP = ExperimentStatistics.BenjaminiHochberg(draft.Select(d => d.Chosen.PValue).ToList());
        var all = draft.Select((d, i) =>
        {
            // A segment's verdict is one of as many looks as there are segments: Bonferroni over them too, or among 20
            // segments of an A/A test one in four results would show some segment "better" or "worse".
            var alpha = d.Segment is null ? sequentialAlpha : sequentialAlpha / segments.Count;
            var difference = ExperimentStatistics.SequentialInterval(d.Chosen.Difference, d.Chosen.StandardError, d.Users, alpha);
            var lift = ExperimentStatistics.SequentialInterval(d.Chosen.Lift, d.Chosen.LiftStandardError, d.Users, alpha);
            // No standard error, no verdict: when nothing varies within either arm (0 of 2 against 2 of 2) the interval has
            // no width, which is no evidence of anything.
            var verdict = d.Chosen.StandardError <= 0 ? Verdict.Inconclusive
                : difference.Lower > 0 ? Good(d.Metric, true) : difference.Upper < 0 ? Good(d.Metric, false) : Verdict.Inconclusive;
            return (d.Segment, Comparison: new MetricComparison(d.Metric.Name, d.Arm, d.Metric.Name != design.PrimaryMetric, d.Test, d.Chosen, d.Raw, d.Cuped, d.Reduction, difference, lift, adjustedP[i], verdict));
        }).ToList();
        var comparisons = all.Where(c => c.Segment is null).Select(c => c.Comparison).ToList();
        var breakdownResults = segments.Select(s =>
        {
            var segmentById = s.Arms.ToDictionary(o => o.ArmId, StringComparer.Ordinal);
            return new SegmentBreakdown(
                s.SegmentId,
                s.Arms.Sum(a => a.Exposed),
                [.. all.Where(c => c.Segment == s.SegmentId).Select(c => c.Comparison)],
                [.. design.Arms.Select(a =>
                {
                    var o = segmentById.GetValueOrDefault(a.ArmId);
                    return new SegmentArmValue(a.ArmId, o?.Exposed ?? 0, Value(o, metrics[0].Name));
                })]);
        }).ToList();

        var needed = UsersNeeded(design, arms[0]);
        var sequentialNeeded = needed is { } oneLook ? ExperimentStatistics.SequentialUsersPerArm(oneLook, Alpha, sequentialAlpha) : (long?)null;
        var (recommendation, winner, reason) = Recommend(design, arms, srm, comparisons, sequentialNeeded);
        if (design.Bandit)
        {
            // The arms' users pool periods of different splits: when the rates drift over time (a season, a campaign
            // ending) an arm that held more users in a better period looks better (Simpson's paradox), and more users make
            // that surer, not smaller. A bandit earns while it learns; a winner or no difference is measured with a fixed split.
            // (Recommend puts a harmed guardrail first for a bandit, so what is turned here harms none.)
            if (recommendation is Recommendation.Winner or Recommendation.NoDifference)
            {
                reason = $"{(winner is null ? "no difference yet" : $"'{winner}' leads")} ({reason}), but a bandit's results are not a verdict: publish the experiment with a fixed split to confirm";
                (recommendation, winner) = (Recommendation.KeepRunning, null);
            }

            reason += "; bandit allocation: the sample ratio is not checked (the split moves on purpose), and the arms' estimates pool periods of different splits, biased toward arms that looked good early and, when rates drift over time, toward arms that held more users in the better periods — a bias more users do not remove; a fixed split measures without it";
        }

        return new ExperimentResult(design.ExperimentId, control, arms, srm, comparisons, needed, recommendation, winner, reason) { Breakdowns = breakdownResults };
    }

    private sealed record Draft(ExperimentMetric Metric, string Arm, Comparison Chosen, Comparison Raw, bool Cuped, double Reduction, string Test, long Users, string? Segment);

    // Each treatment against the control on one metric (CUPED where it removes enough of the variance).
    private static IEnumerable<Draft> Drafts(ExperimentMetric metric, string control, List<string> treatments, Dictionary<string, ArmObservation> byId, string? segment)
    {
        var c = Sums(byId.GetValueOrDefault(control), metric.Name);
        foreach (var arm in treatments)
        {
            var t = Sums(byId.GetValueOrDefault(arm), metric.Name);
            if (c.Users < 2 || t.Users < 2)
            {
                continue;
            }

            {
                var raw = metric.IsRate ? ExperimentStatistics.Rates(c.Metric, t.Metric, Alpha) : ExperimentStatistics.Means(c.Metric, t.Metric, Alpha);
                var (chosen, cuped, reduction) = (raw, false, 0.0);
                var pooled = c + t;
                var theta = ExperimentStatistics.CupedTheta(pooled);
                if (theta != 0)
                {
                    var mean = pooled.SumX / pooled.Users;
                    var adjusted = ExperimentStatistics.Means(ExperimentStatistics.CupedAdjusted(c, theta, mean), ExperimentStatistics.CupedAdjusted(t, theta, mean), Alpha);
                    var welch = ExperimentStatistics.Means(c.Metric, t.Metric, Alpha);
                    var removed = welch.StandardError == 0 ? 0 : 1 - (adjusted.StandardError * adjusted.StandardError / (welch.StandardError * welch.StandardError));
                    if (removed >= CupedThreshold)
                    {
                        (chosen, cuped, reduction) = (adjusted, true, removed);
                    }
                }

                yield return new Draft(metric, arm, chosen, raw, cuped, reduction, cuped || !metric.IsRate ? "welch t" : "two-proportion z", c.Users + t.Users, segment);
            }
        }
    }

    private static Verdict Good(ExperimentMetric metric, bool rose) => rose == metric.HigherIsBetter ? Verdict.Better : Verdict.Worse;

    private static ArmMetricValue Value(ArmObservation? o, string metric)
    {
        var sums = Sums(o, metric).Metric;
        return new ArmMetricValue(metric, sums.Users, sums.Mean, sums.Variance, sums.Sum);
    }

    private static MetricSums Sums(ArmObservation? o, string metric) => o is not null && o.Metrics.TryGetValue(metric, out var s) ? s : default;

    private static long? UsersNeeded(ExperimentDesign design, ArmResult control)
    {
        if (design.MinimumDetectableEffect is not { } mde || control.Metrics[0] is not { Users: >= 2 } baseline)
        {
            return null;
        }

        var metric = ExperimentMetric.Named(design.PrimaryMetric);
        if (metric.IsRate)
        {
            return baseline.Mean is > 0 and < 1 && baseline.Mean * (1 + mde) is > 0 and < 1
                ? ExperimentStatistics.UsersPerArm(baseline.Mean, mde, Alpha)
                : null;
        }

        return baseline.Mean > 0 && baseline.Variance > 0 ? ExperimentStatistics.UsersPerArmForMean(baseline.Mean, baseline.Variance, mde, Alpha) : null;
    }

    // needed: users per arm the always-valid test needs to detect the minimum detectable effect (null: none declared).
    private static (Recommendation, string?, string) Recommend(ExperimentDesign design, List<ArmResult> arms, SampleRatioCheck srm, List<MetricComparison> comparisons, long? needed)
    {
        // A broken split is checked first: an arm that gets (almost) no users while the others get thousands is the
        // very failure the check is for, not a reason to wait.
        var live = arms.Where(a => a.Weight > 0).ToList();
        if (srm.Mismatch)
        {
            var test = srm.Exact ? $"exact binomial tests; chi-squared {srm.ChiSquared:0.##}" : $"chi-squared {srm.ChiSquared:0.##}";
            return (Recommendation.Invalid, null, $"sample ratio mismatch ({test}, p = {srm.PValue:0.######} < {ExperimentStatistics.SampleRatioThreshold}): the arms' users are not split as their weights say, so no result is to be trusted; find the cause (a redirect, a bot filter, a crash in one arm) before reading anything");
        }

        if (live.Any(a => a.Exposed < 2))
        {
            return (Recommendation.KeepRunning, null, "waiting for exposed users in every arm");
        }

        var harmed = comparisons.Where(c => c.Guardrail && c.Verdict == Verdict.Worse).ToList();
        (Recommendation, string?, string) Harmed(MetricComparison h) =>
            (Recommendation.GuardrailHarmed, null, $"'{h.ArmId}' harms guardrail {h.Metric} (always-valid interval of the difference {h.SequentialDifference.Lower:0.####} to {h.SequentialDifference.Upper:0.####}): stop it");

        // A fixed split's winner is promoted, which stops the other arms, a harmful one with them; a bandit recommends no
        // winner (see Analyze), so an arm harming a guardrail is what it must say first, or that arm keeps its share.
        if (design.Bandit && harmed.Count > 0)
        {
            return Harmed(harmed[0]);
        }

        var primary = comparisons.Where(c => !c.Guardrail).ToList();
        // Ranked by the difference: every arm is compared with the same control, so it orders them as the lift does,
        // and still does when the control's mean is 0 (no lift then: every arm's would read 0).
        var better = primary.Where(c => c.Verdict == Verdict.Better && harmed.All(h => h.ArmId != c.ArmId)).OrderByDescending(c => Math.Abs(c.Comparison.Difference)).ToList();
        if (better.Count > 0)
        {
            var best = better[0];
            var effect = best.Comparison is { Lift: 0, LiftStandardError: 0 }
                ? $"difference {best.Comparison.Difference:+0.####;-0.####}, always-valid interval {best.SequentialDifference.Lower:+0.####;-0.####} to {best.SequentialDifference.Upper:+0.####;-0.####} (the control's mean is 0: no relative lift)"
                : $"lift {best.Comparison.Lift:+0.0%;-0.0%}, always-valid interval {best.SequentialLift.Lower:+0.0%;-0.0%} to {best.SequentialLift.Upper:+0.0%;-0.0%}";
            return (Recommendation.Winner, best.ArmId, $"'{best.ArmId}' beats the control on {best.Metric}: {effect}, with no guardrail harmed");
        }

        if (primary.Count == arms.Count - 1 && primary.Count > 0 && primary.All(c => c.Verdict == Verdict.Worse))
        {
            return (Recommendation.Winner, arms[0].ArmId, $"every treatment is worse than the control on {design.PrimaryMetric}: keep the control");
        }

        if (harmed.Count > 0)
        {
            return Harmed(harmed[0]);
        }

        // Equivalence needs a lift that can be estimated: none when the control's mean is 0 or nothing varies (its
        // standard error is then 0 and its interval a point, which shows nothing).
        if (design.MinimumDetectableEffect is { } mde && primary.Count > 0
            && primary.All(c => c.Comparison.LiftStandardError > 0 && c.SequentialLift.Lower > -mde && c.SequentialLift.Upper < mde))
        {
            return (Recommendation.NoDifference, null, $"every arm's lift on {design.PrimaryMetric} is within ±{mde:0.#%} (the minimum detectable effect) with always-valid confidence: the arms do not differ by what matters");
        }

        if (needed is { } n && live.All(a => a.Exposed >= n))
        {
            return (Recommendation.NoDifference, null, $"every arm has the {n:N0} users the always-valid test needs to detect the minimum detectable effect and no difference on {design.PrimaryMetric} was found");
        }

        var more = needed is { } k ? $"; about {Math.Max(0, k - live.Min(a => a.Exposed)):N0} more users per arm for the always-valid test to detect the minimum detectable effect" : "";
        return (Recommendation.KeepRunning, null, $"no difference shown on {design.PrimaryMetric} yet{more}");
    }
}
