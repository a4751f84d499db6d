using System.Diagnostics;
using System.Globalization;
using Deque.AxeCore.Playwright;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Microsoft.Playwright;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>
/// The dashboard in a real browser: Debian's Chromium driven by Playwright against the real server process with the
/// demo data. Each page is opened, the numbers it shows are compared with what the gRPC API returns, a segment, an
/// experiment and the decision inspector are clicked through, every page is checked with axe (no serious or
/// critical accessibility violation), and a screenshot of each page is saved as a test artifact.
/// </summary>
public sealed class DashboardBrowserTests : IAsyncLifetime
{
    private const string AnalystKey = "analyst-read-only-key";

    private static readonly string Screenshots = Path.Combine(AppContext.BaseDirectory, "dashboard-screenshots");

    private Process? _server;
    private int _httpPort;
    private GrpcChannel? _channel;
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    /// <summary>The system Chromium (browser downloads are not possible here): CHROMIUM_PATH, else Debian's, installed if missing.</summary>
    internal static async Task<string> Chromium()
    {
        if (Environment.GetEnvironmentVariable("CHROMIUM_PATH") is { Length: > 0 } configured)
        {
            Assert.True(File.Exists(configured), $"CHROMIUM_PATH is {configured}, which does not exist");
            return configured;
        }

        const string debian = "/usr/bin/chromium";
        await ExternalTools.EnsureDebianPackages(() => Task.FromResult(File.Exists(debian)), "The dashboard's browser tests", "chromium");
        return debian;
    }

