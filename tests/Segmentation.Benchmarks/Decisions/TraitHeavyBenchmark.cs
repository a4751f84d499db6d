using BenchmarkDotNet.Attributes;
using Segmentation.Workloads;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;

namespace Segmentation.Benchmarks.Decisions;

/// <summary>
/// The 50-segment decision without rendering (rules, priority with overrides and exclusions, the winner) on
/// the flat-profile targeting workload (<see cref="TraitHeavyWorkload"/>): 10,000 profiles of about 30
/// declared traits each, every one evaluated per invocation; times are per decision.
/// </summary>
[MemoryDiagnoser]
public class TraitHeavyBenchmark
{
    private const int ProfileCount = 10_000;

    private TraitHeavyWorkload _workload = null!;
    private CatalogSnapshot _catalog = null!;
    private Profile[] _profiles = null!;
    private RfmModel _rfm = null!;
    private bool[] _matched = null!;

    [GlobalSetup]
    public void Setup()
    {
        _workload = new TraitHeavyWorkload(ProfileCount);
        _catalog = _workload.Catalogs.Current;
        _profiles = [.. _workload.Profiles];
        _rfm = _workload.Rfm;
        _matched = new bool[_catalog.Segments.Count];
    }

    [GlobalCleanup]
    public void Cleanup() => _workload.Dispose();

    /// <summary>One decision (no rendering) per profile; returns the sum of the winners' ranks so nothing is optimised away.</summary>
    [Benchmark(OperationsPerInvoke = ProfileCount)]
    public int Resolve50SegmentsFlatProfiles()
    {
        var sum = 0;
        var now = _workload.Now;
        foreach (var profile in _profiles)
        {
            sum += Decider.EvaluateWinner(_catalog, profile, RequestContext.Empty, now, _rfm, _matched).Winner.Rank;
        }

        return sum;
    }
}
