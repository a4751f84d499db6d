using Segmentation.Core.Application.Experiments;
using Segmentation.Core.Catalog;
using Segmentation.Core.Experiments;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>Bandit allocation: Thompson sampling moves new users toward the better arm, keeps a floor, and never moves assigned users.</summary>
public class BanditTests
{
    private static readonly ExperimentMetric Conversion = ExperimentMetric.Named("conversion_rate");

    private static MetricSums Rate(long users, long hits)
    {
        var sums = default(MetricSums);
        for (var i = 0; i < users; i++)
        {
            sums.Add(i < hits ? 1 : 0, 0);
        }

        return sums;
    }

    [Fact]
    public void A_clearly_better_arm_gets_nearly_everyone_and_the_other_keeps_its_floor()
    {
        var shares = ThompsonSampling.Allocate([Rate(1_000, 100), Rate(1_000, 200)], Conversion, 0.05, new Random(1));

        Assert.Equal(1, shares.Sum(), 9);
        Assert.Equal(0.05, shares[0], 3); // P(best) ≈ 0: the floor alone
        Assert.Equal(0.95, shares[1], 3);
    }

    [Fact]
    public void Equal_arms_share_evenly_and_no_data_means_an_even_split()
    {
        var equal = ThompsonSampling.Allocate([Rate(5_000, 500), Rate(5_000, 500)], Conversion, 0.01, new Random(2));
        var empty = ThompsonSampling.Allocate([default, default, default], Conversion, 0.01, new Random(3));

        Assert.InRange(equal[0], 0.42, 0.58);
        Assert.All(empty, s => Assert.InRange(s, 0.30, 0.37));
    }

    [Fact]
    public void An_arm_whose_users_all_spent_nothing_yet_is_not_taken_as_certain()
    {
        // 20 users, none with revenue yet, against 200 of whom 20 spent 10: with a variance of 0 the first arm's
        // posterior was a point at 0, beaten by every draw of the second — held at the floor after 20 users.
        var none = default(MetricSums);
        var some = default(MetricSums);
        for (var i = 0; i < 200; i++)
        {
            if (i < 20)
            {
                none.Add(0, 0);
            }

            some.Add(i < 20 ? 10 : 0, 0);
        }

        var shares = ThompsonSampling.Allocate([none, some], ExperimentMetric.Named("revenue_per_user"), 0.01, new Random(5));

        Assert.InRange(shares[0], 0.04, 0.15); // the chance it is the better arm with the pooled spread: about 7 %
    }

    [Fact]
    public void An_arm_without_users_gets_a_chance_not_nearly_everyone()
    {
        // Regression: with a uniform prior (two users at 50 %) an arm without users drew above 2 % almost always, so
        // against an arm converting 20 of 1,000 it took about 97 % of new users (a new arm, or one not yet exposed).
        var shares = ThompsonSampling.Allocate([Rate(1_000, 20), default], Conversion, 0.01, new Random(1));

        Assert.InRange(shares[1], 0.05, 0.25); // a prior of two users at the pooled 2 %: about 12 %
    }

    [Fact]
    public void Where_lower_is_better_the_lower_arm_wins()
    {
        var shares = ThompsonSampling.Allocate([Rate(2_000, 100), Rate(2_000, 20)], ExperimentMetric.Named("unsubscribe_rate"), 0.01, new Random(4));
        Assert.True(shares[1] > 0.95, string.Join(", ", shares));
    }

