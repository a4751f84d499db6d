using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Rendering;

namespace Segmentation.Benchmarks.Decisions;

/// <summary>
/// Measuring what decisions do: recording an outcome credited to a remembered decision, remembering a
/// decision in the ledger, and a 30-day KPI query across all segments after 1,048,576 remembered decisions.
/// </summary>
[MemoryDiagnoser]
public class MeasurementBenchmark
{
    private const int Users = 10_000;
    private const int Remembered = 1 << 20;

    private BenchWorld _world = null!;
    private string[] _decisionIds = null!;
    private string[] _users = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        var catalog = _world.Catalogs.Current;
        var ledger = _world.Measurement.Ledger;

        // A million decisions over the last 30 days, spread over every segment and two channels, counted into the KPIs.
        var random = new Random(7);
        for (var i = 0; i < Remembered; i++)
        {
            var at = _world.Now.AddMinutes(-random.Next(30 * 24 * 60));
            var (sequence, _) = ledger.Issue(at);
            var segment = catalog.Segments[random.Next(catalog.Segments.Count)];
            _world.Measurement.Remember(sequence, $"u{random.Next(200_000)}", _world.Measurement.KeyFor(catalog, segment, i % 4 == 0 ? "email" : "web"), at.UtcTicks);
        }

        _world.Measurement.Drain();

        // Decisions the outcome benchmark credits: one per user, made now.
        _users = Enumerable.Range(0, Users).Select(i => $"outcome-{i}").ToArray();
        _decisionIds = _users.Select(u => _world.Engine.Decide(new DecisionRequest(u, "", _world.Request)).DecisionId).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>One impression credited to its decision: validation, the profile event, attribution, KPI counters.</summary>
    [Benchmark]
    public OutcomeResult RecordImpression()
    {
        var n = _next++;
        var i = (int)(n % Users);
        return _world.Outcomes.Record(0, new Outcome($"imp-{n}", OutcomeType.Impression, _decisionIds[i], _users[i], "", VariantKind.Offer, _world.Now));
    }

    /// <summary>
    /// Throughput: impressions recorded from one thread per core at once, each thread crediting its own users' decisions
    /// (as concurrent RecordOutcomes calls do). Mean per outcome; outcomes per second in process = 1 / mean.
    /// </summary>
    [Benchmark(OperationsPerInvoke = ParallelBatch)]
    public void RecordImpressionsOnEveryCore()
    {
        var cores = Environment.ProcessorCount;
        var first = Interlocked.Add(ref _next, ParallelBatch) - ParallelBatch;
        Parallel.For(0, cores, new ParallelOptions { MaxDegreeOfParallelism = cores }, worker =>
        {
            var share = ParallelBatch / cores;
            for (var k = 0; k < share; k++)
            {
                var n = first + (worker * share) + k;
                var i = worker + (cores * (int)(n % (Users / cores))); // this thread's users only
                _world.Outcomes.Record(0, new Outcome($"imp-{n}", OutcomeType.Impression, _decisionIds[i], _users[i], "", VariantKind.Offer, _world.Now));
            }
        });
    }

    private const int ParallelBatch = 4096;

    /// <summary>Issuing a decision id and remembering the decision (what every Decide adds).</summary>
    [Benchmark]
    public long RememberDecision()
    {
        var (sequence, _) = _world.Measurement.Ledger.Issue(_world.Now);
        _world.Measurement.Remember(sequence, BenchWorld.ShopperId, _world.Measurement.KeyFor(_world.Catalogs.Current, _world.Catalogs.Current.Fallback, "web"), _world.Now.UtcTicks);
        return sequence;
    }

    /// <summary>Saving measurement's state (the ledger of a million decisions, KPIs, histories) to a file, as every minute with changes.</summary>
    [Benchmark]
    public long SaveCheckpoint()
    {
        var directory = Path.Combine(Path.GetTempPath(), "seg-bench-measurement");
        Directory.CreateDirectory(directory);
        var file = new Segmentation.Storage.MeasurementCheckpointFile(directory, _world.Measurement, _world.Get<SegmentSizeHistory>(), _world.Get<ChurnHistory>(), _world.Outcomes, _world.Catalogs);
        file.Save();
        return new FileInfo(file.Path).Length;
    }

    /// <summary>
    /// KPIs of every segment over 30 days with a million decisions remembered, as GetKpis answers them: the decisions
    /// counted first, each segment's row with its churn and its members at the start (their hour walks; the world's churn
    /// and size histories are empty, so their lookups find nothing).
    /// </summary>
    [Benchmark]
    public int Kpis30DaysAllSegments() =>
        _world.Get<SegmentKpis>().Query(new KpiQuery(_world.Now.AddDays(-30), _world.Now, [KpiDimension.Segment])).Rows.Count;

    /// <summary>The counted decisions' part of <see cref="Kpis30DaysAllSegments"/> alone (what that benchmark measured until 7 December 2026).</summary>
    [Benchmark]
    public int Kpis30DaysAllSegmentsCountsOnly() =>
        _world.Measurement.Kpis.Query(new KpiQuery(_world.Now.AddDays(-30), _world.Now, [KpiDimension.Segment])).Rows.Count;
}
