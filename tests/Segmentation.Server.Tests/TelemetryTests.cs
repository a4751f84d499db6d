using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Telemetry;

namespace Segmentation.Server.Tests;

/// <summary>
/// The Prometheus scrape endpoint, the HTTP health probes and the trace spans, read as an operator would. The
/// service's meter is process-wide, so the tests that ran before these have already counted into it: each assertion is
/// on the growth this test caused (at least), never on an absolute value.
/// </summary>
[Collection(Alone.Name)] // the meters are process-wide: hosts created and disposed by tests running beside it replace or drop its series
public sealed class TelemetryTests(TelemetryTests.Host host) : IClassFixture<TelemetryTests.Host>
{
    /// <summary>The app without demo data.</summary>
    public sealed class Host : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
        {
            GrpcTestFixture.ConfigureTestHost(builder);
            builder.UseSetting("Segmentation:DemoData", "false");
        }
    }

    private Grpc.Net.Client.GrpcChannel Channel => GrpcTestFixture.CreateChannel(host);

    [Fact]
    public async Task Metrics_count_decisions_by_segment_channel_and_cache_events_by_reason_and_outcomes_by_attribution()
    {
        var http = host.CreateClient();
        var decisions = new DecisionService.DecisionServiceClient(Channel);
        var user = "metrics-" + Guid.NewGuid().ToString("N");
        var first = (await decisions.DecideAsync(new DecideRequest { UserId = user, Channel = Contracts.V1.Channel.Email })).Decision;
        var missLabels = new[] { ("segment", first.Segment.Id), ("channel", "email"), ("cache", "miss") };
        var hitLabels = new[] { ("segment", first.Segment.Id), ("channel", "email"), ("cache", "hit") };
        var measurement = host.Services.GetRequiredService<DecisionMeasurement>();
        measurement.Drain(); // the first decision is counted before the first scrape
        var before = await Scrape(http);
        for (var i = 0; i < 3; i++)
        {
            await decisions.DecideAsync(new DecideRequest { UserId = user, Channel = Contracts.V1.Channel.Email }); // the second of a context is computed and cached, the next two answered from the cache
        }

        var events = new ProfileService.ProfileServiceClient(Channel);
        var bad = new Event { EventId = user + "-bad", Type = "", UserId = user, Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow), Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s", PageType = "home" } };
        var good = bad.Clone();
        good.EventId = user + "-good";
        good.Type = "page_view";
        var tracked = await events.TrackEventsAsync(new TrackEventsRequest { Events = { good, bad } });
        Assert.Equal((1, 1), (tracked.Accepted, tracked.Rejected));
        await new OutcomeService.OutcomeServiceClient(Channel).RecordOutcomesAsync(new RecordOutcomesRequest
        {
            Outcomes = { new Outcome { EventId = user + "-o", Type = OutcomeType.Click, DecisionId = Guid.CreateVersion7().ToString(), UserId = user, Variant = VariantKind.Offer, Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) } },
        });
        measurement.Drain(); // decisions are counted off the request path, when drained

        // Each counter must have moved by at least this much since the first scrape.
        (string Why, string Name, (string Label, string Value)[] Labels, double AtLeast)[] counters =
        [
            ("decisions computed afresh are counted as cache misses of their segment and channel", "segmentation_decisions_total", missLabels, 1),
            ("a decision answered by the cache is counted as a hit", "segmentation_decisions_total", hitLabels, 2),
            ("a rejected event is counted by reason", "segmentation_events_total", [("result", "rejected"), ("reason", "type")], 1),
            ("an accepted event is counted", "segmentation_events_total", [("result", "accepted")], 1),
            ("an outcome is counted by type and attribution", "segmentation_outcomes_total", [("type", "click"), ("attribution", "unattributed")], 1),
        ];
        string[] gauges = ["segmentation_profiles", "segmentation_catalog_segments", "segmentation_events_completeness", "segmentation_profiles_freshness", "segmentation_profiles_declared_share", "segmentation_changes_last_offset", "segmentation_changes_oldest_offset", "segmentation_triggers_fired_total", "segmentation_triggers_pending", "segmentation_triggers_dropped_total", "segmentation_triggers_missed_total"];
        bool Moved(string scrape, (string Why, string Name, (string Label, string Value)[] Labels, double AtLeast) c) =>
            Value(scrape, c.Name, c.Labels) - Value(before, c.Name, c.Labels) >= c.AtLeast;

        // Other test hosts alive in this process share the meters by name (below): a collection can miss a stream while
        // one of them is disposed, so the metrics are scraped again (up to ten times) before concluding.
        // This host's completeness of context.source is 1 (every event it took carried one); another host's may differ.
        bool Complete(string scrape) => counters.All(c => Moved(scrape, c)) && gauges.All(g => HasSeries(scrape, g))
            && Value(scrape, "segmentation_events_completeness", ("field", "context.source")) == 1.0;
        var after = await Scrape(http);
        for (var i = 0; i < 10 && !Complete(after); i++)
        {
            await Task.Delay(200);
            after = await Scrape(http);
        }

        foreach (var counter in counters)
        {
            Assert.True(Moved(after, counter), counter.Why);
        }

        // OpenTelemetry subscribes to meters by name, so the other test hosts alive in this process register the same
        // gauges with this host's provider and a collection may export one of theirs, or miss the stream while one is
        // disposed (a single server has one host): hence the scrapes above until every series is there.
        Assert.True(HasSeries(after, "segmentation_profiles"), "the profile gauge is exported");
        Assert.True(ProfilesGauge() >= 1, "this host's profile gauge counts the profile the event created");
        Assert.True(Value(after, "segmentation_catalog_segments") > 1);
        Assert.DoesNotContain(user, after); // tag sets are bounded: never a user id

        // Data quality as gauges: completeness per context field, profiles by freshness band, the declared share.
        Assert.Equal(1.0, Value(after, "segmentation_events_completeness", ("field", "context.source")));
        Assert.Contains(after.Split('\n'), l => l.StartsWith("segmentation_profiles_freshness", StringComparison.Ordinal) && l.Contains("band=\"no events\"", StringComparison.Ordinal)); // measured at most every 5 minutes: its values may predate this test's writes
        Assert.Contains("segmentation_profiles_declared_share", after, StringComparison.Ordinal);

        // The change stream and its triggers.
        Assert.True(Value(after, "segmentation_changes_last_offset") >= Value(after, "segmentation_changes_oldest_offset"));
        foreach (var name in new[] { "segmentation_changes_last_offset", "segmentation_changes_oldest_offset", "segmentation_triggers_fired_total", "segmentation_triggers_pending", "segmentation_triggers_dropped_total", "segmentation_triggers_missed_total" })
        {
            Assert.Contains(after.Split('\n'), l => l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Health_probes_answer_over_http_with_each_readiness_check()
    {
        var http = host.CreateClient();
        var live = await http.GetAsync("/healthz/live");
        var ready = await http.GetAsync("/healthz/ready");
        var plain = await http.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        using var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync());
        Assert.Equal("Healthy", body.RootElement.GetProperty("status").GetString());
        var checks = body.RootElement.GetProperty("checks");
        Assert.StartsWith("version ", checks.GetProperty("catalog").GetProperty("description").GetString());
        Assert.Equal("Healthy", checks.GetProperty("storage").GetProperty("status").GetString());
        Assert.False(checks.TryGetProperty("memberships", out _), "the membership index gates only the catalog service, not readiness");
    }

    // A listener sampling every span of the service into spans, as a trace exporter would, until disposed.
    private static ActivityListener SampleSpans(System.Collections.Concurrent.ConcurrentQueue<Activity> spans)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == SegmentationTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    [Fact]
    public async Task Decide_is_traced_with_its_decision_id_when_a_listener_samples_spans()
    {
        var spans = new System.Collections.Concurrent.ConcurrentQueue<Activity>();
        using var listener = SampleSpans(spans);
        var user = "traced-" + Guid.NewGuid().ToString("N");

        var decision = (await new DecisionService.DecisionServiceClient(Channel).DecideAsync(new DecideRequest { UserId = user })).Decision;

        var span = Assert.Single(spans, s => s.OperationName == "Decide" && (string?)s.GetTagItem("segmentation.decision_id") == decision.DecisionId);
        Assert.Equal(decision.Segment.Id, span.GetTagItem("segmentation.segment"));
        Assert.DoesNotContain(span.TagObjects, t => Equals(t.Value, user)); // the decision id, not the user
    }

    [Fact]
    public async Task A_batch_span_carries_at_most_128_decision_events_and_counts_the_rest()
    {
        var spans = new System.Collections.Concurrent.ConcurrentQueue<Activity>();
        using var listener = SampleSpans(spans);
        var request = new DecideBatchRequest { Channel = Contracts.V1.Channel.Web };
        var marker = Guid.NewGuid().ToString("N");
        request.UserIds.AddRange(Enumerable.Range(0, 300).Select(i => $"batch-{marker}-{i}"));

        using var call = new DecisionService.DecisionServiceClient(Channel).DecideBatch(request);
        var answered = 0;
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            answered++;
        }

        var span = Assert.Single(spans, s => s.OperationName == "DecideBatch" && (int?)s.GetTagItem("segmentation.batch.users") == 300);
        Assert.Equal(300, answered);
        Assert.Equal(SegmentationTelemetry.MaxSpanEvents, span.Events.Count());
        Assert.Equal(300 - SegmentationTelemetry.MaxSpanEvents, span.GetTagItem("segmentation.events_dropped"));
    }

    // The profile gauge of this host alone, read through its own meter factory: every host in the test process
    // registers a gauge of the same name, and the exporter reports one of them, so the scrape cannot say whose it is.
    private long ProfilesGauge()
    {
        var factory = host.Services.GetRequiredService<IMeterFactory>();
        long? value = null;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name == "segmentation.profiles")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, measurement, _, _) => value = measurement);
        listener.Start();
        listener.RecordObservableInstruments();
        return value ?? throw new InvalidOperationException("this host published no profile gauge");
    }

    [Fact]
    public async Task Decision_and_membership_series_stay_apart_for_a_catalog_of_hundreds_of_segments()
    {
        // 300 segments decided on 4 channels, hit and miss, make 2,400 tag sets; 1,100 segments entered and left make
        // 2,200: past OpenTelemetry's default of 2,000 per metric, which folds the rest into one overflow series.
        var http = host.CreateClient();
        var run = Guid.NewGuid().ToString("N")[..8];
        string[] channels = ["web", "email", "ads", "app"];
        for (var s = 0; s < 1_100; s++)
        {
            var segment = $"many-{run}-{s}";
            SegmentationTelemetry.MembershipChanges.Add(1, SegmentationTelemetry.Tag("segment", segment), SegmentationTelemetry.Tag("direction", "entered"));
            SegmentationTelemetry.MembershipChanges.Add(1, SegmentationTelemetry.Tag("segment", segment), SegmentationTelemetry.Tag("direction", "left"));
            if (s >= 300)
            {
                continue;
            }

            foreach (var channel in channels)
            {
                foreach (var cache in new[] { "hit", "miss" })
                {
                    SegmentationTelemetry.Decisions.Add(1, SegmentationTelemetry.Tag("segment", segment), SegmentationTelemetry.Tag("channel", channel), SegmentationTelemetry.Tag("cache", cache));
                }
            }
        }

        var scrape = await Scrape(http);
        Assert.DoesNotContain("otel_metric_overflow", scrape, StringComparison.Ordinal);
        var last = $"many-{run}-299";
        Assert.Equal(1, Value(scrape, "segmentation_decisions_total", ("segment", last), ("channel", "app"), ("cache", "miss")));
        Assert.Equal(1, Value(scrape, "segmentation_membership_changes_total", ("segment", $"many-{run}-1099"), ("direction", "left")));
    }

    [Fact]
    public async Task Metrics_include_the_runtimes_own_collections_pauses_and_allocation()
    {
        var http = host.CreateClient();
        var before = Value(await Scrape(http), "dotnet_gc_heap_total_allocated_bytes_total");
        GC.KeepAlive(Enumerable.Range(0, 1_000).Select(i => new byte[1_024]).ToList()); // at least a megabyte allocated between the scrapes
        var after = await Scrape(http);
        Assert.True(Value(after, "dotnet_gc_heap_total_allocated_bytes_total") - before >= 1_000_000, "the runtime meter reports the bytes allocated");
        Assert.Contains(after.Split('\n'), l => l.StartsWith("dotnet_gc_collections_total{", StringComparison.Ordinal) && l.Contains("gc_heap_generation=\"gen2\"", StringComparison.Ordinal));
        Assert.Contains(after.Split('\n'), l => l.StartsWith("dotnet_gc_pause_time_seconds_total", StringComparison.Ordinal));
        Assert.Contains(after.Split('\n'), l => l.StartsWith("dotnet_thread_pool_queue_length", StringComparison.Ordinal));
    }

    private static bool HasSeries(string scrape, string name) =>
        scrape.Split('\n').Any(l => l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal));

    private static async Task<string> Scrape(HttpClient http)
    {
        var response = await http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    // The value of the series of `name` carrying every label given (0 when there is none yet).
    private static double Value(string scrape, string name, params (string Label, string Value)[] labels)
    {
        foreach (var line in scrape.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) && !line.StartsWith(name + " ", StringComparison.Ordinal))
            {
                continue;
            }

            var close = line.LastIndexOf('}');
            var labelText = close < 0 ? "" : line[(name.Length + 1)..close];
            if (labels.All(l => labelText.Contains($"{l.Label}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                var value = line[((close < 0 ? name.Length : close) + 1)..].Trim().Split(' ')[0];
                return double.Parse(value, CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
