using Segmentation.Core.Experiments;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>
/// The statistics checked on many simulated experiments whose truth is known (seeded, so every run sees the same
/// draws). Bounds allow three standard errors of the simulation itself.
/// </summary>
public class ExperimentSimulationTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static long Conversions(Random random, int users, double rate)
    {
        long n = 0;
        for (var i = 0; i < users; i++)
        {
            n += random.NextDouble() < rate ? 1 : 0;
        }

        return n;
    }

    private static double Tolerance(double p, int runs) => 3 * Math.Sqrt(p * (1 - p) / runs);

    [Fact]
    public void A_A_experiments_are_significant_at_the_nominal_rate_when_looked_at_once()
    {
        var random = new Random(20261202);
        const int Runs = 2000;
        var significant = 0;
        for (var run = 0; run < Runs; run++)
        {
            var a = ArmMetric.Rate(Conversions(random, 1000, 0.1), 1000);
            var b = ArmMetric.Rate(Conversions(random, 1000, 0.1), 1000);
            significant += ExperimentStatistics.Rates(a, b).PValue < 0.05 ? 1 : 0;
        }

        var rate = (double)significant / Runs;
        output.WriteLine($"A/A, one look: {significant} of {Runs} significant at 0.05");
        Assert.InRange(rate, 0.05 - Tolerance(0.05, Runs), 0.05 + Tolerance(0.05, Runs));
    }

    [Fact]
    public void Peeking_after_every_batch_inflates_the_naive_test_but_not_the_sequential_interval()
    {
        var random = new Random(7);
        const int Runs = 1000;
        const int Peeks = 20;
        const int Batch = 250;
        int naive = 0, sequential = 0;
        for (var run = 0; run < Runs; run++)
        {
            long ca = 0, cb = 0, n = 0;
            bool naiveFlag = false, sequentialFlag = false;
            for (var peek = 0; peek < Peeks; peek++)
            {
                ca += Conversions(random, Batch, 0.1);
                cb += Conversions(random, Batch, 0.1);
                n += Batch;
                var r = ExperimentStatistics.Rates(ArmMetric.Rate(ca, n), ArmMetric.Rate(cb, n));
                naiveFlag |= r.PValue < 0.05;
                var (lower, upper) = ExperimentStatistics.SequentialInterval(r.Difference, r.StandardError, 2 * n);
                sequentialFlag |= lower > 0 || upper < 0;
            }

            naive += naiveFlag ? 1 : 0;
            sequential += sequentialFlag ? 1 : 0;
        }

        output.WriteLine($"A/A, {Peeks} looks: naive {naive} of {Runs}, sequential {sequential} of {Runs}");
        Assert.True((double)naive / Runs > 0.15, $"the naive test looked at {Peeks} times should find an effect that is not there far more often than 5 % (got {naive} of {Runs})");
        Assert.True((double)sequential / Runs <= 0.05 + Tolerance(0.05, Runs), $"the sequential interval keeps its 5 % however often it is looked at (got {sequential} of {Runs})");
    }

    [Fact]
    public void Confidence_intervals_cover_the_true_difference_95_percent_of_the_time()
    {
        var random = new Random(11);
        const int Runs = 2000;
        int rateCovered = 0, liftCovered = 0;
        for (var run = 0; run < Runs; run++)
        {
            var r = ExperimentStatistics.Rates(ArmMetric.Rate(Conversions(random, 4000, 0.10), 4000), ArmMetric.Rate(Conversions(random, 4000, 0.12), 4000));
            rateCovered += r.DifferenceLower <= 0.02 && 0.02 <= r.DifferenceUpper ? 1 : 0;
            liftCovered += r.LiftLower <= 0.2 && 0.2 <= r.LiftUpper ? 1 : 0;
        }

        output.WriteLine($"coverage: difference {rateCovered} of {Runs}, lift {liftCovered} of {Runs}");
        Assert.InRange((double)rateCovered / Runs, 0.95 - Tolerance(0.95, Runs), 0.95 + Tolerance(0.95, Runs));
        Assert.InRange((double)liftCovered / Runs, 0.95 - Tolerance(0.95, Runs) - 0.01, 0.95 + Tolerance(0.95, Runs)); // the delta method is approximate
    }

    [Fact]
    public void Cuped_removes_the_variance_the_pre_exposure_value_explains_and_keeps_the_difference()
    {
        var random = new Random(3);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        const int Users = 5000;
        var (ya, xa, yb, xb) = (new double[Users], new double[Users], new double[Users], new double[Users]);
        for (var i = 0; i < Users; i++)
        {
            xa[i] = 10 + (3 * Gaussian());
            ya[i] = (0.8 * xa[i]) + (2 * Gaussian());
            xb[i] = 10 + (3 * Gaussian());
            yb[i] = (0.8 * xb[i]) + (2 * Gaussian()) + 0.5; // a true effect of 0.5
        }

        var theta = ExperimentStatistics.CupedTheta([.. ya, .. yb], [.. xa, .. xb]);
        var meanX = (xa.Sum() + xb.Sum()) / (2 * Users);
        var plain = ExperimentStatistics.Means(new ArmMetric(Users, ya.Sum(), ya.Sum(y => y * y)), new ArmMetric(Users, yb.Sum(), yb.Sum(y => y * y)));
        var adjusted = ExperimentStatistics.Means(ExperimentStatistics.CupedAdjusted(ya, xa, theta, meanX), ExperimentStatistics.CupedAdjusted(yb, xb, theta, meanX));

        output.WriteLine($"CUPED: theta {theta:0.000}, standard error {plain.StandardError:0.0000} -> {adjusted.StandardError:0.0000}");
        Assert.InRange(theta, 0.75, 0.85); // the true slope is 0.8
        // ρ² = 0.8²·9 / (0.8²·9 + 4) ≈ 0.59: the adjusted variance is about 41 % of the plain one, so the standard error about 64 %.
        Assert.InRange(adjusted.StandardError / plain.StandardError, 0.58, 0.70);
        Assert.InRange(adjusted.Difference, 0.5 - (3 * adjusted.StandardError), 0.5 + (3 * adjusted.StandardError));
        Assert.True(adjusted.PValue < plain.PValue);
    }

    [Fact]
    public void Sample_ratio_mismatch_fires_on_a_biased_split_and_rarely_on_a_fair_one()
    {
        var random = new Random(5);
        (long A, long B) Split(int users, double shareOfB)
        {
            long b = 0;
            for (var i = 0; i < users; i++)
            {
                b += random.NextDouble() < shareOfB ? 1 : 0;
            }

            return (users - b, b);
        }

        var fairFlags = 0;
        for (var run = 0; run < 500; run++)
        {
            var (a, b) = Split(10_000, 0.5);
            fairFlags += ExperimentStatistics.SampleRatio([a, b], [0.5, 0.5]).Mismatch ? 1 : 0;
        }

        var biasedFlags = 0;
        for (var run = 0; run < 100; run++)
        {
            var (a, b) = Split(20_000, 0.52); // 2 points of users lost from one arm
            biasedFlags += ExperimentStatistics.SampleRatio([a, b], [0.5, 0.5]).Mismatch ? 1 : 0;
        }

        output.WriteLine($"SRM: fair {fairFlags} of 500 flagged, 52/48 {biasedFlags} of 100 flagged");
        Assert.True(fairFlags <= 3, $"a fair split is flagged about 0.1 % of the time (got {fairFlags} of 500)");
        Assert.True(biasedFlags >= 95, $"a 52/48 split of 20,000 users is flagged (got {biasedFlags} of 100)");
    }
}
