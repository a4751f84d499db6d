using Segmentation.Core.Application.Import;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Measurement;

public class OutcomeSimulationTests
{
    [Fact]
    public void The_demo_simulation_gives_kpis_whose_rates_differ_by_segment()
    {
        using var w = new TestWorld();
        w.ImportDemo();
        var customers = w.Store.Keys().Order(StringComparer.Ordinal).ToList();

        var report = OutcomeSimulation.Run(w.Engine, w.Outcomes, customers, w.Clock.Now);
        w.Measurement.Drain();
        var kpis = w.Measurement.Kpis.Query(new KpiQuery(w.Clock.Now.AddDays(-30), w.Clock.Now, [KpiDimension.Segment]));

        Assert.Equal(21 * 300, report.Decisions);
        Assert.Equal(0, report.Rejected); // regression: a decision of the last hours had its click dated hours ahead, refused as in the future
        Assert.Equal(report.Decisions, kpis.Total.Decisions);
        Assert.Equal(0, kpis.UnattributedOutcomes);
        Assert.True(kpis.Total.Impressions > 0 && kpis.Total.Clicks > 0 && kpis.Total.Conversions > 0 && kpis.Total.EmailOpens > 0);
        var rates = kpis.Rows.Where(r => r.Kpis.Impressions >= 200).Select(r => r.Kpis.ClickThroughRate).ToList();
        Assert.True(rates.Count >= 3, "at least three segments with enough impressions");
        Assert.True(rates.Max() > 1.5 * rates.Min(), string.Join(", ", rates)); // rates differ by segment, as simulated
    }
}
