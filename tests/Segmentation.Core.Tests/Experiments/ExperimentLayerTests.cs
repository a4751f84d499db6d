using Segmentation.Core.Catalog;
using Segmentation.Core.Experiments;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Rendering;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>Experiments of the whole catalog, and layers that keep experiments' users apart.</summary>
public class ExperimentLayerTests
{
    private static string CatalogWide(string id, string extra = "") => $$"""
          - id: {{id}}
            scope: catalog
        {{extra}}
            arms:
              - id: control
              - id: bold_cta
                variants:
                  cta: "{{id}}: buy now"
        """;

    private static void Vip(TestWorld w, string user) => ExperimentCatalogTests.Vip(w, user);

    [Fact]
    public void A_catalog_experiment_splits_every_user_and_overrides_only_its_variants_over_each_winners()
    {
        using var w = new TestWorld(ExperimentCatalogTests.Source("experiments:\n" + CatalogWide("cta_test")));
        var arms = new Dictionary<string, int>();
        for (var i = 0; i < 400; i++)
        {
            var user = $"u{i}";
            if (i % 2 == 0)
            {
                Vip(w, user);
            }

            var d = w.Decide(user);
            Assert.Equal("cta_test", d.Experiment?.Id);
            Assert.Equal(i % 2 == 0 ? "vip" : "everyone", d.Winner.Id);
            Assert.Equal(d.Winner.Variants[(int)VariantKind.Offer].Id, d.Variants[(int)VariantKind.Offer].VariantId); // not overridden: the winner's own
            Assert.Equal(d.Arm!.Id == "bold_cta" ? "cta_test: buy now" : d.Winner.Variants[(int)VariantKind.Cta].Source, d.Variants[(int)VariantKind.Cta].Text);
            arms[d.Arm.Id] = arms.GetValueOrDefault(d.Arm.Id) + 1;
        }

        Assert.False(ExperimentStatistics.SampleRatio([arms["control"], arms["bold_cta"]], [1, 1]).Mismatch);
    }

