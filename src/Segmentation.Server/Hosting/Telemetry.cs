using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;

namespace Segmentation.Server.Hosting;

/// <summary>Telemetry settings (section <c>Segmentation:Telemetry</c>).</summary>
public sealed class TelemetryOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation:Telemetry";

    /// <summary>Serve the metrics for Prometheus to scrape at <see cref="PrometheusPath"/> (default on).</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>Path of the Prometheus scrape endpoint (unauthenticated, like the health endpoints: it holds counts, never personal data).</summary>
    public string PrometheusPath { get; set; } = "/metrics";

    /// <summary>
    /// Also collect ASP.NET Core's and Kestrel's own request and connection metrics (<c>http.server.request.duration</c>
    /// by route and status, active connections). Default on; they cost every request a histogram record (see
    /// docs/performance.md), so a deployment that measures requests elsewhere can turn them off.
    /// </summary>
    public bool HttpMetrics { get; set; } = true;

    /// <summary>
    /// An OTLP collector (for example <c>http://localhost:4317</c>): metrics and traces are exported to it when set.
    /// The standard <c>OTEL_EXPORTER_OTLP_*</c> environment variables refine the exporter (protocol, headers).
    /// </summary>
    public string OtlpEndpoint { get; set; } = "";

    /// <summary>
    /// Record trace spans (Decide, DecideBatch, event ingestion and outcomes, with the decision id) and export them
    /// to <see cref="OtlpEndpoint"/>. On by default when an OTLP endpoint is set; without one, true records nothing either:
    /// with no exporter a span is never created.
    /// </summary>
    public bool? Traces { get; set; }
}

/// <summary>OpenTelemetry metrics and traces, and the HTTP health endpoints for orchestrators.</summary>
internal static class Telemetry
{
    /// <summary>Path of the liveness probe: the process answers (no check runs).</summary>
    public const string LivePath = "/healthz/live";

    /// <summary>Path of the readiness probe (also served at <c>/healthz</c>): the catalog is loaded and the change log can write.</summary>
    public const string ReadyPath = "/healthz/ready";

    /// <summary>Tag sets kept for the decision counter: every segment of the largest catalog, twice, by 4 channels and hit or miss.</summary>
    public const int DecisionSeriesLimit = 2 * Core.Catalog.CatalogValidator.MaxSegments * 4 * 2;

    /// <summary>Tag sets kept for the membership counter: every segment of the largest catalog, twice, entered or left.</summary>
    public const int MembershipSeriesLimit = 2 * Core.Catalog.CatalogValidator.MaxSegments * 2;

    /// <summary>Adds the OpenTelemetry pipeline configured by <see cref="TelemetryOptions"/>.</summary>
    public static IServiceCollection AddSegmentationTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        services.Configure<TelemetryOptions>(configuration.GetSection(TelemetryOptions.Section));
        services.AddHostedService<ServiceGauges>(); // built when the host starts: a store that cannot open fails start-up there, explained
        Uri? otlp = null;
        if (options.OtlpEndpoint.Length > 0 && !Uri.TryCreate(options.OtlpEndpoint, UriKind.Absolute, out otlp))
        {
            throw new OptionsValidationException(nameof(TelemetryOptions), typeof(TelemetryOptions), [$"{TelemetryOptions.Section}:OtlpEndpoint must be an absolute URL such as http://collector:4317 (got '{options.OtlpEndpoint}')"]);
        }

        var traces = (options.Traces ?? true) && otlp is not null; // with no exporter no span is ever created
        if (!options.Prometheus && otlp is null)
        {
            return services;
        }

        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("segmentation", serviceVersion: typeof(Telemetry).Assembly.GetName().Version?.ToString()))
            .WithMetrics(metrics =>
            {
                // "System.Runtime": the runtime's own metrics (collections and pause time per generation, heap sizes,
                // allocation, thread pool queue, lock contention, CPU time), read only when scraped.
                metrics.AddMeter(SegmentationTelemetry.Name, TemplateRenderer.MeterName, ServiceGauges.MeterName, "System.Runtime");

                // Series per segment: OpenTelemetry keeps 2,000 tag sets per metric by default and folds any further
                // into one overflow series, which a catalog of some 250 segments already passes (segment × 4 channels
                // × hit or miss). Room for a full catalog twice over, so segments renamed by later publishes fit too.
                metrics.AddView(SegmentationTelemetry.Decisions.Name, new MetricStreamConfiguration { CardinalityLimit = DecisionSeriesLimit });
                metrics.AddView(SegmentationTelemetry.MembershipChanges.Name, new MetricStreamConfiguration { CardinalityLimit = MembershipSeriesLimit });
                if (options.HttpMetrics)
                {
                    metrics.AddMeter("Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel");
                }
                if (options.Prometheus)
                {
                    metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                }

                if (otlp is not null)
                {
                    metrics.AddOtlpExporter(o => o.Endpoint = otlp);
                }
            });
        if (traces)
        {
            telemetry.WithTracing(tracing =>
            {
                tracing.AddSource(SegmentationTelemetry.Name).AddAspNetCoreInstrumentation(http =>
                {
                    // The HTTP/JSON routes carry user ids in the path (/v1/users/{user_id}/profile): spans keep the
                    // route template, never the path as sent, so no user id reaches a trace backend.
                    http.EnrichWithHttpResponse = (activity, response) =>
                    {
                        if (response.HttpContext.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } route })
                        {
                            activity.SetTag("url.path", route);
                        }
                    };
                });
                if (otlp is not null)
                {
                    tracing.AddOtlpExporter(o => o.Endpoint = otlp);
                }
            });
        }

        return services;
    }

    /// <summary>Maps the Prometheus scrape endpoint (when on) and the HTTP health probes.</summary>
    public static WebApplication MapSegmentationTelemetry(this WebApplication app)
    {
        var options = app.Configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        if (options.Prometheus)
        {
            app.MapPrometheusScrapingEndpoint(options.PrometheusPath);
        }

        app.MapHealthChecks(LivePath, new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteJson });
        var ready = new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag), ResponseWriter = WriteJson };
        app.MapHealthChecks(ReadyPath, ready);
        app.MapHealthChecks("/healthz", ready);
        return app;
    }

    /// <summary>Tag of the checks that decide readiness.</summary>
    public const string ReadyTag = "ready";

    // {"status":"Unhealthy","checks":{"storage":{"status":"Unhealthy","description":"..."}}}: check names and
    // descriptions only (they name files and counts, never a user).
    private static Task WriteJson(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new Dictionary<string, object>
        {
            ["status"] = report.Status.ToString(),
            ["checks"] = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
        };
        return context.Response.WriteAsync(JsonSerializer.Serialize(body));
    }
}

