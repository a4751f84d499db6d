using Segmentation.Core.Experiments;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>
/// Every statistic against reference values computed independently. Unless stated, the references were computed
/// with SciPy 1.10.1 (Debian 12's python3-scipy) — the calls are written next to each value — and are compared to
/// 9 significant digits or better.
/// </summary>
public class ExperimentStatisticsTests
{
    // a = control, b = treatment: revenue per user of 12 and 14 users.
    private static readonly double[] A = [12.5, 8.0, 0, 0, 22.1, 3.3, 0, 15.0, 7.2, 0, 9.9, 30.5];
    private static readonly double[] B = [14.0, 0, 18.2, 25.0, 0, 11.1, 9.0, 0, 27.5, 16.4, 0, 12.8, 19.9, 0];

    private static ArmMetric Of(double[] values) => new(values.Length, values.Sum(), values.Sum(v => v * v));

    [Fact]
    public void Welch_t_test_matches_scipy()
    {
        var r = ExperimentStatistics.Means(Of(A), Of(B));

        // stats.ttest_ind(B, A, equal_var=False) → statistic 0.5076542445387481, pvalue 0.6164390824645497
        Assert.Equal(0.5076542445387481, r.Statistic, 10);
        Assert.Equal(0.6164390824645497, r.PValue, 10);

        // Welch–Satterthwaite df and the 95 % interval: d ± stats.t.ppf(0.975, df) · se
        Assert.Equal(23.442221011415374, r.DegreesOfFreedom, 8);
        Assert.Equal(-5.991490905122583, r.DifferenceLower, 8);
        Assert.Equal(9.893871857503537, r.DifferenceUpper, 8);
        Assert.Equal((153.9 / 14) - (108.5 / 12), r.Difference, 10);
    }

    [Fact]
    public void Two_proportion_z_test_matches_pearson_chi_squared_on_the_2x2_table()
    {
        var r = ExperimentStatistics.Rates(ArmMetric.Rate(200, 2000), ArmMetric.Rate(250, 2000));

        // stats.chi2_contingency([[200, 1800], [250, 1750]], correction=False) → chi2 6.259780907668231, p 0.012350947711191402
        Assert.Equal(6.259780907668231, r.Statistic * r.Statistic, 9);
        Assert.Equal(0.012350947711191402, r.PValue, 10);

        // p2 − p1 ± stats.norm.ppf(0.975) · √(p1(1 − p1)/n1 + p2(1 − p2)/n2)
        Assert.Equal(0.00543100855465602, r.DifferenceLower, 10);
        Assert.Equal(0.04456899144534397, r.DifferenceUpper, 10);
        Assert.Equal(0.25, r.Lift, 12);
        Assert.True(r.LiftLower > 0 && r.LiftUpper > r.Lift);
    }

    [Theory]
    [InlineData(new long[] { 5010, 4990 }, new[] { 0.5, 0.5 }, 0.04, 0.8493103266373204, false)] // stats.chisquare([5010, 4990], [5000, 5000]); p: 2·Σ_{k≤4990} C(10000, k) / 2^10000 in exact integers
    [InlineData(new long[] { 5000, 5400 }, new[] { 1.0, 1.0 }, 15.384615384615385, 9.116949314540886e-05, true)] // stats.chisquare([5000, 5400], [5200, 5200]); p: 2·Σ_{k≤5000} C(10400, k) / 2^10400
    [InlineData(new long[] { 3300, 3350, 3400 }, new[] { 0.33, 0.33, 0.34 }, 0.5050505050505096, 1.0, false)] // stats.chisquare([3300, 3350, 3400], f_exp=[3316.5, 3316.5, 3417]); p: the smallest arm's exact p times 3, capped
    public void Sample_ratio_reports_pearsons_chi_squared_and_judges_by_exact_binomial_tests(long[] users, double[] weights, double chi, double p, bool mismatch)
    {
        var r = ExperimentStatistics.SampleRatio(users, weights);

        Assert.Equal(chi, r.ChiSquared, 9);
        Assert.Equal(p, r.PValue, 9);
        Assert.True(r.Exact);
        Assert.Equal(mismatch, r.Mismatch);
    }