    public async Task InitializeAsync()
    {
        var chromium = await Chromium();
        var grpcPort = RealServerProcessTests.FreePort();
        _httpPort = RealServerProcessTests.FreePort();
        _server = RealServerProcessTests.StartServer(
            grpcPort,
            $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{_httpPort}",
            "--Segmentation:Security:ApiKeys:1:Name=analyst",
            $"--Segmentation:Security:ApiKeys:1:Sha256={Security.ApiKeyRing.Hash(AnalystKey)}",
            "--Segmentation:Security:ApiKeys:1:Scopes:0=read");
        await RealServerProcessTests.WaitUntilListening(_server, grpcPort);
        await RealServerProcessTests.WaitUntilListening(_server, _httpPort);
        _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpcPort}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });

        // The memberships of the demo data are computed in the background after start (the RFM model published at
        // import makes them stale; the membership maintainer re-evaluates them on its sweep every 5 seconds): wait
        // until the population has not changed for longer than one sweep, so a sweep cannot land between the page's
        // numbers and the API's.
        var catalog = new CatalogService.CatalogServiceClient(_channel);
        long previous = -1;
        var stableSince = Stopwatch.StartNew();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var population = (await catalog.ListSegmentsAsync(new ListSegmentsRequest())).Population;
            if (population <= 0 || population != previous)
            {
                previous = population;
                stableSince.Restart();
            }
            else if (stableSince.Elapsed > TimeSpan.FromSeconds(7))
            {
                break;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(120), "the demo data's memberships did not settle in 120 s");
            await Task.Delay(1000);
        }

        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = chromium, Headless = true, Args = ["--no-sandbox"] });
        Directory.CreateDirectory(Screenshots);
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }

        _playwright?.Dispose();
        _channel?.Dispose();
        if (_server is not null)
        {
            _server.Kill(entireProcessTree: true);
            await _server.WaitForExitAsync();
        }
    }

    // Script errors and console errors (a content-security-policy violation is one) of every page opened.
    private readonly List<string> _errors = [];

    private async Task<IPage> SignedInPage(string key = RealServerProcessTests.ApiKey)
    {
        var page = await _browser!.NewPageAsync(new() { ViewportSize = new() { Width = 1366, Height = 768 } });
        page.PageError += (_, error) => _errors.Add(error);
        page.Console += (_, message) =>
        {
            if (message.Type == "error" && !message.Text.Contains("status of 401", StringComparison.Ordinal) && !message.Text.Contains("status of 403", StringComparison.Ordinal))
            {
                _errors.Add(message.Text); // refused keys and scopes (401/403) are the tests' own doing and reported on the page
            }
        };
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/");
        await page.GetByTestId("api-key").FillAsync(key);
        await page.GetByTestId("signin-submit").ClickAsync();
        await page.GetByTestId("segments-table").WaitForAsync();
        Assert.True(await page.EvaluateAsync<bool>("() => typeof window.uPlot === 'function'"), "the chart library was not loaded");
        return page;
    }

    // A decision made and counted in the KPIs (they take decisions from the ledger when it is drained, every second), so
    // the performance page has an hourly series to chart.
    private async Task DecisionCounted()
    {
        await new DecisionService.DecisionServiceClient(_channel).DecideAsync(new DecideRequest { UserId = "12347" });
        var insights = new InsightsService.InsightsServiceClient(_channel);
        for (var i = 0; ; i++)
        {
            var now = DateTimeOffset.UtcNow;
            var kpis = await insights.GetKpisAsync(new GetKpisRequest { Start = Timestamp.FromDateTimeOffset(now.AddHours(-24)), End = Timestamp.FromDateTimeOffset(now) });
            if (kpis.Total.Decisions > 0)
            {
                return;
            }

            Assert.True(i < 100, "no decision reached the KPIs");
            await Task.Delay(100);
        }
    }

    private static async Task Accessible(IPage page, string name)
    {
        var results = await page.RunAxe();
        var serious = results.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(serious.Count == 0, $"{name}: " + string.Join("; ", serious.Select(v => $"{v.Id} ({v.Impact}): {v.Help} — {string.Join(", ", v.Nodes.Take(3).Select(n => n.Html))}")));
    }

    private static async Task Screenshot(IPage page, string name) =>
        await page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, name + ".png"), FullPage = false });

    // The default segments with these experiments in place of the default ones.
    private static async Task PublishExperimentsAsync(CatalogService.CatalogServiceClient catalog, string experiments, string comment)
    {
        var files = CatalogGovernanceServiceTests.DefaultFiles().Where(f => !f.Name.EndsWith("experiments.yaml", StringComparison.Ordinal)).ToList();
        files.Add(new CatalogFile { Name = "experiments.yaml", Content = experiments });
        await catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { files }, Comment = comment });
    }

    private static async Task<string> Value(IPage page, string testId) =>
        await page.GetByTestId(testId).GetAttributeAsync("data-value") ?? await page.GetByTestId(testId).InnerTextAsync();

    [Fact]
    public async Task Every_page_shows_the_apis_numbers_is_accessible_and_clicks_through()
    {
        var catalog = new CatalogService.CatalogServiceClient(_channel);
        var decisions = new DecisionService.DecisionServiceClient(_channel);
        var insights = new InsightsService.InsightsServiceClient(_channel);
        var experiments = new ExperimentService.ExperimentServiceClient(_channel);

        // A few decisions, so the performance page has something to show.
        foreach (var user in new[] { "12347", "12415", "13047", "12347" })
        {
            await decisions.DecideAsync(new DecideRequest { UserId = user });
        }

        var page = await SignedInPage();

        // Segments: the population and every segment's live member count are the API's.
        var live = await catalog.ListSegmentsAsync(new ListSegmentsRequest());
        Assert.Equal(live.Population.ToString(CultureInfo.InvariantCulture), await Value(page, "population"));
        foreach (var s in live.Segments)
        {
            Assert.Equal(s.MemberCount.ToString(CultureInfo.InvariantCulture), await Value(page, $"members-{s.Segment.Id}"));
        }

        await page.GetByTestId("overlap-matrix").WaitForAsync();

        // How long the first page takes, the key already given (a reload): written beside the screenshots, never asserted.
        await page.ReloadAsync();
        await page.GetByTestId("overlap-matrix").WaitForAsync();
        var loadMs = await page.EvaluateAsync<double>("performance.now()");
        await File.WriteAllTextAsync(Path.Combine(Screenshots, "load-time.txt"), $"segments page with the demo data, reload to the overlap matrix rendered: {loadMs:0} ms\n");
        await Accessible(page, "segments");
        await Screenshot(page, "segments");

        // Performance: decisions per segment over the last 24 hours are GetKpis's.
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/performance?range=24h");
        await page.GetByTestId("kpi-segments-table").WaitForAsync();
        var now = DateTimeOffset.UtcNow;
        var kpis = await insights.GetKpisAsync(new GetKpisRequest { Start = Timestamp.FromDateTimeOffset(now.AddHours(-24)), End = Timestamp.FromDateTimeOffset(now), GroupBy = { KpiDimension.Segment } });
        Assert.NotEmpty(kpis.Rows);
        foreach (var row in kpis.Rows)
        {
            Assert.Equal(row.Kpis.Decisions.ToString(CultureInfo.InvariantCulture), await Value(page, $"kpi-{row.SegmentId}-decisions"));
        }

        await Accessible(page, "performance");
        await Screenshot(page, "performance");

        // Experiments: every experiment of the catalog, with its exposed users; then one experiment's arms.
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/experiments");
        var listed = await experiments.ListExperimentsAsync(new ListExperimentsRequest());
        Assert.NotEmpty(listed.Experiments);
        await page.GetByTestId("experiments-table").WaitForAsync();
        await Accessible(page, "experiments");
        await Screenshot(page, "experiments");
        var first = listed.Experiments[0];
        await page.GetByTestId($"experiment-row-{first.Id}").GetByRole(AriaRole.Link).First.ClickAsync();
        await page.GetByTestId("arms-table").WaitForAsync();
        var results = await experiments.GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = first.Id });
        foreach (var arm in results.Arms)
        {
            Assert.Equal(arm.AssignedUsers.ToString(CultureInfo.InvariantCulture), await Value(page, $"arm-{arm.ArmId}-assigned"));
        }

        var recommendation = GetExperimentResultsResponse.Descriptor.FindFieldByName("recommendation").EnumType.FindValueByNumber((int)results.Recommendation).Name;
        Assert.Equal(recommendation, await page.GetByTestId("recommendation").GetAttributeAsync("data-value"));
        await Accessible(page, "experiment");
        await Screenshot(page, "experiment");

        // Data quality: the fallback rate is GetDataQuality's.
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/quality");
        await page.GetByTestId("fallback-rate").WaitForAsync();
        var quality = await insights.GetDataQualityAsync(new GetDataQualityRequest());
        Assert.Equal(quality.FallbackRate, double.Parse(await Value(page, "fallback-rate"), CultureInfo.InvariantCulture), 6);
        await Accessible(page, "quality");
        await Screenshot(page, "quality");

        // Live: a user entering segments now shows up as it happens; the retained history on request.
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/live");
        // (The stream starts from the moment the page's call reaches the service: users keep buying until one shows.)
        var profiles = new ProfileService.ProfileServiceClient(_channel);
        var shown = page.Locator("[data-testid='changes-table'] a", new() { HasTextRegex = new System.Text.RegularExpressions.Regex("^dashboard-live-") });
        for (var n = 0; await shown.CountAsync() == 0; n++)
        {
            Assert.True(n < 60, "no change of the users buying now reached the live page in 30 s");
            await profiles.TrackEventAsync(new TrackEventRequest
            {
                Event = new Event
                {
                    EventId = $"dashboard-live-{n}", Type = "purchase", UserId = $"dashboard-live-{n}", Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
                    Context = new EventContext { Source = "test", Device = "desktop", SessionId = "s", PageType = "checkout" }, OrderId = $"dl-{n}", Value = 30, Currency = "GBP",
                },
            });
            await Task.Delay(500);
        }

        await page.GetByTestId("stream-replay").ClickAsync();
        await page.WaitForFunctionAsync("() => Number(document.querySelector('[data-testid=changes-count]')?.dataset.value ?? 0) > 100");
        await Accessible(page, "live");
        await Screenshot(page, "live");

        // A segment, clicked from the list: its rule in the text syntax, as GetCatalog gives it.
        var described = await catalog.GetCatalogAsync(new GetCatalogRequest());
        var champions = described.Segments.Single(s => s.Segment.Id == "champions");
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/segments");
        await page.GetByTestId("segment-row-champions").GetByRole(AriaRole.Link).First.ClickAsync();
        await page.GetByTestId("segment-rule").WaitForAsync();
        Assert.Equal(champions.Rule, (await page.GetByTestId("segment-rule").InnerTextAsync()).Trim());
        await page.GetByTestId("render-sample").ClickAsync(); // a decision is made only when asked for
        await page.GetByTestId("variant-offer").WaitForAsync();
        await Accessible(page, "segment");
        await Screenshot(page, "segment");

        // The decision inspector: the winner and the explanation are Decide's.
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/inspect");
        await page.GetByTestId("inspect-user").FillAsync("12347");
        await page.GetByTestId("inspect-submit").ClickAsync();
        await page.GetByTestId("inspector-winner").WaitForAsync();
        var decided = await decisions.DecideAsync(new DecideRequest { UserId = "12347", Explain = true });
        Assert.Equal(decided.Decision.Segment.Id, (await page.GetByTestId("inspector-winner").InnerTextAsync()).Trim());
        Assert.Equal(decided.Decision.Explanation.Segments.Count(s => s.Matched), await page.Locator("[data-testid^='matched-'][data-testid$='-status']").CountAsync());
        await Accessible(page, "inspector");
        await Screenshot(page, "inspector");
        Assert.Empty(_errors);
    }

    [Fact]
    public async Task A_catalog_experiments_per_segment_tables_show_each_segments_own_means()
    {
        // An experiment of the whole catalog, published beside the default segments.
        const string Experiment = """
            experiments:
              - id: page_wide_cta
                scope: catalog
                primary_metric: ctr
                arms:
                  - id: control
                  - id: bold_cta
                    variants:
                      cta: "Buy now"
            """;
        var catalog = new CatalogService.CatalogServiceClient(_channel);
        await PublishExperimentsAsync(catalog, Experiment, "a whole-catalog experiment");

        // Demo customers of several segments are decided; only the users one segment wins click, and only in the
        // treatment arm: the whole experiment's treatment mean is above 0, every other segment's is 0.
        var users = new List<string>();
        foreach (var segment in (await catalog.ListSegmentsAsync(new ListSegmentsRequest())).Segments.Where(s => s.MemberCount > 0))
        {
            users.AddRange((await catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = segment.Segment.Id, PageSize = 40 })).UserIds);
        }

        var decisions = new DecisionService.DecisionServiceClient(_channel);
        var outcomes = new OutcomeService.OutcomeServiceClient(_channel);
        string? clicking = null;
        var exposed = 0;
        foreach (var user in users.Distinct())
        {
            var d = (await decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
            if (d.ExperimentId != "page_wide_cta")
            {
                continue; // the decisioning holdout
            }

            exposed++;
            clicking ??= d.Segment.Id;
            if (d.Segment.Id == clicking && d.ArmId == "bold_cta")
            {
                await outcomes.RecordOutcomesAsync(new RecordOutcomesRequest
                {
                    Outcomes = { new Outcome { EventId = $"click-{user}", Type = OutcomeType.Click, DecisionId = d.DecisionId, UserId = user, Variant = VariantKind.Cta, Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) } },
                });
            }
        }

        // Exposures and outcomes are recorded in the background.
        var experiments = new ExperimentService.ExperimentServiceClient(_channel);
        GetExperimentResultsResponse results;
        var watch = Stopwatch.StartNew();
        while (true)
        {
            results = await experiments.GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = "page_wide_cta" });
            var clicked = results.Arms.Single(a => a.ArmId == "bold_cta").Metrics.Single(m => m.Metric == "ctr").Total;
            if (results.Breakdowns.Sum(b => b.ExposedUsers) == exposed && clicked > 0)
            {
                break;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"the experiment's {exposed} exposures and clicks were not recorded in 60 s");
            await Task.Delay(500);
        }

        Assert.True(results.Breakdowns.Count >= 2, "the decided users were won by fewer than two segments");
        var quiet = results.Breakdowns.First(b => b.SegmentId != clicking);
        Assert.Equal(0, quiet.Arms.Single(a => a.ArmId == "bold_cta").Primary.Mean);

        var page = await SignedInPage();
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/experiments/page_wide_cta");
        await page.GetByTestId($"breakdown-{quiet.SegmentId}").WaitForAsync();
        foreach (var breakdown in results.Breakdowns.Where(b => b.Comparisons.Count > 0))
        {
            var row = $"breakdown-{breakdown.SegmentId}-ctr-bold_cta";
            var mean = (string arm) => breakdown.Arms.Single(a => a.ArmId == arm).Primary.Mean;
            Assert.Equal(mean("control"), double.Parse(await Value(page, row + "-control"), CultureInfo.InvariantCulture), 9);
            Assert.Equal(mean("bold_cta"), double.Parse(await Value(page, row + "-arm"), CultureInfo.InvariantCulture), 9); // regression: the whole experiment's mean
        }

        Assert.Empty(_errors);
    }

    [Fact]
    public async Task Promoting_an_arm_shows_the_new_status_without_a_reload()
    {
        // Regression: after a promotion the page still showed the experiment running and no arm promoted, and said
        // "Reload the page to see the new status".
        const string Experiment = """
            experiments:
              - id: promotable_cta
                scope: catalog
                primary_metric: ctr
                arms:
                  - id: control
                  - id: short_cta
                    variants:
                      cta: "Shop"
            """;
        var catalog = new CatalogService.CatalogServiceClient(_channel);
        await PublishExperimentsAsync(catalog, Experiment, "an experiment to promote");

        var page = await SignedInPage();
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/experiments/promotable_cta");
        await page.GetByTestId("arms-table").WaitForAsync();
        Assert.NotEqual("EXPERIMENT_STATUS_PROMOTED", await Value(page, "experiment-status"));
        Assert.Equal("not-checked", await Value(page, "srm-status")); // regression: no user yet read "✓ No sample ratio mismatch"
        Assert.Contains("no user has been exposed yet", await page.GetByTestId("srm-status").InnerTextAsync(), StringComparison.Ordinal);
        await page.GetByTestId("promote-short_cta").ClickAsync();

        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=experiment-status]')?.dataset.value === 'EXPERIMENT_STATUS_PROMOTED'");
        var experiment = (await new ExperimentService.ExperimentServiceClient(_channel).ListExperimentsAsync(new ListExperimentsRequest())).Experiments.Single(e => e.Id == "promotable_cta");
        Assert.Equal(ExperimentStatus.Promoted, experiment.Status);
        Assert.Equal("short_cta", experiment.PromotedArmId);
        Assert.Contains("(promoted)", await page.GetByTestId("arm-short_cta").InnerTextAsync(), StringComparison.Ordinal);
        var notice = page.GetByTestId("promote-result");
        Assert.StartsWith("Promoted arm short_cta: catalog version", await notice.InnerTextAsync(), StringComparison.Ordinal);
        Assert.True(await notice.EvaluateAsync<bool>("n => document.activeElement === n"), "the result does not have the focus");
        Assert.Empty(_errors);
    }

    [Fact]
    public async Task Over_plain_http_to_a_server_that_refuses_it_the_key_is_never_sent()
    {
        // Regression: the page sent the key with its first calls whatever the transport; a server that serves the API over
        // TLS only refused them (403 "TLS only") after the key had crossed the network in clear, and every page sent it
        // again. Such a server is played here by answering every API call as it would.
        var page = await _browser!.NewPageAsync();
        var keyed = new List<string>();
        await page.RouteAsync("**/v1/**", async route =>
        {
            if (route.Request.Headers.ContainsKey("x-api-key"))
            {
                keyed.Add(route.Request.Url);
            }

            await route.FulfillAsync(new() { Status = 403, ContentType = "application/json", Body = """{"code":7,"message":"the HTTP/JSON API is served over TLS only: call it with https://","details":[]}""" });
        });
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/");
        await page.GetByTestId("api-key").FillAsync(RealServerProcessTests.ApiKey);
        await page.GetByTestId("signin-submit").ClickAsync();
        await page.WaitForFunctionAsync("() => (document.querySelector('[data-testid=alerts]')?.textContent ?? '').includes('https://')");

        Assert.Empty(keyed);

        // A keyless answer that shows nothing (a proxy's 502) is not taken as "plaintext allowed" (found in review).
        var proxied = await _browser!.NewPageAsync();
        await proxied.RouteAsync("**/v1/**", async route =>
        {
            if (route.Request.Headers.ContainsKey("x-api-key"))
            {
                keyed.Add(route.Request.Url);
            }

            await route.FulfillAsync(new() { Status = 502, ContentType = "text/plain", Body = "bad gateway" });
        });
        await proxied.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/");
        await proxied.GetByTestId("api-key").FillAsync(RealServerProcessTests.ApiKey);
        await proxied.GetByTestId("signin-submit").ClickAsync();
        await proxied.WaitForFunctionAsync("() => (document.querySelector('[data-testid=alerts]')?.textContent ?? '').includes('502')");
        Assert.Empty(keyed);
    }

    [Fact]
    public async Task A_metric_picked_while_the_kpis_load_is_the_one_drawn_and_arrow_keys_keep_focus_in_the_range_choice()
    {
        // Regressions: the metric picker was listened to only once the KPIs had arrived, so a metric picked meanwhile was
        // shown in the picker while the chart drew another; and every arrow key in the range radios re-rendered the page
        // and moved focus to its heading, out of the group.
        await DecisionCounted();
        var page = await SignedInPage();
        var release = new TaskCompletionSource();
        await page.RouteAsync("**/v1/kpis**", async route =>
        {
            await release.Task;
            await route.ContinueAsync();
        });
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/performance?range=7d&metric=decisions");
        await page.GetByTestId("series-metric").SelectOptionAsync("ctr");
        release.SetResult();
        await page.WaitForFunctionAsync("() => (document.querySelector('[data-testid=series-chart]')?.getAttribute('aria-label') ?? '').startsWith('CTR per hour')");

        await page.GetByTestId("range-7d").FocusAsync();
        await page.Keyboard.PressAsync("ArrowRight");
        await page.WaitForFunctionAsync("() => location.hash.includes('range=30d') && document.querySelector('[data-testid=range-30d]')?.checked === true");
        await page.WaitForFunctionAsync("() => document.activeElement?.getAttribute('data-testid') === 'range-30d'");
        Assert.Contains("metric=ctr", await page.EvaluateAsync<string>("() => location.hash"), StringComparison.Ordinal);
        Assert.Empty(_errors);
    }

    [Fact]
    public async Task The_live_stream_resumes_with_its_stream_id_and_starts_again_when_its_offset_is_gone()
    {
        // Regression: a resume sent only the offset (after a reset, another stream's entries at the same offsets were
        // mixed in), and an offset past retention was retried for ever ("stopped: OUT_OF_RANGE" at every Resume).
        var page = await SignedInPage();
        var queries = new List<string>();
        await page.RouteAsync("**/v1/segment-changes**", async route =>
        {
            var query = new Uri(route.Request.Url).Query;
            queries.Add(query);
            if (queries.Count == 4)
            {
                // The stream was reset: another stream, from offset 1.
                await route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = """{"userId":"u2","segmentId":"vip","kind":"MEMBERSHIP_CHANGE_KIND_ENTERED","offset":"1","streamId":"stream-b"}""" + "\n" });
            }
            else if (!query.Contains("afterOffset", StringComparison.Ordinal))
            {
                await route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = """{"userId":"u1","segmentId":"vip","kind":"MEMBERSHIP_CHANGE_KIND_ENTERED","offset":"5","streamId":"stream-a"}""" + "\n" });
            }
            else
            {
                await route.FulfillAsync(new() { Status = 400, ContentType = "application/json", Body = """{"code":11,"message":"offset 5 is no longer retained","details":[]}""" });
            }
        });
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/live");
        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=stream-toggle]')?.textContent === 'Resume'"); // the stream ended after one entry
        await page.GetByTestId("stream-replay").ClickAsync(); // the retained history, once
        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=stream-toggle]')?.textContent === 'Resume' && document.querySelector('[data-testid=stream-replay]')?.disabled === false");
        Assert.Contains("fromOldest=true", queries[1], StringComparison.Ordinal);

        await page.GetByTestId("stream-toggle").ClickAsync();
        await page.WaitForFunctionAsync("() => (document.querySelector('[data-testid=stream-status]')?.textContent ?? '').includes('no longer holds offset 5')");
        Assert.Contains("afterOffset=5", queries[2], StringComparison.Ordinal);
        Assert.Contains("streamId=stream-a", queries[2], StringComparison.Ordinal);

        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=stream-toggle]')?.textContent === 'Reconnect'");
        await page.GetByTestId("stream-toggle").ClickAsync();
        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=stream-toggle]')?.textContent === 'Resume'");
        Assert.Equal("", queries[3]); // followed again from now: neither the offset that is gone nor the whole history again
        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=changes-count]')?.getAttribute('data-value') === '1'");
        Assert.Equal(1, await page.Locator("[data-testid=changes-table] tbody tr").CountAsync()); // review: the old stream's rows and counts were kept under the new one's
    }

    [Fact]
    public async Task The_live_pages_counter_is_read_one_sample_at_a_time()
    {
        // Regression: the counter was polled every 5 s whatever happened to the previous poll: a slow /metrics answer
        // was overtaken by the next poll's, landed after it and made the next rate from samples out of order.
        var page = await SignedInPage();
        var (inFlight, most, seen) = (0, 0, 0);
        await page.RouteAsync("**/metrics", async route =>
        {
            var now = Interlocked.Increment(ref inFlight);
            lock (page)
            {
                most = Math.Max(most, now);
            }

            if (Interlocked.Increment(ref seen) == 1)
            {
                await Task.Delay(TimeSpan.FromSeconds(6)); // past the next poll's turn
            }

            Interlocked.Decrement(ref inFlight);
            await route.FulfillAsync(new() { Status = 200, ContentType = "text/plain", Body = "segmentation_decisions_total{segment=\"vip\"} 1\n" });
        });
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/live");
        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=decisions-counter]')?.dataset.value === '1'");
        for (var i = 0; i < 150 && Volatile.Read(ref seen) < 2; i++)
        {
            await Task.Delay(100); // the next poll is due 5 s after the first began
        }

        Assert.True(Volatile.Read(ref seen) >= 2, "no second poll");
        Assert.Equal(1, most);
    }

    [Fact]
    public async Task The_inspector_sends_a_search_query_and_a_metric_change_keeps_one_chart_alive()
    {
        // Regressions (found in review): the inspector had no field for the page path or the search query, so the
        // default catalog's gift buyers (who search "christmas gift") could not be checked; and every metric change
        // built a new chart with its resize observer, destroying none until the page was left.
        var page = await SignedInPage();
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/inspect");
        await page.GetByTestId("inspect-user").FillAsync("inspector-gift-" + Guid.NewGuid().ToString("N")[..8]);
        await page.GetByTestId("inspect-search-query").FillAsync("christmas gift");
        await page.GetByTestId("inspect-submit").ClickAsync();
        await page.GetByTestId("matched-gift_buyer").WaitForAsync();

        var counted = await _browser!.NewPageAsync(new() { ViewportSize = new() { Width = 1366, Height = 768 } });
        await counted.AddInitScriptAsync("""
            window.__observers = 0;
            const Observer = window.ResizeObserver;
            window.ResizeObserver = class extends Observer {
              observe(target) { window.__observers++; super.observe(target); }
              disconnect() { window.__observers--; super.disconnect(); }
            };
            """);
        await counted.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/");
        await counted.GetByTestId("api-key").FillAsync(RealServerProcessTests.ApiKey);
        await counted.GetByTestId("signin-submit").ClickAsync();
        await counted.GetByTestId("segments-table").WaitForAsync();
        await DecisionCounted();
        await counted.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/performance?range=7d&metric=decisions");
        await counted.GetByTestId("series-chart").WaitForAsync();
        var before = await counted.EvaluateAsync<int>("() => window.__observers");
        foreach (var metric in new[] { "ctr", "churned", "impressions", "conversionRate", "decisions" })
        {
            await counted.GetByTestId("series-metric").SelectOptionAsync(metric);
        }

        Assert.Equal(before, await counted.EvaluateAsync<int>("() => window.__observers"));
    }

    [Fact]
    public async Task On_a_quiet_system_the_live_page_says_its_stream_is_connected()
    {
        // Regression: the watch's headers went out with its first change, so with nothing changing the page said
        // "connecting…" for as long as it was open.
        var page = await SignedInPage();
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/live");
        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=stream-status]')?.textContent === 'connected, receiving'", null, new() { Timeout = 10_000 });
        Assert.Equal("0", await page.GetByTestId("changes-count").GetAttributeAsync("data-value")); // nothing arrived: the headers did it
    }

    [Fact]
    public async Task The_size_charts_leave_a_gap_over_hours_without_samples()
    {
        // Regression: the segment list's sparklines and a segment's size chart drew a straight line between samples hours
        // apart (the service down in between), as if the size had been measured in every hour of it.
        var id = (await new CatalogService.CatalogServiceClient(_channel).ListSegmentsAsync(new ListSegmentsRequest())).Segments[0].Segment.Id;
        var now = DateTimeOffset.UtcNow;
        var hour = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, 0, 0, TimeSpan.Zero);
        var points = new[] { (-8, 10), (-5, 11), (-4, 12), (-1, 13) }
            .Select(p => $$"""{"hour":"{{hour.AddHours(p.Item1):yyyy-MM-ddTHH:mm:ssZ}}","members":"{{p.Item2}}"}""");
        var sizes = $$"""{"segments":[{"segmentId":"{{id}}","points":[{{string.Join(',', points)}}]}]}""";
        var page = await SignedInPage();
        await page.RouteAsync("**/v1/segment-sizes**", route => route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = sizes }));
        await CaptureCharts(page);

        await page.EvaluateAsync("id => { location.hash = '#/segments/' + id; }", id);
        await page.GetByTestId("size-summary").WaitForAsync();
        await page.EvaluateAsync("() => { location.hash = '#/segments'; }");
        await page.WaitForFunctionAsync("() => window.__charts.length >= 2");

        var drawn = await page.EvaluateAsync<string>("""
            () => JSON.stringify(window.__charts.map(({ options, data }) =>
              [data[0].map((x) => x - data[0][0]), data[1], options.series[1].points.filter({ data }, 1, false, null)]))
            """);

        // The hour after 10 and the hour after 12 left empty: no line across them; 10 and 13, alone between gaps, drawn as
        // points (a line cannot show them).
        const string Gapped = "[[0,3600,10800,14400,18000,25200],[10,null,11,12,null,13],[0,5]]";
        Assert.Equal($"[{Gapped},{Gapped}]", drawn);
        Assert.Contains("4 hourly points", await page.GetByTestId($"size-{id}").Locator("[role=img]").GetAttributeAsync("aria-label"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_hourly_kpi_chart_draws_every_hour_and_leaves_out_the_daily_reach()
    {
        // Regression (review): the x axis held only hours some segment had data in, so a quiet night between two busy
        // hours was drawn as a straight line of invented decisions; reach (a whole UTC day's, at every hour) was offered
        // as "Reach per hour".
        var now = DateTimeOffset.UtcNow;
        var hour = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, 0, 0, TimeSpan.Zero);
        var kpis = $$"""{"decisions":"10","impressions":"4","reach":"3","ctr":0.5}""";
        var points = new[] { -8, -1 }.Select(h => $$"""{"hour":"{{hour.AddHours(h):yyyy-MM-ddTHH:mm:ssZ}}","kpis":{{kpis}}}""");
        var body = $$"""{"start":"{{hour.AddDays(-7):yyyy-MM-ddTHH:mm:ssZ}}","end":"{{hour:yyyy-MM-ddTHH:mm:ssZ}}","total":{{kpis}},"rows":[{"segmentId":"vip","kpis":{{kpis}},"series":[{{string.Join(',', points)}}]}]}""";
        var page = await SignedInPage();
        await page.RouteAsync("**/v1/kpis**", route => route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = body }));
        await CaptureCharts(page);

        await page.EvaluateAsync("() => { location.hash = '#/performance?range=7d&metric=decisions'; }");
        await page.GetByTestId("series-chart").WaitForAsync();
        var drawn = await page.EvaluateAsync<string>("() => JSON.stringify(window.__charts.map(({ data }) => [data[0].map((x) => x - data[0][0]), data[1]]))");
        var options = await page.EvaluateAsync<string[]>("() => [...document.querySelectorAll('[data-testid=series-metric] option')].map((o) => o.value)");

        Assert.Equal("[[[0,3600,7200,10800,14400,18000,21600,25200],[10,0,0,0,0,0,0,10]]]", drawn);
        Assert.DoesNotContain("reach", options);
        Assert.DoesNotContain("revenuePerUser", options);
        Assert.Equal("3", await page.GetByTestId("kpi-vip-reach").TextContentAsync()); // still in the table
    }

    [Fact]
    public async Task An_undefined_lift_is_shown_as_such_and_a_minimum_detectable_effect_with_its_decimals()
    {
        // Regression (review): against a control whose mean is 0 the service sends a lift of 0 (undefined), shown as
        // "±0.00 %" with a zero-width interval beside a "better" verdict; an MDE of 2.5 % was shown as 3 %.
        const string Results = """
            {"experiment":{"id":"x","primaryMetric":"conversion_rate","minimumDetectableEffect":0.025,"status":"EXPERIMENT_STATUS_RUNNING"},
             "controlArmId":"control",
             "arms":[{"armId":"control","weight":1,"metrics":[{"metric":"conversion_rate","mean":0,"users":"100"}]},
                     {"armId":"t","weight":1,"metrics":[{"metric":"conversion_rate","mean":0.03,"users":"100"}]}],
             "comparisons":[{"armId":"t","metric":"conversion_rate","difference":0.03,"verdict":"VERDICT_BETTER"}]}
            """;
        var page = await SignedInPage();
        await page.RouteAsync("**/v1/experiments/x/results**", route => route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = Results }));

        await page.EvaluateAsync("() => { location.hash = '#/experiments/x'; }");
        await page.GetByTestId("arm-t-lift").WaitForAsync();

        Assert.StartsWith("n/a", await page.GetByTestId("arm-t-lift").TextContentAsync(), StringComparison.Ordinal);
        Assert.StartsWith("n/a", await page.GetByTestId("arm-t-lift-ci").TextContentAsync(), StringComparison.Ordinal);
        Assert.Contains("n/a", await page.GetByTestId("primary-comparisons-conversion_rate-t").TextContentAsync(), StringComparison.Ordinal);
        Assert.Contains("minimum detectable effect 2.5 %", await page.Locator("main").TextContentAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_segment_sizes_start_their_pages_again_when_a_page_token_goes_stale()
    {
        // Regression (review): a catalog published between two pages made the second page token INVALID_ARGUMENT, and
        // every size on the list was shown as unavailable, although reading the pages again succeeds.
        var id = (await new CatalogService.CatalogServiceClient(_channel).ListSegmentsAsync(new ListSegmentsRequest())).Segments[0].Segment.Id;
        var hour = DateTimeOffset.UtcNow.AddHours(-1);
        var sizes = $$"""{"segments":[{"segmentId":"{{id}}","points":[{"hour":"{{hour.AddHours(-1):yyyy-MM-ddTHH:00:00Z}}","members":"7"},{"hour":"{{hour:yyyy-MM-ddTHH:00:00Z}}","members":"8"}]}]}""";
        var requests = new List<string>();
        var page = await SignedInPage();
        await page.RouteAsync("**/v1/segment-sizes**", async route =>
        {
            var query = new Uri(route.Request.Url).Query;
            requests.Add(query);
            await (requests.Count == 1 ? route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = """{"segments":[],"nextPageToken":"t1"}""" })
                : query.Contains("pageToken=t1", StringComparison.Ordinal) ? route.FulfillAsync(new() { Status = 400, ContentType = "application/json", Body = """{"code":3,"message":"the page token is from another catalog version: start again","details":[]}""" })
                : route.FulfillAsync(new() { Status = 200, ContentType = "application/json", Body = sizes }));
        });

        await page.EvaluateAsync("() => { location.hash = '#/segments'; }");
        await page.GetByTestId($"size-{id}").Locator("[role=img]").WaitForAsync();

        Assert.Equal(3, requests.Count);
        Assert.Equal(0, await page.Locator(".alert-text").CountAsync()); // no failure reported: the refused page was read again
    }

    // Keeps every chart's options and data in window.__charts as the page makes it (uPlot wrapped).
    private static async Task CaptureCharts(IPage page) => await page.EvaluateAsync("""
        () => {
          const Plot = window.uPlot;
          window.__charts = [];
          window.uPlot = Object.assign(function (options, data, target) {
            window.__charts.push({ options, data });
            return new Plot(options, data, target);
          }, Plot);
        }
        """);

    [Fact]
    public async Task A_link_in_the_live_table_keeps_focus_while_new_changes_arrive()
    {
        // Regression (earlier list, and the review): every paint rebuilt the whole table, so a keyboard user's focus fell
        // back to the page and a click spanning a repaint landed on a removed row.
        var page = await SignedInPage();
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/live");
        var profiles = new ProfileService.ProfileServiceClient(_channel);
        var run = Guid.NewGuid().ToString("N")[..6];
        async Task Buy(int n) => await profiles.TrackEventAsync(new TrackEventRequest
        {
            Event = new Event
            {
                EventId = $"focus-{run}-{n}", Type = "purchase", UserId = $"focus-{run}-{n}", Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
                Context = new EventContext { Source = "test", Device = "desktop", SessionId = "s", PageType = "checkout" }, OrderId = $"f-{run}-{n}", Value = 30, Currency = "GBP",
            },
        });
        var rows = page.Locator("[data-testid='changes-table'] tbody tr");
        for (var n = 0; await rows.CountAsync() == 0; n++)
        {
            Assert.True(n < 60, "no change reached the live page in 30 s");
            await Buy(n);
            await Task.Delay(500);
        }

        var link = rows.First.Locator("a").First;
        var text = await link.InnerTextAsync();
        await link.FocusAsync();
        var before = int.Parse(await Value(page, "changes-count"), CultureInfo.InvariantCulture);
        for (var n = 100; int.Parse(await Value(page, "changes-count"), CultureInfo.InvariantCulture) == before; n++)
        {
            Assert.True(n < 160, "no further change reached the live page in 30 s");
            await Buy(n);
            await Task.Delay(500);
        }

        await page.WaitForFunctionAsync("() => document.querySelector('[data-testid=changes-table] tbody tr:nth-child(2)') !== null"); // painted
        Assert.Equal(text, await page.EvaluateAsync<string>("() => document.activeElement?.closest('tbody') ? document.activeElement.textContent : ''"));
    }

    [Fact]
    public async Task A_page_whose_script_does_not_arrive_says_so_instead_of_loading_for_ever()
    {
        // Regression (found in review): a page module that failed to load left "Loading…" in place, with no way on.
        var page = await SignedInPage();
        await page.RouteAsync("**/pages/quality.js", route => route.AbortAsync());
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/quality");
        await page.GetByTestId("page-load-failed").WaitForAsync();
        Assert.DoesNotContain("Loading…", await page.Locator("main").InnerTextAsync(), StringComparison.Ordinal);
        Assert.True(await page.GetByTestId("page-retry").IsVisibleAsync());
    }

    [Fact]
    public async Task A_wrong_key_is_asked_again_and_a_key_without_admin_cannot_promote()
    {
        var page = await _browser!.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/");
        await page.GetByTestId("api-key").FillAsync("not-a-key");
        await page.GetByTestId("signin-submit").ClickAsync();
        await page.GetByTestId("signin-form").WaitForAsync();
        Assert.Contains("key", (await page.GetByTestId("alerts").InnerTextAsync()).ToLowerInvariant(), StringComparison.Ordinal);

        // A read-only key sees the experiment, but promoting an arm is refused for want of the admin scope.
        var experiments = await new ExperimentService.ExperimentServiceClient(_channel).ListExperimentsAsync(new ListExperimentsRequest());
        var experiment = experiments.Experiments[0];
        var analyst = await SignedInPage(AnalystKey);
        analyst.Dialog += (_, dialog) => dialog.AcceptAsync();
        await analyst.GotoAsync($"http://127.0.0.1:{_httpPort}/dashboard/#/experiments/{experiment.Id}");
        await analyst.GetByTestId("arms-table").WaitForAsync();
        await analyst.Locator("[data-testid^='promote-']").First.ClickAsync();
        await analyst.WaitForFunctionAsync("() => { const t = (document.querySelector('[data-testid=promote-result]')?.textContent ?? '').trim(); return t.length > 0 && !t.startsWith('Promoting'); }"); // the answer, not the progress note
        var refused = await analyst.GetByTestId("promote-result").InnerTextAsync();
        Assert.Contains("admin", refused, StringComparison.Ordinal);
        var after = await new ExperimentService.ExperimentServiceClient(_channel).ListExperimentsAsync(new ListExperimentsRequest());
        Assert.Equal(experiment.Status, after.Experiments.Single(e => e.Id == experiment.Id).Status); // not promoted
        Assert.Empty(_errors);

        // The page itself holds no data: it is served without a key, with a content security policy.
        using var http = new HttpClient();
        using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{_httpPort}/dashboard/"));
        Assert.True(response.IsSuccessStatusCode);
        Assert.Contains("default-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
    }
}
