using Segmentation.Core.Experiments;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>Results as a pure function of each arm's sums: CUPED from sums, sample ratio, guardrails, sample size, recommendations.</summary>
public class ExperimentAnalysisTests
{
    private static readonly ExperimentDesign Design = new("t", "conversion_rate", ["unsubscribe_rate"], 0.1, [("control", 1), ("b", 1)]);

    private static MetricSums Rate(long users, long hits, long covariate = 0)
    {
        var sums = default(MetricSums);
        for (var i = 0; i < users; i++)
        {
            sums.Add(i < hits ? 1 : 0, i < covariate ? 1 : 0);
        }

        return sums;
    }

    private static ArmObservation Arm(string id, long users, long conversions, long unsubscribes = 0) =>
        new(id, users, users, new Dictionary<string, MetricSums> { ["conversion_rate"] = Rate(users, conversions), ["unsubscribe_rate"] = Rate(users, unsubscribes) });

    [Fact]
    public void Cuped_from_sums_equals_cuped_from_each_users_values()
    {
        var random = new Random(4);
        var (x, y) = (new double[500], new double[500]);
        var sums = default(MetricSums);
        for (var i = 0; i < x.Length; i++)
        {
            x[i] = random.NextDouble() * 10;
            y[i] = (2 * x[i]) + random.NextDouble();
            sums.Add(y[i], x[i]);
        }

        var theta = ExperimentStatistics.CupedTheta(sums);
        Assert.Equal(ExperimentStatistics.CupedTheta(y, x), theta, 10);
        var mean = x.Average();
        var fromValues = ExperimentStatistics.CupedAdjusted(y, x, theta, mean);
        var fromSums = ExperimentStatistics.CupedAdjusted(sums, theta, mean);
        Assert.Equal(fromValues.Sum, fromSums.Sum, 6);
        Assert.Equal(fromValues.SumOfSquares, fromSums.SumOfSquares, 4);
    }

    [Fact]
    public void Users_needed_for_a_mean_match_the_reference()
    {
        // SciPy 1.10.1: z = norm.ppf(0.975) + norm.ppf(0.8) = 2.8015852181129683; ceil(z*z*2*400/(0.1*50)**2) = 252
        Assert.Equal(252, ExperimentStatistics.UsersPerArmForMean(50, 400, 0.1));
    }

    [Fact]
    public void A_broken_split_makes_the_results_invalid_whatever_the_lift()
    {
        var result = ExperimentAnalysis.Analyze(Design, [Arm("control", 10_000, 1_000), Arm("b", 9_000, 1_400)]);

        Assert.True(result.SampleRatio.Mismatch);
        Assert.Equal(Recommendation.Invalid, result.Recommendation);
        Assert.Null(result.WinningArmId);
    }

    [Fact]
    public void A_winner_that_harms_a_guardrail_is_not_promoted()
    {
        var result = ExperimentAnalysis.Analyze(Design, [Arm("control", 10_000, 1_000, 50), Arm("b", 10_000, 1_300, 200)]);

        Assert.Equal(Verdict.Better, Assert.Single(result.Comparisons, c => !c.Guardrail).Verdict);
        Assert.Equal(Verdict.Worse, Assert.Single(result.Comparisons, c => c.Guardrail).Verdict); // unsubscribes: up is worse
        Assert.Equal(Recommendation.GuardrailHarmed, result.Recommendation);
    }

    [Fact]
    public void Equal_arms_with_enough_users_show_no_difference()
    {
        var result = ExperimentAnalysis.Analyze(Design, [Arm("control", 200_000, 20_000), Arm("b", 200_000, 20_050)]);

        Assert.Equal(Recommendation.NoDifference, result.Recommendation);
        Assert.True(result.UsersPerArmNeeded < 200_000);
    }

    [Fact]
    public void Too_few_users_keep_it_running_and_say_how_many_more()
    {
        var result = ExperimentAnalysis.Analyze(Design, [Arm("control", 1_000, 100), Arm("b", 1_000, 110)]);

        Assert.Equal(Recommendation.KeepRunning, result.Recommendation);
        Assert.Equal(14_749, result.UsersPerArmNeeded); // the docs' example: 10 % baseline, +10 %
        Assert.Contains("13,749 more users per arm", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Comparisons_p_values_are_adjusted_across_metrics_and_arms()
    {
        var three = Design with { Arms = [("control", 1), ("b", 1), ("c", 1)] };
        var result = ExperimentAnalysis.Analyze(three, [Arm("control", 10_000, 1_000, 50), Arm("b", 10_000, 1_100, 60), Arm("c", 10_000, 1_050, 40)]);

        Assert.Equal(4, result.Comparisons.Count);
        var expected = ExperimentStatistics.BenjaminiHochberg([.. result.Comparisons.Select(c => c.Comparison.PValue)]);
        Assert.Equal(expected, result.Comparisons.Select(c => c.AdjustedPValue));
    }

    [Fact]
    public void A_covariate_that_explains_almost_nothing_leaves_the_plain_test()
    {
        // Converted-before explains ~0 of converted-after: CUPED would shave a hair off the variance and switch the test.
        var random = new Random(8);
        MetricSums Arm(double rate)
        {
            var sums = default(MetricSums);
            for (var i = 0; i < 2_000; i++)
            {
                sums.Add(random.NextDouble() < rate ? 1 : 0, random.NextDouble() < 0.5 ? 1 : 0);
            }

            return sums;
        }

        var design = Design with { Guardrails = [] };
        var result = ExperimentAnalysis.Analyze(design, [new("control", 2_000, 2_000, new Dictionary<string, MetricSums> { ["conversion_rate"] = Arm(0.3) }), new("b", 2_000, 2_000, new Dictionary<string, MetricSums> { ["conversion_rate"] = Arm(0.33) })]);

        var primary = Assert.Single(result.Comparisons);
        Assert.Equal((false, "two-proportion z", 0.0), (primary.Cuped, primary.Test, primary.VarianceReduction));
    }
}
