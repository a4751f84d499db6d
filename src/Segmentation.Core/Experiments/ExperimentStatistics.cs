using MathNet.Numerics.Distributions;

namespace Segmentation.Core.Experiments;

/// <summary>
/// One arm's metric over its exposed users, as sufficient statistics: the number of users, the sum of the per-user
/// values and the sum of their squares. For a rate (converted or not) a user's value is 0 or 1, so the sum is the
/// number of conversions and equals the sum of squares.
/// </summary>
/// <param name="Users">Exposed users.</param>
/// <param name="Sum">Sum of the per-user values.</param>
/// <param name="SumOfSquares">Sum of their squares.</param>
public readonly record struct ArmMetric(long Users, double Sum, double SumOfSquares)
{
    /// <summary>A rate: <paramref name="conversions"/> of <paramref name="users"/>.</summary>
    public static ArmMetric Rate(long conversions, long users) => new(users, conversions, conversions);

    /// <summary>The mean per user (the rate, for a rate).</summary>
    public double Mean => Users == 0 ? 0 : Sum / Users;

    /// <summary>
    /// The sample variance of the per-user values (denominator n − 1). Values that are all the same give exactly 0:
    /// from sums, Σy² − (Σy)²/n leaves a rounding residue of the order of n·ε·Σy² (7 users of 19.99 each gave
    /// 1.5e-13), which would read as a real, if tiny, spread; a residue under 1e-9·Σy² is taken as none.
    /// </summary>
    public double Variance
    {
        get
        {
            if (Users < 2)
            {
                return 0;
            }

            var spread = SumOfSquares - (Sum * Sum / Users);
            return spread <= 1e-9 * SumOfSquares ? 0 : spread / (Users - 1);
        }
    }
}

/// <summary>
/// One arm's sufficient statistics of a per-user metric Y and its pre-exposure covariate X (for CUPED): the users,
/// Σy, Σy², Σx, Σx² and Σxy. Adding users is all a scan of exposures does; every statistic is computed from these.
/// </summary>
public struct MetricSums
{
    /// <summary>Users.</summary>
    public long Users { readonly get; private set; }

    /// <summary>Σy.</summary>
    public double SumY { readonly get; private set; }

    /// <summary>Σy².</summary>
    public double SumY2 { readonly get; private set; }

    /// <summary>Σx.</summary>
    public double SumX { readonly get; private set; }

    /// <summary>Σx².</summary>
    public double SumX2 { readonly get; private set; }

    /// <summary>Σxy.</summary>
    public double SumXY { readonly get; private set; }

    /// <summary>Adds one user's value <paramref name="y"/> and pre-exposure value <paramref name="x"/>.</summary>
    public void Add(double y, double x)
    {
        Users++;
        SumY += y;
        SumY2 += y * y;
        SumX += x;
        SumX2 += x * x;
        SumXY += x * y;
    }

    /// <summary>The metric alone.</summary>
    public readonly ArmMetric Metric => new(Users, SumY, SumY2);

    /// <summary>The two arms' sums together.</summary>
    public static MetricSums operator +(MetricSums a, MetricSums b) => new(
        a.Users + b.Users, a.SumY + b.SumY, a.SumY2 + b.SumY2, a.SumX + b.SumX, a.SumX2 + b.SumX2, a.SumXY + b.SumXY);

    /// <summary>The sums given.</summary>
    public MetricSums(long users, double sumY, double sumY2, double sumX, double sumX2, double sumXY) =>
        (Users, SumY, SumY2, SumX, SumX2, SumXY) = (users, sumY, sumY2, sumX, sumX2, sumXY);
}

