using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Contracts.V1;
using Segmentation.Core.Catalog;
using ProtoCatalogFile = Segmentation.Contracts.V1.CatalogFile;

namespace Segmentation.Server.Tests;

/// <summary>An experiment published with the catalog shows in Decide: the experiment and the arm, and the arm's variants.</summary>
public sealed class ExperimentServiceTests(ExperimentServiceTests.Host host) : IClassFixture<ExperimentServiceTests.Host>
{
    /// <summary>The app without demo data (its catalog is changed by these tests only).</summary>
    public sealed class Host : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
        {
            GrpcTestFixture.ConfigureTestHost(builder);
            builder.UseSetting("Segmentation:DemoData", "false");
        }
    }

    private const string Experiment = """
        experiments:
          - id: welcome_test
            segment: general_audience
            description: A warmer welcome for visitors we know nothing about yet
            arms:
              - id: control
                weight: 1
              - id: warmer
                weight: 1
                variants:
                  content: { id: general_audience.content.warmer, template: "Welcome! Have a look around: new arrivals every week." }
        """;

    [Fact]
    public async Task Decide_returns_the_experiment_and_arm_and_serves_the_arms_variant()
    {
        var channel = GrpcTestFixture.CreateChannel(host);
        await PublishAsync(channel, Experiment);
        var decisions = new DecisionService.DecisionServiceClient(channel);

        var arms = new HashSet<string>();
        for (var i = 0; i < 40; i++)
        {
            var d = (await decisions.DecideAsync(new DecideRequest { UserId = $"visitor-{i}" })).Decision;
            Assert.Equal(("general_audience", "welcome_test"), (d.Segment.Id, d.ExperimentId));
            arms.Add(d.ArmId);
            Assert.Equal(d.ArmId == "warmer", d.Content.VariantId == "general_audience.content.warmer");
        }

        Assert.Equal(["control", "warmer"], arms.Order());
        var kpis = await new InsightsService.InsightsServiceClient(channel).GetKpisAsync(new GetKpisRequest { GroupBy = { KpiDimension.Arm } });
        Assert.Equal(40, kpis.Rows.Where(r => r.ExperimentId == "welcome_test").Sum(r => r.Kpis.Decisions));
        Assert.Equal(["control", "warmer"], kpis.Rows.Where(r => r.ExperimentId == "welcome_test").Select(r => r.ArmId).Order());
        var explained = (await decisions.DecideAsync(new DecideRequest { UserId = "visitor-1", Explain = true })).Decision;
        Assert.Contains("experiment 'welcome_test'", explained.Explanation.Summary, StringComparison.Ordinal);
    }

    private static string Lifted(string id, string salt) => $$"""
        experiments:
          - id: {{id}}
            segment: general_audience
            salt: {{salt}}
            primary_metric: conversion_rate
            guardrails: [ctr]
            minimum_detectable_effect: 0.2
            arms:
              - id: control
                weight: 1
              - id: treatment
                weight: 1
                variants:
                  content: { id: general_audience.content.{{id}}, template: "New arrivals, picked for you." }
        """;

    /// <summary>Publishes the default catalog with one more file.</summary>
    internal static async Task PublishAsync(Grpc.Net.Client.GrpcChannel channel, string content, string name = "test-experiments.yaml")
    {
        var files = new EmbeddedCatalogSource().ReadFiles().Select(f => new ProtoCatalogFile { Name = f.Name, Content = f.Text }).ToList();
        files.Add(new ProtoCatalogFile { Name = name, Content = content });
        await new CatalogService.CatalogServiceClient(channel).PublishCatalogAsync(new PublishCatalogRequest { Files = { files }, Comment = "simulation" });
    }

    [Fact]
    public void The_simulators_draws_depend_on_the_seed_and_user_id_only_the_same_in_every_process()
    {
        // Fixed values: a per-process randomised hash (as HashCode.Combine is) would differ in every test run, and a
        // re-run of a seed would then record new outcomes under the same event ids instead of being idempotent.
        Assert.Equal(1084805369, Segmentation.Cli.TrafficSimulator.DrawSeed(42, "u7"));
        Assert.NotEqual(Segmentation.Cli.TrafficSimulator.DrawSeed(1, "u0"), Segmentation.Cli.TrafficSimulator.DrawSeed(1, "u1"));
        Assert.NotEqual(Segmentation.Cli.TrafficSimulator.DrawSeed(1, "u5"), Segmentation.Cli.TrafficSimulator.DrawSeed(2, "u5"));
    }

    [Fact]
    public async Task Simulating_the_same_seed_and_users_again_in_another_order_records_nothing_new()
    {
        // Regression (review): each user's draws followed their place in the list, so when the members changed between
        // two runs a user kept their event ids and got other draws: clicks and conversions the first run had not drawn
        // were recorded, and the summary counted every outcome sent, duplicates too.
        var channel = GrpcTestFixture.CreateChannel(host);
        var simulator = new Segmentation.Cli.TrafficSimulator(channel.CreateCallInvoker());
        var truth = new Segmentation.Cli.SimulationTruth(ViewsPerUser: 2, ClickRate: 0.3, ConversionRate: 0.3, Seed: 11);
        var users = Enumerable.Range(0, 200).Select(i => $"sim-again-{i}").ToList();

        var first = await simulator.RunAsync(users, truth);
        var second = await simulator.RunAsync([.. Enumerable.Reverse(users)], truth);

        Assert.True(first.Outcomes > 400, $"{first.Outcomes} outcomes"); // 400 impressions and some clicks and conversions
        Assert.Equal((0L, first.Outcomes), (second.Outcomes, second.Duplicates));
    }

    [Fact]
    public async Task The_traffic_simulator_s_known_lift_is_found_and_promoted_and_an_AA_split_is_not()
    {
        var channel = GrpcTestFixture.CreateChannel(host);
        var experiments = new ExperimentService.ExperimentServiceClient(channel);
        var simulator = new Segmentation.Cli.TrafficSimulator(channel.CreateCallInvoker());
        var truth = new Segmentation.Cli.SimulationTruth(
            ViewsPerUser: 1,
            ClickRate: 0.1,
            ConversionRate: 0.3,
            SegmentConversionRates: new Dictionary<string, double>(), // as segctl passes it when no --segment-rate is given
            ArmLifts: new Dictionary<string, double> { ["sim_lift:treatment"] = 0.2 },
            Seed: 7);

        // A known 20 % relative lift on the conversion rate of arm treatment.
        await PublishAsync(channel, Lifted("sim_lift", "lift"));
        var lifted = await simulator.RunAsync([.. Enumerable.Range(0, 8_000).Select(i => $"sim-lift-{i}")], truth);
        Assert.Equal(8_000, lifted.Arms.Where(a => a.Key.StartsWith("sim_lift:", StringComparison.Ordinal)).Sum(a => a.Value.Users));

        var found = await experiments.GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = "sim_lift" });
        Assert.Equal((Recommendation.Winner, "treatment"), (found.Recommendation, found.WinningArmId));
        Assert.False(found.SampleRatio.Mismatch);
        Assert.Equal(8_000, found.Arms.Sum(a => a.ExposedUsers));
        var primary = Assert.Single(found.Comparisons, c => !c.Guardrail);
        Assert.InRange(0.2, primary.SequentialLift.Lower, primary.SequentialLift.Upper); // the truth inside the always-valid interval
        Assert.Equal(Verdict.Better, primary.Verdict);

        var promoted = await experiments.PromoteExperimentAsync(new PromoteExperimentRequest { ExperimentId = "sim_lift" });
        Assert.Equal("treatment", promoted.ArmId);
        var after = (await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "after-promotion" })).Decision;
        Assert.Equal(("general_audience.content.sim_lift", ""), (after.Content.VariantId, after.ExperimentId));
        var listed = await experiments.ListExperimentsAsync(new ListExperimentsRequest());
        var promotedInfo = listed.Experiments.Single(e => e.Id == "sim_lift");
        Assert.Equal((ExperimentStatus.Promoted, "treatment"), (promotedInfo.Status, promotedInfo.PromotedArmId));

        // An A/A split of the same size: no winner.
        await PublishAsync(channel, Lifted("sim_aa", "aa"));
        await simulator.RunAsync([.. Enumerable.Range(0, 8_000).Select(i => $"sim-aa-{i}")], truth with { ArmLifts = null });
        var aa = await experiments.GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = "sim_aa" });
        Assert.NotEqual(Recommendation.Winner, aa.Recommendation);
        Assert.False(aa.SampleRatio.Mismatch);
        Assert.Equal(Verdict.Inconclusive, Assert.Single(aa.Comparisons, c => !c.Guardrail).Verdict);

        var missing = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await experiments.GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = "nope" }));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, missing.StatusCode);
        var noWinner = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await experiments.PromoteExperimentAsync(new PromoteExperimentRequest { ExperimentId = "sim_aa" }));
        Assert.Equal(Grpc.Core.StatusCode.FailedPrecondition, noWinner.StatusCode);
    }
}
