using BenchmarkDotNet.Attributes;
using Segmentation.Core.Profiles;

namespace Segmentation.Benchmarks.Scoring;

/// <summary>RFM quintile recomputation over 100,000 customers with 1 to 6 orders each.</summary>
[MemoryDiagnoser]
public class RfmBenchmark
{
    private const int Customers = 100_000;

    private BenchWorld _world = null!;
    private Profile[] _profiles = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld(populationCustomers: Customers);
        _profiles = _world.Store.Snapshot().ToArray();
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>The model over a materialized population (sorting and scoring only).</summary>
    [Benchmark]
    public RfmModel Compute() => RfmModel.Compute(_profiles, version: 1);

    /// <summary>What the periodic job does: enumerate the store and compute.</summary>
    [Benchmark]
    public RfmModel RecomputeFromStore() => _world.Rfm.Recompute(_world.Store);
}