/// <summary>A treatment arm compared with the control: the difference, the relative lift and their intervals, and the test.</summary>
/// <param name="Difference">Treatment mean − control mean.</param>
/// <param name="StandardError">Standard error of the difference.</param>
/// <param name="DifferenceLower">Lower bound of the difference's confidence interval.</param>
/// <param name="DifferenceUpper">Upper bound.</param>
/// <param name="Lift">Relative lift: treatment mean ÷ control mean − 1 (0 when the control's mean is 0).</param>
/// <param name="LiftLower">Lower bound of the lift's confidence interval (delta method).</param>
/// <param name="LiftUpper">Upper bound.</param>
/// <param name="Statistic">The test statistic (z for rates, Welch's t for means).</param>
/// <param name="DegreesOfFreedom">Welch–Satterthwaite degrees of freedom (infinity for the z test).</param>
/// <param name="PValue">Two-sided p-value.</param>
/// <param name="LiftStandardError">Standard error of the relative lift (delta method).</param>
public sealed record Comparison(
    double Difference,
    double StandardError,
    double DifferenceLower,
    double DifferenceUpper,
    double Lift,
    double LiftLower,
    double LiftUpper,
    double Statistic,
    double DegreesOfFreedom,
    double PValue,
    double LiftStandardError = 0);

/// <summary>A sample-ratio-mismatch check: are the arms' user counts what their weights say?</summary>
/// <param name="ChiSquared">Pearson's chi-squared statistic of the counts against the weights.</param>
/// <param name="PValue">The exact binomial tests' p-value (<see cref="Exact"/>), or Pearson's with k − 1 degrees of freedom.</param>
/// <param name="Mismatch">True when the p-value is below the threshold: the assignment is broken and results are not to be trusted.</param>
public sealed record SampleRatioCheck(double ChiSquared, double PValue, bool Mismatch)
{
    /// <summary>True when the p-value is the exact binomial tests' (every count up to 2^31 users), not Pearson's.</summary>
    public bool Exact { get; init; }

    /// <summary>Why no check was made (null when it was); the statistic, p-value and flag are then 0, 1 and false.</summary>
    public string? NotChecked { get; init; }

    /// <summary>No check, for <paramref name="reason"/>.</summary>
    public static SampleRatioCheck Unchecked(string reason) => new(0, 1, false) { NotChecked = reason };
}

/// <summary>
/// The statistics of an experiment, as pure functions over sufficient statistics. Distributions come from
/// MathNet.Numerics. Every formula is documented in docs/experiments.md and tested against reference values
/// computed independently (SciPy) and by simulation.
/// </summary>
public static class ExperimentStatistics
{
    /// <summary>Why a split without users is not checked.</summary>
    public const string NoUserExposed = "no user has been exposed yet";

    /// <summary>The p-value below which a sample ratio mismatch is flagged.</summary>
    public const double SampleRatioThreshold = 0.001;

    /// <summary>
    /// Two-proportion z test (unpooled standard error for the interval, pooled for the test, which makes z² equal to
    /// Pearson's chi-squared on the 2×2 table without continuity correction).
    /// </summary>
    public static Comparison Rates(ArmMetric control, ArmMetric treatment, double alpha = 0.05)
    {
        Check(control, treatment, alpha);
        var (p1, p2) = (control.Mean, treatment.Mean);
        var (n1, n2) = ((double)control.Users, (double)treatment.Users);
        var pooled = (control.Sum + treatment.Sum) / (n1 + n2);
        var pooledSe = Math.Sqrt(pooled * (1 - pooled) * ((1 / n1) + (1 / n2)));
        var z = pooledSe == 0 ? 0 : (p2 - p1) / pooledSe;
        var p = 2 * Normal.CDF(0, 1, -Math.Abs(z));
        var (var1, var2) = (p1 * (1 - p1) / n1, p2 * (1 - p2) / n2);
        return Compare(p1, p2, var1, var2, z, double.PositiveInfinity, p, Normal.InvCDF(0, 1, 1 - (alpha / 2)));
    }

