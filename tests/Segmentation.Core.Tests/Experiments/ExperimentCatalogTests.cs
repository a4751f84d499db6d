using Segmentation.Core.Catalog;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>Experiments in the catalog: validated at load with errors at file:line, and served after arbitration.</summary>
public class ExperimentCatalogTests
{
    internal const string Experiment = """
        experiments:
          - id: vip_offer_test
            segment: vip
            description: Does a stronger offer convert VIPs better?
            primary_metric: conversion_rate
            guardrails: [unsubscribe_rate]
            minimum_detectable_effect: 0.1
            arms:
              - id: control
                weight: 1
              - id: stronger_offer
                weight: 1
                variants:
                  offer: { id: vip.offer.stronger, template: "20 % off for {{ profile.traits.tier ?? 'you' }}" }
                  cta: "Claim it"
        """;

    /// <summary>Makes <paramref name="user"/> a VIP (declared), whom the test catalog's segment <c>vip</c> wins.</summary>
    internal static void Vip(Support.TestWorld w, string user, string? tier = null) =>
        w.Ingestion.SetTraits(user, tier is null ? new Dictionary<string, object?> { ["vip"] = true } : new Dictionary<string, object?> { ["vip"] = true, ["tier"] = tier }, "crm", Core.Profiles.AttributeLayer.ZeroParty, null);

    internal static ICatalogSource Source(string experiments, params string[] extraSegments) => new InMemoryCatalogSource(
    [
        new CatalogFile("catalog.yaml", TestCatalogs.Schema),
        new CatalogFile("fallback.yaml", TestCatalogs.Fallback),
        new CatalogFile("segments.yaml", "segments:\n" + string.Join("\n", [TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }"), .. extraSegments])),
        new CatalogFile("experiments.yaml", experiments),
    ]);

    private static IReadOnlyList<CatalogError> Errors(string experiments) =>
        Assert.Throws<CatalogException>(() => CatalogLoader.Load(Source(experiments))).Errors;

    [Fact]
    public void A_catalog_of_more_experiments_than_the_limit_is_refused_and_a_kept_version_of_one_still_loads()
    {
        // Choosing a user's experiment walks those of their layer for each one: 20,000 experiments were a decision of
        // hundreds of millions of lookups.
        var many = "experiments:\n" + string.Concat(Enumerable.Range(0, CatalogValidator.MaxExperiments + 1).Select(i =>
            $"  - {{ id: e{i}, scope: catalog, layer: l, arms: [ {{ id: a }}, {{ id: b }} ] }}\n"));

        Assert.Contains(Errors(many), e => e.Message.Contains($"defines {CatalogValidator.MaxExperiments + 1} experiments (at most {CatalogValidator.MaxExperiments})", StringComparison.Ordinal));
        Assert.Equal(CatalogValidator.MaxExperiments + 1, CatalogLoader.LoadKept(Source(many))!.Experiments.Count);
    }

    [Fact]
    public void A_valid_experiment_compiles_with_its_arms_variants_over_the_segments()
    {
        var catalog = CatalogLoader.Load(Source(Experiment));

        var experiment = Assert.Single(catalog.Experiments);
        Assert.Equal(("vip_offer_test", "vip", "conversion_rate", 0.1), (experiment.Id, experiment.Segment!.Id, experiment.PrimaryMetric, experiment.MinimumDetectableEffect!.Value));
        Assert.Equal(["control", "stronger_offer"], experiment.Arms.Select(a => a.Id));
        var control = experiment.Arms[0];
        var stronger = experiment.Arms[1];
        Assert.Equal(experiment.Segment.Variants.Select(v => v.Id), control.Variants.Select(v => v.Id)); // the control serves the segment's own
        Assert.Equal(["vip.content", "vip.offer.stronger", "vip_offer_test.stronger_offer.cta", "vip.journey", "vip.messaging"], stronger.Variants.Select(v => v.Id));
        Assert.Same(experiment, catalog.ExperimentFor(experiment.Segment!, "u", DateTimeOffset.UtcNow.UtcTicks));
        Assert.Null(catalog.ExperimentFor(catalog.Fallback, "u", DateTimeOffset.UtcNow.UtcTicks));
    }

    [Theory]
    [InlineData("segment: vip", "segment: nobody", "unknown segment 'nobody'", 3)]
    [InlineData("weight: 1\n      - id: stronger_offer\n        weight: 1", "weight: 0\n      - id: stronger_offer\n        weight: 0", "at least one arm needs a weight above 0", 9)]
    [InlineData("- id: stronger_offer", "- id: control", "duplicate arm id 'control'", 11)]
    [InlineData("offer: {", "price: {", "unknown outcome 'price'", 14)]
    [InlineData("primary_metric: conversion_rate", "primary_metric: happiness", "unknown metric 'happiness'", 5)]
    [InlineData("minimum_detectable_effect: 0.1", "minimum_detectable_effect: lots", "'minimum_detectable_effect' is a relative change", 7)]
    [InlineData("description: Does", "owner: me\n    description: Does", "unknown key 'owner'", 4)]
    [InlineData("weight: 1\n      - id: stronger_offer", "weight: nan\n      - id: stronger_offer", "'weight' is a number from 0 to 1,000,000 (got 'nan')", 10)]
    [InlineData("weight: 1\n      - id: stronger_offer", "weight: 1e308\n      - id: stronger_offer", "'weight' is a number from 0 to 1,000,000 (got '1e308')", 10)] // with another 1e308 the sum was +Inf: every user in the last arm
    public void Mistakes_are_catalog_errors_at_file_and_line(string find, string replace, string message, int line)
    {
        var error = Assert.Single(Errors(Experiment.Replace(find, replace, StringComparison.Ordinal)), e => e.Message.Contains(message, StringComparison.Ordinal));

        Assert.Equal(("experiments.yaml", line), (error.File, error.Line));
    }

    [Fact]
    public void One_arm_and_bad_windows_and_bad_templates_are_refused()
    {
        Assert.Contains(Errors("""
            experiments:
              - id: lonely
                segment: vip
                arms:
                  - id: control
            """), e => e.Message.Contains("at least two arms", StringComparison.Ordinal));
        Assert.Contains(Errors(Experiment.Replace("primary_metric:", "start: 2027-01-02T00:00:00Z\n    stop: 2027-01-01T00:00:00Z\n    primary_metric:", StringComparison.Ordinal)), e => e.Message.Contains("'stop' must be after 'start'", StringComparison.Ordinal));
        Assert.Contains(Errors(Experiment.Replace("cta: \"Claim it\"", "cta: \"{{ if }}\"", StringComparison.Ordinal)), e => e.Message.Contains("template error", StringComparison.Ordinal) && e.Line == 15);
    }

    [Fact]
    public void Two_experiments_on_one_segment_may_not_overlap_in_time()
    {
        var second = Experiment.Replace("experiments:\n", "", StringComparison.Ordinal).Replace("vip_offer_test", "vip_second_test", StringComparison.Ordinal);

        Assert.Contains(Errors(Experiment + "\n" + second), e => e.Message.Contains("already has experiment 'vip_offer_test'", StringComparison.Ordinal));

        var first = Experiment.Replace("primary_metric:", "stop: 2027-01-01T00:00:00Z\n    primary_metric:", StringComparison.Ordinal);
        var later = second.Replace("primary_metric:", "start: 2027-01-01T00:00:00Z\n    primary_metric:", StringComparison.Ordinal);
        Assert.Equal(2, CatalogLoader.Load(Source(first + "\n" + later)).Experiments.Count); // one after the other
    }
}
