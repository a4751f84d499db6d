using System.Diagnostics.Metrics;
using System.Reflection;
using Segmentation.Core.Application.Telemetry;

namespace Segmentation.Core.Tests.Application;

public sealed class TelemetryHistogramTests
{
    [Fact]
    public void Every_histogram_has_buckets_for_the_values_it_measures()
    {
        // Regression: the snapshot duration had the exporter's default buckets (0, 5, 10, 25 … seconds), so snapshots of
        // 100k profiles (about half a second) and of 1M (5–7 s) all fell into the first one or two.
        var histograms = typeof(SegmentationTelemetry).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType.IsGenericType && f.FieldType.GetGenericTypeDefinition() == typeof(Histogram<>))
            .Select(f => (f.Name, Buckets: f.FieldType.GetProperty("Advice")!.GetValue(f.GetValue(null)) is { } advice
                ? advice.GetType().GetProperty("HistogramBucketBoundaries")!.GetValue(advice)
                : null))
            .ToList();

        Assert.NotEmpty(histograms);
        Assert.All(histograms, h => Assert.True(h.Buckets is not null, $"{h.Name} has no bucket boundaries of its own"));
        var snapshot = SegmentationTelemetry.SnapshotDuration.Advice!.HistogramBucketBoundaries!;
        Assert.Contains(snapshot, b => b < 1); // 100k profiles
        Assert.Contains(snapshot, b => b is > 4 and < 10); // 1M profiles
    }
}