    /// <summary>Welch's t test for a difference of means with unequal variances (revenue per user, order value).</summary>
    public static Comparison Means(ArmMetric control, ArmMetric treatment, double alpha = 0.05)
    {
        Check(control, treatment, alpha);
        var (var1, var2) = (control.Variance / control.Users, treatment.Variance / treatment.Users);
        var se = Math.Sqrt(var1 + var2);
        var t = se == 0 ? 0 : (treatment.Mean - control.Mean) / se;
        var df = se == 0 ? double.PositiveInfinity
            : (var1 + var2) * (var1 + var2) / ((var1 * var1 / (control.Users - 1)) + (var2 * var2 / (treatment.Users - 1)));
        var p = double.IsInfinity(df) ? 2 * Normal.CDF(0, 1, -Math.Abs(t)) : 2 * StudentT.CDF(0, 1, df, -Math.Abs(t));
        var critical = double.IsInfinity(df) ? Normal.InvCDF(0, 1, 1 - (alpha / 2)) : StudentT.InvCDF(0, 1, df, 1 - (alpha / 2));
        return Compare(control.Mean, treatment.Mean, var1, var2, t, df, p, critical);
    }

    /// <summary>
    /// The arms' exposed users against their weights, judged by exact binomial tests, each arm's users against its share
    /// of all (two-sided, Bonferroni over the arms beyond two), so a fair split is flagged at most once in a thousand
    /// looks at any count. Pearson's chi-squared, the usual statistic, is reported beside it; its p-value flags a fair
    /// split more often than it says — 3.6 in a thousand for a 1 % arm at 539 users, still 1.2 at 5,200 — so it is used
    /// only past the exact tests' reach (over 2^31 users). A p-value below <see cref="SampleRatioThreshold"/> flags a
    /// sample ratio mismatch.
    /// </summary>
    public static SampleRatioCheck SampleRatio(IReadOnlyList<long> users, IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(users);
        ArgumentNullException.ThrowIfNull(weights);
        if (users.Count != weights.Count || users.Count < 2)
        {
            throw new ArgumentException("one weight per arm, at least two arms", nameof(weights));
        }

        var total = users.Sum();
        var weightSum = weights.Sum();
        if (total == 0 || weightSum <= 0)
        {
            return SampleRatioCheck.Unchecked(total == 0 ? NoUserExposed : "no arm has a weight");
        }

        var chi = 0.0;
        for (var i = 0; i < users.Count; i++)
        {
            var expected = total * weights[i] / weightSum;
            chi += expected == 0 ? 0 : (users[i] - expected) * (users[i] - expected) / expected;
        }

        var exact = total <= int.MaxValue;
        var p = exact ? ExactSampleRatio(users, weights, (int)total, weightSum) : 1 - ChiSquared.CDF(users.Count - 1, chi);
        return new SampleRatioCheck(chi, p, p < SampleRatioThreshold) { Exact = exact };
    }

    // The smallest two-sided exact binomial p-value over the arms with a share, times the arms beyond two (with two,
    // both arms' tests are the same test).
    private static double ExactSampleRatio(IReadOnlyList<long> users, IReadOnlyList<double> weights, int total, double weightSum)
    {
        var (smallest, tested) = (1.0, 0);
        for (var i = 0; i < users.Count; i++)
        {
            if (weights[i] > 0)
            {
                smallest = Math.Min(smallest, BinomialTwoSided(total, Math.Min(1, weights[i] / weightSum), (int)users[i]));
                tested++;
            }
        }

        return Math.Min(1, smallest * (tested > 2 ? tested : 1));
    }