    [Fact]
    public void Kpi_rows_by_arm_and_variant_name_the_winners_own_variant_where_a_catalog_experiments_arm_does_not_override_it()
    {
        // Regression (review): an arm of an experiment of the whole catalog carries the fallback's variants where it does
        // not override them, and the KPI rows by arm and variant named those ids although the winner's own were served.
        using var w = new TestWorld(ExperimentCatalogTests.Source("experiments:\n" + CatalogWide("cta_test")));
        for (var i = 0; i < 40; i++)
        {
            Vip(w, $"v{i}");
            w.Decide($"v{i}");
        }

        w.Measurement.Drain();
        var rows = w.Measurement.Kpis.Query(new Core.Application.Measurement.KpiQuery(w.Clock.Now.AddHours(-1), w.Clock.Now.AddHours(1), [Core.Application.Measurement.KpiDimension.Segment, Core.Application.Measurement.KpiDimension.Arm, Core.Application.Measurement.KpiDimension.Variant])).Rows;
        var vip = w.Catalogs.Current.Segments.Single(s => s.Id == "vip");
        var bold = w.Catalogs.Current.Experiments[0].ArmById("bold_cta")!;

        foreach (var arm in new[] { "cta_test:control", "cta_test:bold_cta" })
        {
            Assert.Equal(vip.Variants[(int)VariantKind.Offer].Id, Assert.Single(rows, r => r.SegmentId == "vip" && r.Arm == arm && r.Variant == VariantKind.Offer).VariantId);
        }

        Assert.Equal(bold.Variants[(int)VariantKind.Cta].Id, Assert.Single(rows, r => r.Arm == "cta_test:bold_cta" && r.Variant == VariantKind.Cta).VariantId); // its own
        Assert.Equal(vip.Variants[(int)VariantKind.Cta].Id, Assert.Single(rows, r => r.Arm == "cta_test:control" && r.Variant == VariantKind.Cta).VariantId);

        // The same after a restart: the checkpoint keeps the arm's variant ids as the previous version wrote them (so it
        // can still read them), and which kinds the arm overrides is read from the catalog serving.
        var dir = Directory.CreateTempSubdirectory("seg-arm-ids-").FullName;
        try
        {
            new Segmentation.Storage.MeasurementCheckpointFile(dir, w.Measurement, w.Get<Core.Application.Measurement.SegmentSizeHistory>(), w.Get<Core.Application.Measurement.ChurnHistory>(), w.Outcomes, w.Catalogs).Save();
            using var restarted = new TestWorld(ExperimentCatalogTests.Source("experiments:\n" + CatalogWide("cta_test")), w.Clock.Now);
            Assert.True(new Segmentation.Storage.MeasurementCheckpointFile(dir, restarted.Measurement, restarted.Get<Core.Application.Measurement.SegmentSizeHistory>(), restarted.Get<Core.Application.Measurement.ChurnHistory>(), restarted.Outcomes, restarted.Catalogs).Restore());
            var again = restarted.Measurement.Kpis.Query(new Core.Application.Measurement.KpiQuery(w.Clock.Now.AddHours(-1), w.Clock.Now.AddHours(1), [Core.Application.Measurement.KpiDimension.Segment, Core.Application.Measurement.KpiDimension.Arm, Core.Application.Measurement.KpiDimension.Variant])).Rows;
            Assert.Equal(vip.Variants[(int)VariantKind.Offer].Id, Assert.Single(again, r => r.SegmentId == "vip" && r.Arm == "cta_test:control" && r.Variant == VariantKind.Offer).VariantId);
            Assert.Equal(bold.Variants[(int)VariantKind.Cta].Id, Assert.Single(again, r => r.Arm == "cta_test:bold_cta" && r.Variant == VariantKind.Cta).VariantId);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_decision_cached_for_the_user_before_identify_gives_way_to_the_arm_the_visitor_brings()
    {
        // A visitor without a profile links to the user without changing any profile version: the user's decision
        // cached before (its arm by the user's own hash, not yet recorded) was served after the visitor's arm moved in.
        using var w = new TestWorld(ExperimentCatalogTests.Source("experiments:\n" + CatalogWide("cta_test")));
        var experiment = w.Catalogs.Current.Experiments[0];
        var (visitor, user) = Enumerable.Range(0, 100).Select(i => ($"anon-{i}", $"user-{i}")).First(p => experiment.Assign(p.Item1).Id != experiment.Assign(p.Item2).Id);
        var visitorArm = w.Decide(visitor).Arm!.Id;
        w.Measurement.Drain(); // the visitor's arm is recorded
        w.Decide(user); // remembers the context
        w.Decide(user); // caches the decision
        Assert.True(w.Decide(user).FromCache); // the user's own arm, served from the cache

        w.Ingestion.Identify(visitor, user);

        var after = w.Decide(user);
        Assert.False(after.FromCache);
        Assert.Equal(visitorArm, after.Arm!.Id);
    }

    [Fact]
    public void A_segments_own_experiment_comes_before_a_catalog_experiment()
    {
        using var w = new TestWorld(ExperimentCatalogTests.Source(ExperimentCatalogTests.Experiment + "\n" + CatalogWide("cta_test")));
        Vip(w, "a");

        Assert.Equal("vip_offer_test", w.Decide("a").Experiment?.Id);
        Assert.Equal("cta_test", w.Decide("b").Experiment?.Id);
    }

    [Fact]
    public void Experiments_in_one_layer_never_share_a_user_and_take_their_declared_shares()
    {
        var experiments = "experiments:\n" + CatalogWide("first", "    layer: checkout\n    traffic: 0.3") + "\n" + CatalogWide("second", "    layer: checkout");
        using var w = new TestWorld(ExperimentCatalogTests.Source(experiments));
        var catalog = w.Catalogs.Current;
        var (first, second) = (catalog.Experiments[0], catalog.Experiments[1]);
        Assert.Equal((0.0, 0.3, 0.3, 1.0), (first.LayerFrom, first.LayerTo, second.LayerFrom, second.LayerTo)); // the rest of the layer

        var counts = new Dictionary<string, int>();
        for (var i = 0; i < 4_000; i++)
        {
            var user = $"l{i}";
            Assert.False(first.InLayer(user) && second.InLayer(user)); // mutually exclusive
            var d = w.Decide(user);
            Assert.Equal(first.InLayer(user) ? "first" : "second", d.Experiment!.Id);
            counts[d.Experiment.Id] = counts.GetValueOrDefault(d.Experiment.Id) + 1;
        }

        Assert.False(ExperimentStatistics.SampleRatio([counts["first"], counts["second"]], [0.3, 0.7]).Mismatch, string.Join(", ", counts));
    }

    [Fact]
    public void A_user_stays_in_the_experiment_of_the_layer_they_were_recorded_in_when_the_layers_ranges_move()
    {
        // Removing 'a' gives 'b' the first half and 'c' the second: by the ranges alone, part of b's users would be
        // served c, while b's results go on crediting them — counted in both.
        string Layer(params string[] ids) => "experiments:\n" + string.Join("\n", ids.Select(id => CatalogWide(id, "    layer: checkout")));
        using var w = new TestWorld(ExperimentCatalogTests.Source(Layer("a", "b", "c")));
        var before = Enumerable.Range(0, 600).ToDictionary(i => $"u{i}", i => w.Decide($"u{i}").Experiment!.Id);
        w.Measurement.Drain();

        w.Clock.Now = w.Clock.Now.AddMinutes(1);
        w.Governance.Publish([.. w.Catalogs.Current.Files.Where(f => f.Name != "experiments.yaml"), new CatalogFile("experiments.yaml", Layer("b", "c"))], "a ended");
        var (b, c) = (w.Catalogs.Current.Experiments[0], w.Catalogs.Current.Experiments[1]);
        Assert.Contains(before, kv => kv.Value == "b" && c.InLayer(kv.Key)); // the ranges alone would move some

        foreach (var (user, experiment) in before)
        {
            var now = w.Decide(user).Experiment!.Id;
            Assert.Equal(experiment == "a" ? (b.InLayer(user) ? "b" : "c") : experiment, now); // a's users are placed afresh
        }

        w.Measurement.Drain();
        Assert.DoesNotContain(before.Keys, u => w.Measurement.Exposures.IsRecorded("b", u) && w.Measurement.Exposures.IsRecorded("c", u));
    }

    [Fact]
    public void A_decision_is_valid_until_an_experiment_of_its_layer_ends_even_one_of_another_segment()
    {
        // A user recorded in 'regulars_test' is kept out of 'vip_test' (same layer) while it runs; when it stops they
        // may enter 'vip_test', so a vip decision cached before must not outlive that stop.
        static string Of(string id, string segment, string extra) => $$"""
              - id: {{id}}
                segment: {{segment}}
                layer: loyalty
            {{extra}}
                arms:
                  - id: control
                  - id: bold
                    variants:
                      cta: "{{id}}"
            """;
        var experiments = "experiments:\n" + Of("vip_test", "vip", "") + "\n" + Of("regulars_test", "regulars", "    stop: 2030-01-01T00:00:00Z");
        var catalog = CatalogLoader.Load(ExperimentCatalogTests.Source(experiments, TestCatalogs.Segment("regulars", "behavioural", "{ field: traits.score, gte: 1 }")));

        var stop = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks;
        Assert.Equal(stop, catalog.NextExperimentChange(catalog.ById["vip"], stop - TimeSpan.TicksPerDay));
    }

    [Fact]
    public void An_identified_visitor_stays_in_the_experiment_of_the_layer_they_were_in_anonymously()
    {
        var experiments = "experiments:\n" + CatalogWide("first", "    layer: checkout") + "\n" + CatalogWide("second", "    layer: checkout");
        using var w = new TestWorld(ExperimentCatalogTests.Source(experiments));
        var first = w.Catalogs.Current.Experiments[0];
        var (visitor, user) = Enumerable.Range(0, 100).Select(i => ($"anon-{i}", $"user-{i}")).First(p => first.InLayer(p.Item1) && !first.InLayer(p.Item2));
        Assert.Equal("first", w.Decide(visitor).Experiment!.Id);
        w.Measurement.Drain();

        w.Ingestion.Identify(visitor, user);

        Assert.Equal("first", w.Decide(user).Experiment!.Id); // the user's own id places them in 'second'
    }

    [Theory]
    [InlineData("experiments:\n{0}\n{1}", "already has experiment 'a'")] // two catalog experiments, same time, no layer
    [InlineData("experiments:\n{0}", "'traffic' is the experiment's share of its layer's users; it needs a 'layer'", "    traffic: 0.5")]
    [InlineData("experiments:\n{0}\n{1}", "layer 'x' is over-full", "    layer: x\n    traffic: 0.7", "    layer: x\n    traffic: 0.6")]
    [InlineData("experiments:\n{0}", "names no segment", "    segment: vip")]
    [InlineData("experiments:\n{0}", "'scope' is 'segment'", "    scope: world")]
    public void Layer_and_scope_mistakes_are_catalog_errors(string template, string message, string extraA = "", string extraB = "")
    {
        var yaml = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, CatalogWide("a", extraA), CatalogWide("b", extraB)).Replace("    scope: catalog\n    scope: world", "    scope: world", StringComparison.Ordinal);
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(ExperimentCatalogTests.Source(yaml))).Errors;
        Assert.Contains(errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Line > 0);
    }

