using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Segmentation.Core.Application.Telemetry;

/// <summary>
/// The service's own metrics and trace spans, as <see cref="System.Diagnostics"/> instruments that cost nothing
/// until a listener (the host's OpenTelemetry pipeline) subscribes. Tags are bounded: segment ids (bounded by the
/// catalog), channels (bounded by <c>Channels</c>), outcome types, reasons and results — never a user id.
/// </summary>
/// <remarks>
/// Decisions are counted where they are drained into the KPIs, off the request path: a served decision costs
/// Decide nothing here. Everything else is counted where it happens, on paths that already write or log.
/// </remarks>
public static class SegmentationTelemetry
{
    /// <summary>The name of the meter and of the activity source.</summary>
    public const string Name = "Segmentation";

    private static readonly Meter Meter = new(Name);

    /// <summary>Trace spans of decisions and ingestion.</summary>
    public static readonly ActivitySource Traces = new(Name);

    /// <summary>
    /// Most events one span carries (a batch call's span has one per decision or outcome up to here): OpenTelemetry
    /// exporters keep 128 by default, so more would be built only to be dropped. The span's
    /// <c>segmentation.events_dropped</c> tag counts the rest.
    /// </summary>
    public const int MaxSpanEvents = 128;

    /// <summary>
    /// Whether a span may carry one more event: true for the first <see cref="MaxSpanEvents"/> calls of one span (counted
    /// in <paramref name="added"/>), checked before the event is built; <see cref="EndEvents"/> then tags the rest.
    /// </summary>
    public static bool RoomForEvent(ref int added) => ++added <= MaxSpanEvents;

    /// <summary>Tags <paramref name="span"/> with the events <see cref="RoomForEvent"/> refused (none: no tag).</summary>
    public static void EndEvents(Activity? span, int added)
    {
        if (span is not null && added > MaxSpanEvents)
        {
            span.SetTag("segmentation.events_dropped", added - MaxSpanEvents);
        }
    }

    /// <summary>Served decisions, by winning segment, channel and whether the decision cache answered.</summary>
    public static readonly Counter<long> Decisions = Meter.CreateCounter<long>(
        "segmentation.decisions", "{decision}", "Served decisions by winning segment, channel and cache result (hit or miss)");

    /// <summary>
    /// Served decisions won by the fallback segment because no other was eligible (not the decisioning holdout's): their
    /// share of all decisions is the fallback rate where there is no holdout.
    /// </summary>
    public static readonly Counter<long> FallbackDecisions = Meter.CreateCounter<long>(
        "segmentation.decisions.fallback", "{decision}", "Served decisions won by the fallback segment, outside the decisioning holdout (whose users get it on purpose), by channel");

    /// <summary>Behavioural events by result (accepted, duplicate, rejected) and, for rejections, reason.</summary>
    public static readonly Counter<long> Events = Meter.CreateCounter<long>(
        "segmentation.events", "{event}", "Behavioural events by result (accepted, duplicate, rejected) and rejection reason");

    /// <summary>Entries of the Redis stream consumer by result.</summary>
    public static readonly Counter<long> StreamEntries = Meter.CreateCounter<long>(
        "segmentation.redis_ingestion.entries", "{entry}", "Redis stream entries by result (applied, duplicate, dead_lettered)");

    /// <summary>Outcomes by type and attribution.</summary>
    public static readonly Counter<long> Outcomes = Meter.CreateCounter<long>(
        "segmentation.outcomes", "{outcome}", "Outcomes by type and attribution (decision, last_impression, unattributed, duplicate, rejected)");

    /// <summary>Time of each change-log commit's write and fsync.</summary>
    public static readonly Histogram<double> ChangeLogFsync = Meter.CreateHistogram<double>(
        "segmentation.changelog.fsync.duration", "s", "Time to write and fsync one batch of change-log records",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] });

    /// <summary>Time to write a snapshot of the store.</summary>
    public static readonly Histogram<double> SnapshotDuration = Meter.CreateHistogram<double>(
        "segmentation.snapshot.duration", "s", "Time to write a snapshot of the profile store",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120] }); // 100k profiles ≈ 0.5 s, 1M ≈ 5–7 s

    /// <summary>Size of each snapshot written.</summary>
    public static readonly Histogram<long> SnapshotSize = Meter.CreateHistogram<long>(
        "segmentation.snapshot.size", "By", "Size of each snapshot of the profile store",
        advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1 << 20, 16 << 20, 64 << 20, 256 << 20, 1L << 30, 4L << 30, 16L << 30] });

    /// <summary>Catalog publishes by origin and result (published, rejected).</summary>
    public static readonly Counter<long> CatalogPublishes = Meter.CreateCounter<long>(
        "segmentation.catalog.publishes", "{publish}", "Catalog publishes by origin and result (published, rejected)");

    /// <summary>Users entering and leaving segments.</summary>
    public static readonly Counter<long> MembershipChanges = Meter.CreateCounter<long>(
        "segmentation.membership.changes", "{change}", "Users entering or leaving a segment, by segment and direction");

    /// <summary>A tag pair.</summary>
    public static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}