/// <summary>Gauges of state the service keeps anyway, read when metrics are collected (registered when the host starts).</summary>
internal sealed class ServiceGauges : IHostedService
{
    public const string MeterName = "Segmentation.Server";

    // The profile figures of data quality take a pass over the store: measured at most this often for the gauges.
    private static readonly TimeSpan QualityRefresh = TimeSpan.FromMinutes(5);
    private readonly DataQuality _quality;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private (DataQualityReport Report, DateTimeOffset At)? _cached;

    public ServiceGauges(IMeterFactory meters, IProfileStore profiles, CatalogProvider catalogs, DecisionMeasurement measurement, DataQuality quality, Core.Application.Profiles.ProfileIngestion ingestion, Core.Application.Membership.ChangeFeed feed, Core.Application.ChangeStream.TriggerScheduler triggers, TimeProvider time)
    {
        _quality = quality;
        _time = time;
        var meter = meters.Create(MeterName);
        meter.CreateObservableGauge("segmentation.profiles", () => (long)profiles.Count, "{profile}", "Profiles in the store");
        meter.CreateObservableGauge("segmentation.catalog.version", () => catalogs.Current.Version, null, "Version of the serving catalog");
        meter.CreateObservableGauge("segmentation.catalog.segments", () => (long)catalogs.Current.Segments.Count, "{segment}", "Segments in the serving catalog");
        // The change stream and its scheduled triggers: how far it has come, what is retained, what fired, what waits.
        meter.CreateObservableGauge("segmentation.changes.last_offset", () => feed.Last, "{entry}", "Offset of the newest entry of the change stream");
        meter.CreateObservableGauge("segmentation.changes.oldest_offset", () => feed.Oldest, "{entry}", "Offset of the oldest entry the change stream still retains (older offsets are OUT_OF_RANGE to consumers)");
        meter.CreateObservableCounter("segmentation.triggers.fired", () => triggers.Fired, "{trigger}", "Scheduled triggers fired into the change stream");
        meter.CreateObservableGauge("segmentation.triggers.pending", () => (long)triggers.Pending, "{trigger}", "Triggers armed and not yet due");
        meter.CreateObservableCounter("segmentation.triggers.dropped", () => triggers.Dropped, "{entry}", "Segment entries not scheduled because too many triggers were pending");
        meter.CreateObservableCounter("segmentation.triggers.missed", () => triggers.Missed, "{entry}", "Change-stream entries the trigger scheduler could not read (it fell behind the retention window)");
        meter.CreateObservableGauge("segmentation.decisions.remembered", () => Math.Min(measurement.Ledger.Issued, measurement.Ledger.Capacity), "{decision}", "Served decisions the ledger remembers for attribution");

        // Data quality: completeness from the event counters (cheap), the profile figures from a report at most 5 minutes old.
        meter.CreateObservableGauge(
            "segmentation.events.completeness",
            () => ingestion.Events.Quality.Read().Completeness.Select(c => new Measurement<double>(c.Value, new KeyValuePair<string, object?>("field", c.Key))),
            null,
            "Share of accepted events carrying each optional context field");
        meter.CreateObservableGauge("segmentation.profiles.declared_share", () => Report().DeclaredShare, null, "Share of profiles with declared (zero-party) data (refreshed at most every 5 minutes)");
        meter.CreateObservableGauge(
            "segmentation.profiles.unsegmented_share",
            () => Report().UnsegmentedShare is { } share ? [new Measurement<double>(share)] : Array.Empty<Measurement<double>>(),
            null,
            "Share of profiles matching no segment but the fallback (refreshed at most every 5 minutes; absent while memberships are rebuilt)");
        meter.CreateObservableGauge(
            "segmentation.profiles.freshness",
            () => Report().Freshness.Select(b => new Measurement<long>(b.Profiles, new KeyValuePair<string, object?>("band", b.Label))),
            "{profile}",
            "Profiles by the age of their last event (refreshed at most every 5 minutes)");
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private DataQualityReport Report()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            if (_cached is not { } cached || now - cached.At >= QualityRefresh)
            {
                cached = (_quality.Measure(now.AddDays(-1), now), now);
                _cached = cached;
            }

            return cached.Report;
        }
    }
}

/// <summary>Readiness of the catalog: a catalog is published and serving.</summary>
internal sealed class CatalogHealthCheck(CatalogProvider catalogs) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var c = catalogs.Current;
            return Task.FromResult(HealthCheckResult.Healthy($"version {c.Version} ({c.Segments.Count} segments, from {c.Origin})"));
        }
        catch (InvalidOperationException ex)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(ex.Message));
        }
    }
}
