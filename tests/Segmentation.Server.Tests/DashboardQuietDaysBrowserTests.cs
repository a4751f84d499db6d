using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Microsoft.Playwright;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>
/// The data-quality page of a server without demo data (whose traffic fills every day of the last week): days on
/// which nothing was decided, or nothing outside the decisioning holdout, in Debian's Chromium.
/// </summary>
public sealed class DashboardQuietDaysBrowserTests
{
    [Fact]
    public async Task A_day_without_decisions_has_no_fallback_rate_rather_than_zero()
    {
        // Regression (found in review): GetKpis answers a fallback rate of 0 for a range without decisions, and the page
        // showed and plotted each such day as a 0.00 % fallback rate, as if the data had been perfectly usable.
        var chromium = await DashboardBrowserTests.Chromium();
        var grpcPort = RealServerProcessTests.FreePort();
        var httpPort = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(grpcPort, "--Segmentation:DemoData=false", $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{httpPort}");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, grpcPort);
            await RealServerProcessTests.WaitUntilListening(server, httpPort);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });

            // Today has decisions, the six days before none: first only of a user in the decisioning holdout (half of
            // the users, by the catalog published here), then of one outside it (an unknown user: the fallback). (The day
            // is taken first: a run across midnight then waits for a decision of the day it made it on.)
            var today = DateTime.UtcNow.Date;
            var files = CatalogGovernanceServiceTests.DefaultFiles();
            var settings = files.Single(f => f.Name == "catalog.yaml");
            settings.Content = settings.Content.Replace("  fallback: general_audience\n", "  fallback: general_audience\n  holdout: 0.5\n", StringComparison.Ordinal);
            await new CatalogService.CatalogServiceClient(channel).PublishCatalogAsync(new PublishCatalogRequest { Files = { files }, Comment = "a holdout" });
            var heldOut = Enumerable.Range(1, 1000).Select(i => $"quiet-days-{i}").First(id => Core.Experiments.Assignment.InHoldout(id, 0.5));
            var served = Enumerable.Range(1, 1000).Select(i => $"quiet-days-{i}").First(id => !Core.Experiments.Assignment.InHoldout(id, 0.5));
            var decisions = new DecisionService.DecisionServiceClient(channel);
            Assert.Equal("decisioning_holdout", (await decisions.DecideAsync(new DecideRequest { UserId = heldOut })).Decision.ExperimentId);
            var insights = new InsightsService.InsightsServiceClient(channel);
            await DecisionsCounted(insights, today, 1);

            using var playwright = await Playwright.CreateAsync();
            await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = chromium, Headless = true, Args = ["--no-sandbox"] });
            var page = await browser.NewPageAsync();
            await page.GotoAsync($"http://127.0.0.1:{httpPort}/dashboard/");
            await page.GetByTestId("api-key").FillAsync(RealServerProcessTests.ApiKey);
            await page.GetByTestId("signin-submit").ClickAsync();
            await page.GetByTestId("segments-table").WaitForAsync();
            await page.GotoAsync($"http://127.0.0.1:{httpPort}/dashboard/#/quality");
            await page.GetByTestId("fallback-days-table").WaitForAsync();

            // Regression (found in review): a day whose decisions were all in the holdout (left out of the rate) was
            // plotted as a 0.00 % fallback rate.
            var holdoutDay = page.GetByTestId($"fallback-day-{today:yyyy-MM-dd}");
            Assert.Equal("holdout only", await holdoutDay.InnerTextAsync());
            Assert.Null(await holdoutDay.GetAttributeAsync("data-value"));
            Assert.Contains($"{today:yyyy-MM-dd}: holdout only", await page.Locator("[aria-labelledby=fallback-days-title] [role=img]").GetAttributeAsync("aria-label"), StringComparison.Ordinal);

            Assert.Equal(string.Empty, (await decisions.DecideAsync(new DecideRequest { UserId = served })).Decision.ExperimentId);
            await DecisionsCounted(insights, today, 2);
            await page.ReloadAsync();
            await page.GetByTestId("fallback-days-table").WaitForAsync();

            var chartLabel = await page.Locator("[aria-labelledby=fallback-days-title] [role=img]").GetAttributeAsync("aria-label");
            for (var back = 6; back >= 1; back--)
            {
                var day = today.AddDays(-back).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
                var cell = page.GetByTestId($"fallback-day-{day}");
                Assert.Equal("no decisions", await cell.InnerTextAsync());
                Assert.Null(await cell.GetAttributeAsync("data-value"));
                Assert.Equal("0", await page.GetByTestId($"fallback-day-{day}-decisions").GetAttributeAsync("data-value"));
                Assert.Contains($"{day}: no decisions", chartLabel, StringComparison.Ordinal);
            }

            // Today's rate is GetKpis's for the day.
            var todays = await insights.GetKpisAsync(new GetKpisRequest { Start = Timestamp.FromDateTime(today), End = Timestamp.FromDateTime(DateTime.UtcNow) });
            var todayCell = page.GetByTestId($"fallback-day-{today:yyyy-MM-dd}");
            Assert.Equal(todays.FallbackRate, double.Parse(await todayCell.GetAttributeAsync("data-value") ?? "NaN", CultureInfo.InvariantCulture), 6);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    // Waits until the KPIs of today count the decisions made.
    private static async Task DecisionsCounted(InsightsService.InsightsServiceClient insights, DateTime today, long decisions)
    {
        for (var i = 0; (await insights.GetKpisAsync(new GetKpisRequest { Start = Timestamp.FromDateTime(today), End = Timestamp.FromDateTime(DateTime.UtcNow) })).Total.Decisions < decisions; i++)
        {
            Assert.True(i < 100, "the decision did not reach the KPIs in 10 s");
            await Task.Delay(100);
        }
    }
}
