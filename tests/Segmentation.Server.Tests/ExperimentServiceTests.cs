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
        var files = new EmbeddedCatalogSource().ReadFiles().Select(f => new ProtoCatalogFile { Name = f.Name, Content = f.Text }).ToList();
        files.Add(new ProtoCatalogFile { Name = "experiments.yaml", Content = Experiment });
        await new CatalogService.CatalogServiceClient(channel).PublishCatalogAsync(new PublishCatalogRequest { Files = { files }, Comment = "welcome test" });
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
}
