using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Experiments;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Experiments;
using Segmentation.Core.Outcomes;

namespace Segmentation.Benchmarks.Experiments;

/// <summary>
/// Results of an experiment with 1,000,000 exposed users (target: at most 50 ms): one scan of every user's record into
/// each arm's sums, then the statistics; and what reading a user's recorded arm adds to a decision in an experiment.
/// </summary>
[MemoryDiagnoser]
public class ExperimentResultsBenchmark
{
    private const int Users = 1_000_000;
    private readonly ExperimentExposures _exposures = new();
    private readonly ExperimentExposures _reweighted = new();
    private readonly ExperimentDesign _design = new("offer_test", "conversion_rate", ["ctr", "revenue_per_user", "unsubscribe_rate"], 0.05, [("control", 1), ("treatment", 1)]);
    private readonly string[] _ids = [.. Enumerable.Range(0, 1024).Select(i => $"customer-{i * 977}")];
    private readonly string[] _strangers = [.. Enumerable.Range(0, 1024).Select(i => $"stranger-{i}")];
    private int _next;

    private static string Catalog(int treatmentWeight) => $$"""
        catalog: { name: bench, fallback: everyone }
        segments:
          - id: everyone
            name: Everyone
            type: contextual
            fallback: true
            personalization: { content: a, offer: b, cta: c, journey: d, messaging: e }
        experiments:
          - id: offer_test
            segment: everyone
            arms:
              - id: control
                weight: 1
              - id: treatment
                weight: {{treatmentWeight}}
        """;

    [GlobalSetup]
    public void Setup()
    {
        var catalog = CatalogLoader.Load(new InMemoryCatalogSource([new CatalogFile("catalog.yaml", Catalog(1))]));
        var arms = catalog.Experiments[0].Arms;
        var random = new Random(1);
        var ticks = DateTimeOffset.UtcNow.UtcTicks;
        for (var i = 0; i < Users; i++)
        {
            var user = $"customer-{i}";
            _exposures.Record(arms[i & 1], user, ticks, expose: true);
            _reweighted.Record(arms[i & 1], user, ticks, expose: true);
            if (random.NextDouble() < 0.3)
            {
                _exposures.Credit(user, OutcomeType.Click, 0, ticks);
            }

            if (random.NextDouble() < 0.1)
            {
                _exposures.Credit(user, OutcomeType.Conversion, 20 + (random.NextDouble() * 60), ticks);
            }
        }

        _reweighted.Publishing(CatalogLoader.Load(new InMemoryCatalogSource([new CatalogFile("catalog.yaml", Catalog(3))])), DateTimeOffset.UtcNow.UtcTicks);
    }

    /// <summary>Every exposed user's record summed per arm, and the results computed from the sums.</summary>
    [Benchmark]
    public ExperimentResult ResultsForAMillionUsers() =>
        ExperimentAnalysis.Analyze(_design, ExperimentLifecycle.Observations(_exposures.Summarize("offer_test")?.Arms));

    /// <summary>A decision in an experiment whose weights never changed: the hash is exact, so no user's record is read.</summary>
    [Benchmark]
    public string? RecordedArmWeightsUnchanged() => _exposures.RecordedArm("offer_test", _ids[_next++ & 1023]);

    /// <summary>After a weight change (or an identification): the user's recorded arm is read (then no hash is needed).</summary>
    [Benchmark]
    public string? RecordedArmAfterWeightChange() => _reweighted.RecordedArm("offer_test", _ids[_next++ & 1023]);

    /// <summary>After a weight change, a user not yet in the experiment: the lookup misses (and the hash assigns, see AssignmentBenchmark).</summary>
    [Benchmark]
    public string? NotYetRecordedAfterWeightChange() => _reweighted.RecordedArm("offer_test", _strangers[_next++ & 1023]);
}