    /// <summary>
    /// The two-sided exact binomial p-value of <paramref name="x"/> successes in <paramref name="n"/> trials of
    /// probability <paramref name="p"/>: the probability of every outcome no more likely than it (as R's binom.test).
    /// </summary>
    public static double BinomialTwoSided(int n, double p, int x)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(x);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(x, n);
        var observed = Binomial.PMF(p, n, x) * (1 + 1e-7); // outcomes as likely as it, up to rounding, count too
        var mode = (int)Math.Min(n, Math.Floor((n + 1.0) * p)); // in doubles: (n + 1) overflows at int.MaxValue
        if (x <= mode)
        {
            // The first outcome above x no more likely than x: the probabilities rise to the mode and fall after it, so it
            // is past the mode, or the mode itself when x is the one before it and as likely ((n + 1)p a whole number).
            var (lo, hi) = (x < mode ? mode : mode + 1, n + 1);
            while (lo < hi)
            {
                var mid = lo + ((hi - lo) / 2);
                (lo, hi) = Binomial.PMF(p, n, mid) <= observed ? (lo, mid) : (mid + 1, hi);
            }

            return Math.Min(1, Cdf(p, n, x) + (lo > n ? 0 : 1 - Cdf(p, n, lo - 1)));
        }
        else
        {
            // The last outcome below the mode no more likely than x (the probabilities rise up to the mode).
            var (lo, hi) = (-1, mode - 1);
            while (lo < hi)
            {
                var mid = lo + ((hi - lo + 1) / 2);
                (lo, hi) = Binomial.PMF(p, n, mid) <= observed ? (mid, hi) : (lo, mid - 1);
            }

            return Math.Min(1, (1 - Cdf(p, n, x - 1)) + (lo < 0 ? 0 : Cdf(p, n, lo)));
        }
    }

    // P(X ≤ k), exact at the ends: MathNet's regularized beta answers NaN for k = n when 1 − p is below 1 / (n + 3)
    // (a 99:1 split whose first 96 users all went to the large arm), and the p-value would be NaN, never a mismatch.
    private static double Cdf(double p, int n, int k) => k < 0 ? 0 : k >= n ? 1 : Binomial.CDF(p, n, k);

    /// <summary>
    /// The always-valid (sequential) confidence interval of an estimate: valid however often results are looked at.
    /// The asymptotic confidence sequence of Waudby-Smith et al. with a normal mixture: half-width
    /// = SE · √N · √(2(Nρ² + 1) / (N²ρ²) · ln(√(Nρ² + 1) / α)), where N is the users exposed so far and ρ is tuned so
    /// the interval is narrowest at <paramref name="tunedForUsers"/> users (the choice GrowthBook documents).
    /// </summary>
    public static (double Lower, double Upper) SequentialInterval(double estimate, double standardError, long users, double alpha = 0.05, long tunedForUsers = 5_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(alpha, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(alpha, 1);
        if (users <= 0)
        {
            return (double.NegativeInfinity, double.PositiveInfinity);
        }

        var half = standardError * SequentialMultiplier(users, alpha, tunedForUsers);
        return (estimate - half, estimate + half);
    }

    /// <summary>The factor a standard error is multiplied by for the sequential interval at <paramref name="users"/> (see <see cref="SequentialInterval"/>).</summary>
    public static double SequentialMultiplier(long users, double alpha = 0.05, long tunedForUsers = 5_000)
    {
        var rho2 = ((-2 * Math.Log(alpha)) + Math.Log((-2 * Math.Log(alpha)) + 1)) / Math.Max(1, tunedForUsers);
        var n = (double)users;
        var margin = Math.Sqrt(2 * ((n * rho2) + 1) / (n * n * rho2) * Math.Log(Math.Sqrt((n * rho2) + 1) / alpha));
        return Math.Sqrt(n) * margin;
    }

    /// <summary>
    /// CUPED's coefficient θ = cov(Y, X) / var(X) of the metric Y on its pre-exposure value X, pooled over every arm;
    /// each user's adjusted value is Y − θ(X − mean X), which keeps the means' difference and removes the share of
    /// the variance X explains (ρ², for correlation ρ).
    /// </summary>
    public static double CupedTheta(ReadOnlySpan<double> metric, ReadOnlySpan<double> covariate)
    {
        if (metric.Length != covariate.Length)
        {
            throw new ArgumentException("one pre-exposure value per user", nameof(covariate));
        }

        if (metric.Length < 2)
        {
            return 0;
        }

        double meanY = 0, meanX = 0;
        for (var i = 0; i < metric.Length; i++)
        {
            meanY += metric[i];
            meanX += covariate[i];
        }

        meanY /= metric.Length;
        meanX /= metric.Length;
        double cov = 0, varX = 0;
        for (var i = 0; i < metric.Length; i++)
        {
            cov += (metric[i] - meanY) * (covariate[i] - meanX);
            varX += (covariate[i] - meanX) * (covariate[i] - meanX);
        }

        return varX == 0 ? 0 : cov / varX;
    }

    /// <summary>An arm's metric after CUPED: each user's value adjusted by θ around the pooled pre-exposure mean.</summary>
    public static ArmMetric CupedAdjusted(ReadOnlySpan<double> metric, ReadOnlySpan<double> covariate, double theta, double pooledCovariateMean)
    {
        double sum = 0, squares = 0;
        for (var i = 0; i < metric.Length; i++)
        {
            var y = metric[i] - (theta * (covariate[i] - pooledCovariateMean));
            sum += y;
            squares += y * y;
        }

        return new ArmMetric(metric.Length, sum, squares);
    }

    /// <summary>CUPED's θ from pooled sufficient statistics (the same value <see cref="CupedTheta(ReadOnlySpan{double}, ReadOnlySpan{double})"/> gives from the per-user values).</summary>
    public static double CupedTheta(in MetricSums pooled)
    {
        if (pooled.Users < 2)
        {
            return 0;
        }

        var n = (double)pooled.Users;
        var varX = pooled.SumX2 - (pooled.SumX * pooled.SumX / n);
        var cov = pooled.SumXY - (pooled.SumX * pooled.SumY / n);
        return varX <= 1e-12 * Math.Max(1, pooled.SumX2) ? 0 : cov / varX;
    }

    /// <summary>
    /// An arm's metric after CUPED from its sufficient statistics: Σy' = Σy − θ(Σx − n·x̄) and
    /// Σy'² = Σy² − 2θ(Σxy − x̄Σy) + θ²(Σx² − 2x̄Σx + n·x̄²), with x̄ the pooled pre-exposure mean — the same
    /// as adjusting each user's value (<see cref="CupedAdjusted(ReadOnlySpan{double}, ReadOnlySpan{double}, double, double)"/>).
    /// </summary>
    public static ArmMetric CupedAdjusted(in MetricSums arm, double theta, double pooledCovariateMean)
    {
        var (n, m) = ((double)arm.Users, pooledCovariateMean);
        var sum = arm.SumY - (theta * (arm.SumX - (n * m)));
        var squares = arm.SumY2 - (2 * theta * (arm.SumXY - (m * arm.SumY))) + (theta * theta * (arm.SumX2 - (2 * m * arm.SumX) + (n * m * m)));
        return new ArmMetric(arm.Users, sum, Math.Max(0, squares));
    }

    /// <summary>
    /// Users needed per arm to detect a relative change of <paramref name="relativeEffect"/> on a mean of
    /// <paramref name="baselineMean"/> whose per-user variance is <paramref name="variance"/> (both arms alike):
    /// n = (z₁₋α/₂ + z_power)² · 2σ² / (effect · mean)², rounded up.
    /// </summary>
    public static long UsersPerArmForMean(double baselineMean, double variance, double relativeEffect, double alpha = 0.05, double power = 0.8)
    {
        var delta = relativeEffect * baselineMean;
        if (delta == 0 || variance <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(relativeEffect), "the effect must move a mean that varies");
        }

        var z = Normal.InvCDF(0, 1, 1 - (alpha / 2)) + Normal.InvCDF(0, 1, power);
        return (long)Math.Ceiling(z * z * 2 * variance / (delta * delta));
    }

    /// <summary>
    /// Benjamini–Hochberg adjusted p-values (the false discovery rate across metrics and breakdowns): the
    /// i-th smallest p-value times m / i, made monotone from the largest down and capped at 1. Rejecting where the
    /// adjusted value is below q controls the false discovery rate at q.
    /// </summary>
    public static double[] BenjaminiHochberg(IReadOnlyList<double> pValues)
    {
        ArgumentNullException.ThrowIfNull(pValues);
        var m = pValues.Count;
        var order = Enumerable.Range(0, m).OrderBy(i => pValues[i]).ToArray();
        var adjusted = new double[m];
        var running = 1.0;
        for (var rank = m; rank >= 1; rank--)
        {
            var i = order[rank - 1];
            running = Math.Min(running, pValues[i] * m / rank);
            adjusted[i] = Math.Min(1, running);
        }

        return adjusted;
    }

    /// <summary>
    /// Users needed per arm to detect a relative change of <paramref name="relativeEffect"/> on a rate of
    /// <paramref name="baselineRate"/> with a two-sided test at <paramref name="alpha"/> and the given power:
    /// n = (z₁₋α/₂ + z_power)² · (p₁(1 − p₁) + p₂(1 − p₂)) / (p₂ − p₁)², rounded up.
    /// </summary>
    public static long UsersPerArm(double baselineRate, double relativeEffect, double alpha = 0.05, double power = 0.8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(baselineRate, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(baselineRate, 1);
        var p2 = baselineRate * (1 + relativeEffect);
        if (relativeEffect == 0 || p2 <= 0 || p2 >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(relativeEffect), "the effect must move the rate and keep it between 0 and 1");
        }

        var z = Normal.InvCDF(0, 1, 1 - (alpha / 2)) + Normal.InvCDF(0, 1, power);
        var n = z * z * ((baselineRate * (1 - baselineRate)) + (p2 * (1 - p2))) / ((p2 - baselineRate) * (p2 - baselineRate));
        return (long)Math.Ceiling(n);
    }

    /// <summary>
    /// Users per arm the always-valid test needs to detect the effect a one-look test needs
    /// <paramref name="oneLookUsersPerArm"/> for (at <paramref name="alpha"/> and <paramref name="power"/>): the smallest
    /// n whose expected estimate, effect / SE(n), clears the sequential multiplier at the two arms' 2n users (at
    /// <paramref name="sequentialAlpha"/>) by the power's quantile. With SE(n) = SE(n₀)·√(n₀/n) and
    /// effect / SE(n₀) = z(1 − α/2) + z(power), that is √(n/n₀)·(z(1 − α/2) + z(power)) ≥ multiplier(2n) + z(power).
    /// </summary>
    public static long SequentialUsersPerArm(long oneLookUsersPerArm, double alpha = 0.05, double sequentialAlpha = 0.05, double power = 0.8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(oneLookUsersPerArm, 1);
        var zPower = Normal.InvCDF(0, 1, power);
        var z = Normal.InvCDF(0, 1, 1 - (alpha / 2)) + zPower;
        bool Enough(long n) => Math.Sqrt(n / (double)oneLookUsersPerArm) * z >= SequentialMultiplier(2 * n, sequentialAlpha) + zPower;

        // The left side grows as √n, the multiplier only as √(ln n) past its narrowest point: double, then bisect.
        var (low, high) = (oneLookUsersPerArm - 1, oneLookUsersPerArm);
        while (!Enough(high))
        {
            if (high > long.MaxValue / 4)
            {
                return high;
            }

            (low, high) = (high, high * 2);
        }

        while (high - low > 1)
        {
            var middle = low + ((high - low) / 2);
            (low, high) = Enough(middle) ? (low, middle) : (middle, high);
        }

        return high;
    }

    private static Comparison Compare(double m1, double m2, double var1, double var2, double statistic, double df, double p, double critical)
    {
        var diff = m2 - m1;
        var se = Math.Sqrt(var1 + var2);
        var lift = m1 == 0 ? 0 : (m2 / m1) - 1;

        // Delta method for the ratio m2/m1 with independent arms: Var ≈ var2/m1² + m2²·var1/m1⁴.
        var liftSe = m1 == 0 ? 0 : Math.Sqrt((var2 / (m1 * m1)) + (m2 * m2 * var1 / (m1 * m1 * m1 * m1)));
        return new Comparison(diff, se, diff - (critical * se), diff + (critical * se), lift, lift - (critical * liftSe), lift + (critical * liftSe), statistic, df, p, liftSe);
    }

    private static void Check(ArmMetric control, ArmMetric treatment, double alpha)
    {
        if (control.Users < 2 || treatment.Users < 2)
        {
            throw new ArgumentException("each arm needs at least two users");
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(alpha, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(alpha, 1);
    }
}