    [Theory]
    [InlineData("layer", "    layer: layer", "is how the layer itself places users")] // the salt defaults to the id
    [InlineData("layer", "    layer: checkout\n    salt: checkout", "is how the layer itself places users")]
    [InlineData("decisioning", "    salt: holdout", "is how the decisioning holdout itself places users")]
    public void An_experiment_hashing_users_as_its_layer_or_the_holdout_does_is_a_catalog_error(string id, string extra, string message)
    {
        // Regression: an experiment 'layer' in the layer 'layer' hashed every user to the very place the layer did, so
        // within its range of the layer all its users fell in one arm (and the sample ratio check called it broken).
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(ExperimentCatalogTests.Source("experiments:\n" + CatalogWide(id, extra)))).Errors;
        Assert.Contains(errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Line > 0);

        CatalogLoader.Load(ExperimentCatalogTests.Source("experiments:\n" + CatalogWide(id, extra.Replace("salt: checkout", "salt: other", StringComparison.Ordinal).Replace("salt: holdout", "salt: other", StringComparison.Ordinal) + (id == "layer" && !extra.Contains("salt", StringComparison.Ordinal) ? "\n    salt: other" : ""))));
    }

    [Fact]
    public void Results_of_a_catalog_experiment_break_the_primary_metric_down_by_winning_segment()
    {
        var yaml = "experiments:\n" + CatalogWide("cta_test").Replace("    scope: catalog", "    scope: catalog\n    primary_metric: ctr", StringComparison.Ordinal);
        using var w = new TestWorld(ExperimentCatalogTests.Source(yaml));
        var random = new Random(2);
        var counted = new Dictionary<(string Segment, string Arm), (int Users, int Clicked)>();
        for (var i = 0; i < 4_000; i++)
        {
            var user = $"u{i}";
            var vip = i % 2 == 0;
            if (vip)
            {
                Vip(w, user);
            }

            var d = w.Decide(user);

            // The bold CTA works for VIPs only (+50 % clicks), not for everyone else.
            var rate = d.Arm!.Id == "bold_cta" && vip ? 0.3 : 0.2;
            var clicked = random.NextDouble() < rate;
            if (clicked)
            {
                w.Outcomes.Record(0, new Outcome($"{user}-click", OutcomeType.Click, d.DecisionId, user, "", VariantKind.Cta, w.Clock.Now));
            }

            var (users, clicks) = counted.GetValueOrDefault((d.Winner.Id, d.Arm.Id));
            counted[(d.Winner.Id, d.Arm.Id)] = (users + 1, clicks + (clicked ? 1 : 0));
        }

        var result = w.Get<Core.Application.Experiments.ExperimentLifecycle>().Results("cta_test").Result;

        // Each decision is counted under its own winner, arm or not (regression: an arm's decisions all took the first winner's segment).
        var kpis = w.Measurement.Kpis.Query(new Core.Application.Measurement.KpiQuery(w.Clock.Now.AddHours(-1), w.Clock.Now.AddHours(1), [Core.Application.Measurement.KpiDimension.Segment, Core.Application.Measurement.KpiDimension.Arm])).Rows;
        Assert.Equal(2_000, kpis.Where(r => r.SegmentId == "vip").Sum(r => r.Kpis.Decisions));
        Assert.Equal(2_000, kpis.Where(r => r.SegmentId == "everyone").Sum(r => r.Kpis.Decisions));

        Assert.Equal(["everyone", "vip"], result.Breakdowns.Select(b => b.SegmentId).Order());
        Assert.Equal(4_000, result.Breakdowns.Sum(b => b.Exposed));
        Assert.Equal(Verdict.Better, Assert.Single(result.Breakdowns.Single(b => b.SegmentId == "vip").Comparisons).Verdict);
        Assert.Equal(Verdict.Inconclusive, Assert.Single(result.Breakdowns.Single(b => b.SegmentId == "everyone").Comparisons).Verdict);
        // Each segment's own per-arm click rates, the ones its comparison compares (regression: only the whole experiment's were given).
        foreach (var breakdown in result.Breakdowns)
        {
            Assert.Equal(["control", "bold_cta"], breakdown.Arms.Select(a => a.ArmId));
            foreach (var arm in breakdown.Arms)
            {
                var (users, clicks) = counted[(breakdown.SegmentId, arm.ArmId)];
                Assert.Equal((users, users, "ctr"), (arm.Exposed, arm.Primary.Users, arm.Primary.Metric));
                Assert.Equal((double)clicks / users, arm.Primary.Mean, 12);
            }

            var comparison = Assert.Single(breakdown.Comparisons);
            Assert.Equal(breakdown.Arms[1].Primary.Mean - breakdown.Arms[0].Primary.Mean, comparison.Raw.Difference, 12);
        }

        var all = result.Comparisons.Concat(result.Breakdowns.SelectMany(b => b.Comparisons)).ToList();
        Assert.Equal(ExperimentStatistics.BenjaminiHochberg([.. all.Select(c => c.Comparison.PValue)]), all.Select(c => c.AdjustedPValue)); // one family
    }
}
