using MathNet.Numerics.Distributions;

namespace Segmentation.Core.Experiments;

/// <summary>
/// Bandit allocation by Thompson sampling: each arm's share of new users is the probability that it is the best arm
/// on the primary metric, estimated by drawing from each arm's posterior many times and counting how often each draw
/// wins; every arm keeps at least a floor, so none is starved of the data that could change its standing.
/// </summary>
/// <remarks>
/// Posteriors: for a rate, Beta(a + users who converted, b + users who did not), the prior worth
/// <see cref="RatePriorUsers"/> users at the pooled rate of all arms (a uniform Beta(1, 1) before any arm has users: a
/// uniform prior, worth two users at 50 %, let an arm without users take about 97 % of new users against one converting
/// 2 %); for a mean,
/// Normal(mean, variance / users), with a wide prior (the pooled mean and variance of all arms, as if from one user)
/// while an arm has fewer than two users, and the pooled variance while its own is 0 (every user the same value, as
/// no revenue at all early on: taken as certain, the arm would be held at its floor however few users it has seen).
/// </remarks>
public static class ThompsonSampling
{
    /// <summary>The least share an arm keeps, whatever its posterior.</summary>
    public const double MinimumFloor = 0.01;

    /// <summary>
    /// Each arm's share of new users (summing to 1). <paramref name="arms"/> are the arms' sums of the primary metric;
    /// <paramref name="floor"/> is at least <see cref="MinimumFloor"/> and at most 1 / arms.
    /// </summary>
    public static double[] Allocate(IReadOnlyList<MetricSums> arms, ExperimentMetric metric, double floor, Random random, int draws = 10_000)
    {
        ArgumentNullException.ThrowIfNull(arms);
        ArgumentNullException.ThrowIfNull(metric);
        ArgumentNullException.ThrowIfNull(random);
        if (arms.Count < 2)
        {
            throw new ArgumentException("a bandit has at least two arms", nameof(arms));
        }

        floor = Math.Clamp(floor, MinimumFloor, 1.0 / arms.Count);
        var wins = new int[arms.Count];
        var pooled = arms.Aggregate(default(MetricSums), (a, b) => a + b).Metric;
        var samplers = arms.Select(a => Sampler(a, metric, pooled, random)).ToArray();
        for (var d = 0; d < draws; d++)
        {
            var best = 0;
            var bestValue = double.NaN;
            for (var i = 0; i < samplers.Length; i++)
            {
                var value = samplers[i]();
                if (double.IsNaN(bestValue) || (metric.HigherIsBetter ? value > bestValue : value < bestValue))
                {
                    (best, bestValue) = (i, value);
                }
            }

            wins[best]++;
        }

        // Floors first, the rest in proportion to each arm's chance of being best.
        var rest = 1 - (floor * arms.Count);
        return [.. wins.Select(w => floor + (rest * w / draws))];
    }

    /// <summary>What the prior of a rate is worth, in users at the pooled rate.</summary>
    public const double RatePriorUsers = 2;

    private static Func<double> Sampler(MetricSums arm, ExperimentMetric metric, ArmMetric pooled, Random random)
    {
        if (metric.IsRate)
        {
            // Beta's parameters must be positive: a pooled rate of 0 or 1 keeps a sliver of the other side.
            var rate = pooled.Users > 0 ? Math.Clamp(pooled.Mean, 0.005, 0.995) : 0.5;
            var beta = new Beta((RatePriorUsers * rate) + arm.SumY, (RatePriorUsers * (1 - rate)) + (arm.Users - arm.SumY), random);
            return beta.Sample;
        }

        var m = arm.Metric;
        var (mean, variance) = m.Users < 2 ? (pooled.Mean, Math.Max(pooled.Variance, 1))
            : m.Variance > 0 ? (m.Mean, m.Variance / m.Users)
            : (m.Mean, Math.Max(pooled.Variance, 1) / m.Users);
        var normal = new Normal(mean, Math.Sqrt(Math.Max(variance, 1e-12)), random);
        return normal.Sample;
    }
}