    [Fact]
    public void A_bandit_sends_new_users_to_the_better_arm_and_keeps_earlier_users_where_they_were()
    {
        var experiments = ExperimentCatalogTests.Experiment.Replace("primary_metric:", "allocation: bandit\n    floor: 0.02\n    primary_metric:", StringComparison.Ordinal);
        using var w = new TestWorld(ExperimentCatalogTests.Source(experiments));
        var random = new Random(9);
        var first = new Dictionary<string, string>();
        for (var i = 0; i < 2_000; i++)
        {
            var user = $"b{i}";
            w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["vip"] = true }, "crm", AttributeLayer.ZeroParty, null);
            var d = w.Decide(user);
            first[user] = d.Arm!.Id;
            if (random.NextDouble() < (d.Arm.Id == "stronger_offer" ? 0.3 : 0.1))
            {
                w.Outcomes.Record(0, new Outcome($"{user}-buy", OutcomeType.Conversion, d.DecisionId, user, "", VariantKind.Offer, w.Clock.Now, $"o-{user}", 10, "GBP"));
            }
        }

        Assert.Equal(1, w.Get<BanditAllocator>().Reallocate());
        var allocation = w.Catalogs.Current.Experiments[0].Allocation;
        Assert.Equal((0.02, 0.98), (Math.Round(allocation[0], 3), Math.Round(allocation[1], 3)));

        var newcomers = Enumerable.Range(0, 500).Count(i =>
        {
            w.Ingestion.SetTraits($"n{i}", new Dictionary<string, object?> { ["vip"] = true }, "crm", AttributeLayer.ZeroParty, null);
            return w.Decide($"n{i}").Arm!.Id == "stronger_offer";
        });
        Assert.InRange(newcomers, 470, 500);
        Assert.All(first.Take(300), kv => Assert.Equal(kv.Value, w.Decide(kv.Key).Arm!.Id));

        var result = w.Get<ExperimentLifecycle>().Results("vip_offer_test").Result;
        Assert.False(result.SampleRatio.Mismatch); // the split moved on purpose: not a mismatch
        Assert.Contains("bandit", result.SampleRatio.NotChecked, StringComparison.Ordinal); // and not a pass either (regression: shown as "no mismatch")
        Assert.Contains("biased toward arms that looked good early", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bandit_switched_to_fixed_weights_checks_its_split_over_the_users_assigned_since()
    {
        // Regression: the table kept the declared weights while a bandit moved the split, so publishing the same
        // experiment with fixed weights found them unchanged and checked every user the bandit had placed against 1:1:
        // a mismatch for good.
        var bandit = ExperimentCatalogTests.Experiment.Replace("primary_metric:", "allocation: bandit\n    floor: 0.02\n    primary_metric:", StringComparison.Ordinal);
        using var w = new TestWorld(ExperimentCatalogTests.Source(bandit));
        for (var i = 0; i < 1_000; i++)
        {
            ExperimentCatalogTests.Vip(w, $"b{i}");
            var d = w.Decide($"b{i}");
            if (i % (d.Arm!.Id == "stronger_offer" ? 3 : 10) == 0)
            {
                w.Outcomes.Record(0, new Outcome($"b{i}-buy", OutcomeType.Conversion, d.DecisionId, $"b{i}", "", VariantKind.Offer, w.Clock.Now, $"o-b{i}", 10, "GBP"));
            }
        }

        Assert.Equal(1, w.Get<BanditAllocator>().Reallocate());
        for (var i = 0; i < 500; i++)
        {
            ExperimentCatalogTests.Vip(w, $"n{i}");
            w.Decide($"n{i}"); // nearly all to the arm the bandit favours
        }

        w.Clock.Now = w.Clock.Now.AddMinutes(1);
        w.Governance.Publish([.. w.Catalogs.Current.Files.Where(f => f.Name != "experiments.yaml"), new CatalogFile("experiments.yaml", ExperimentCatalogTests.Experiment)], "fixed 1:1");
        for (var i = 0; i < 400; i++)
        {
            ExperimentCatalogTests.Vip(w, $"f{i}");
            w.Decide($"f{i}");
        }

        var result = w.Get<ExperimentLifecycle>().Results("vip_offer_test").Result;
        Assert.False(result.SampleRatio.Mismatch, $"chi-squared {result.SampleRatio.ChiSquared}");
        Assert.Null(result.SampleRatio.NotChecked);
        Assert.Equal(400, result.Arms.Sum(a => a.Exposed)); // the users assigned under the fixed split, as every figure
        Assert.Equal(1_900, w.Get<ExperimentLifecycle>().Results("vip_offer_test").Info.Exposed);
    }

    [Fact]
    public void An_arm_declared_with_weight_0_stays_off_when_a_bandit_reallocates()
    {
        // Without data its posterior is flat: in the draw it would beat a 10 % arm nine times in ten.
        var experiments = ExperimentCatalogTests.Experiment
            .Replace("primary_metric:", "allocation: bandit\n    primary_metric:", StringComparison.Ordinal)
            .Replace("        cta: \"Claim it\"", "        cta: \"Claim it\"\n      - id: staged\n        weight: 0\n        variants:\n          cta: \"Soon\"", StringComparison.Ordinal);
        using var w = new TestWorld(ExperimentCatalogTests.Source(experiments));
        for (var i = 0; i < 400; i++)
        {
            ExperimentCatalogTests.Vip(w, $"b{i}");
            var d = w.Decide($"b{i}");
            if (i % 10 == 0)
            {
                w.Outcomes.Record(0, new Outcome($"b{i}-buy", OutcomeType.Conversion, d.DecisionId, $"b{i}", "", VariantKind.Offer, w.Clock.Now, $"o-b{i}", 10, "GBP"));
            }
        }

        Assert.Equal(1, w.Get<BanditAllocator>().Reallocate());

        var allocation = w.Catalogs.Current.Experiments[0].Allocation;
        Assert.Equal(0, allocation[2]);
        Assert.Equal(1, allocation[0] + allocation[1], 9);
        Assert.DoesNotContain(Enumerable.Range(0, 300), i =>
        {
            ExperimentCatalogTests.Vip(w, $"n{i}");
            return w.Decide($"n{i}").Arm!.Id == "staged";
        });
    }

    [Theory]
    [InlineData("floor: 0.1", "it needs 'allocation: bandit'")]
    [InlineData("allocation: greedy", "'allocation' is 'fixed'")]
    [InlineData("allocation: bandit\n    floor: 0.001", "'floor' is a share from 0.01 to 0.5")]
    public void Bandit_mistakes_are_catalog_errors(string keys, string message)
    {
        var yaml = ExperimentCatalogTests.Experiment.Replace("primary_metric:", keys + "\n    primary_metric:", StringComparison.Ordinal);
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(ExperimentCatalogTests.Source(yaml))).Errors;
        Assert.Contains(errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Line > 0);
    }
}