    [Theory]
    [InlineData(20, 0.01, 2, 0.01685933763565178)] // every outcome no more likely than the observed one, summed exactly (Python fractions)
    [InlineData(2, 0.1, 2, 0.01)]
    [InlineData(16, 0.5, 1, 0.000518798828125)]
    [InlineData(100, 0.3, 18, 0.00849042805253757)]
    [InlineData(100, 0.3, 42, 0.011696201822505088)]
    [InlineData(500, 0.01, 0, 0.011778527296585965)]
    [InlineData(40, 0.25, 10, 1.0)]
    [InlineData(3, 0.5, 1, 1.0)] // (n + 1)p whole: 1 and 2 equally likely, both counted (regression: 0.625, the mode left out)
    [InlineData(1, 0.5, 0, 1.0)]
    [InlineData(4, 0.2, 0, 1.0)]
    [InlineData(500, 0.01, 13, 0.0019004931838829692)]
    [InlineData(5, 0.9, 5, 1.0)] // every trial a success where 1 − p < 1 / (n + 3): MathNet's CDF is NaN there (found in review)
    [InlineData(96, 0.99, 96, 1.0)]
    public void The_exact_binomial_p_value_sums_every_outcome_no_more_likely_than_the_observed_one(int n, double p, int x, double expected) =>
        Assert.Equal(expected, ExperimentStatistics.BinomialTwoSided(n, p, x), 9);

    [Theory]
    [InlineData(new long[] { 18, 2 }, new[] { 99.0, 1.0 }, false)] // chi-squared 16.4 at 20 users: Pearson's approximation flagged it
    [InlineData(new long[] { 2, 0 }, new[] { 1.0, 9.0 }, false)] // two users after a change to 1:9, both in the 10 % arm: p = 0.01
    [InlineData(new long[] { 4, 0 }, new[] { 1.0, 9.0 }, true)] // all 4 in the 10 % arm: p = 0.0001
    [InlineData(new long[] { 0, 3, 40 }, new[] { 1.0, 1.0, 8.0 }, false)]
    [InlineData(new long[] { 487, 13 }, new[] { 99.0, 1.0 }, false)] // regression: past 5 expected users Pearson's p read 0.00032 (a mismatch, the result invalid); exactly 0.0019
    public void At_few_expected_users_an_arm_the_split_is_judged_by_exact_binomial_tests(long[] users, double[] weights, bool mismatch) =>
        Assert.Equal(mismatch, ExperimentStatistics.SampleRatio(users, weights).Mismatch);

    [Fact]
    public void A_split_without_users_is_not_checked_rather_than_passed()
    {
        // Regression: no user at all was reported as a check passed (chi-squared 0, p 1), which the dashboard showed as
        // "no sample ratio mismatch".
        var r = ExperimentStatistics.SampleRatio([0, 0], [1.0, 1.0]);
        Assert.False(r.Mismatch);
        Assert.Equal("no user has been exposed yet", r.NotChecked);
        Assert.Null(ExperimentStatistics.SampleRatio([10, 12], [1.0, 1.0]).NotChecked);
    }

    [Fact]
    public void Every_user_in_the_large_arm_is_a_p_value_of_one_not_nan()
    {
        // Regression (found in review): 50 users all in the 99 % arm made the exact test's p NaN ("p = NaN (ok)").
        var r = ExperimentStatistics.SampleRatio([50, 0], [99.0, 1.0]);
        Assert.Equal(1.0, r.PValue, 9);
        Assert.False(r.Mismatch);
    }

    [Fact]
    public void Benjamini_Hochberg_reproduces_the_papers_example()
    {
        // Benjamini & Hochberg (1995), J. R. Statist. Soc. B 57(1), section 3.2: 15 p-values; at q = 0.05 the four
        // smallest are rejected (the 4th, 0.0095 ≤ 4/15 · 0.05, and none above it qualifies).
        double[] p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000];

        var adjusted = ExperimentStatistics.BenjaminiHochberg(p);

        Assert.Equal(4, adjusted.Count(q => q <= 0.05));
        Assert.Equal(0.0095 * 15 / 4, adjusted[3], 12);
        Assert.Equal(0.0015, adjusted[0], 12); // min over ranks ≥ 1 of p·m/rank: 0.0001·15 = 0.0015 < 0.0004·15/2 = 0.003
        Assert.True(adjusted.Zip(adjusted.Skip(1)).All(x => x.First <= x.Second)); // monotone in the p-values' order
    }

    [Fact]
    public void Users_per_arm_follows_the_normal_approximation()
    {
        // (stats.norm.ppf(0.975) + stats.norm.ppf(0.8))² · (0.1·0.9 + 0.11·0.89) / 0.01² = 14748.045020841953
        Assert.Equal(14_749, ExperimentStatistics.UsersPerArm(0.10, 0.10));
        Assert.True(ExperimentStatistics.UsersPerArm(0.10, 0.20) < ExperimentStatistics.UsersPerArm(0.10, 0.10) / 3);
    }

    [Theory]
    [InlineData(100, 6.694388617066039)]
    [InlineData(5000, 3.0352089903762534)]
    [InlineData(100000, 3.3368575337865996)]
    public void The_sequential_multiplier_is_narrowest_near_the_tuned_size(long users, double multiplier)
    {
        // The formula evaluated in Python's math module (docs/experiments.md); always wider than the fixed 1.96.
        Assert.Equal(multiplier, ExperimentStatistics.SequentialMultiplier(users), 9);
        Assert.True(multiplier > 1.96);
    }
}
