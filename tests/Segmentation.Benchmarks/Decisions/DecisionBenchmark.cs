using BenchmarkDotNet.Attributes;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;

namespace Segmentation.Benchmarks.Decisions;

/// <summary>
/// A whole decision for one realistic shopper over the 50-segment catalog.
/// </summary>
/// <remarks>
/// "Without rendering" cannot be measured exactly from outside the core library:
/// <c>Decider.Decide</c> always renders the winner's five variants and <c>Decider.Resolve</c>
/// (priority, overrides, exclusions) is internal. <see cref="RulesOnMiss"/> is therefore the rules
/// part of a miss as the Decider runs it (a fresh <see cref="EvalContext"/> and match array per
/// call), and <see cref="DecideOnMiss"/> minus it is resolution plus rendering plus the result.
/// </remarks>
[MemoryDiagnoser]
public class DecisionBenchmark
{
    private BenchWorld _world = null!;
    private CatalogSnapshot _catalog = null!;
    private Profile _profile = null!;
    private RfmModel _rfm = null!;
    private DecisionRequest _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _catalog = _world.Catalogs.Current;
        _profile = _world.Shopper;
        _rfm = _world.Rfm.Current;
        _request = new DecisionRequest(BenchWorld.ShopperId, "", _world.Request, _world.Now);
        _world.Engine.Decide(_request); // fills the cache for DecideOnHit
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>Cache miss: the pure decision (rules, resolution, five rendered variants).</summary>
    [Benchmark]
    public Decision DecideOnMiss() =>
        _world.Decider.Decide(_catalog, BenchWorld.ShopperId, _profile, _world.Request, _world.Now, _rfm, explain: false);

    /// <summary>Cache miss without resolution or rendering (see remarks).</summary>
    [Benchmark]
    public bool[] RulesOnMiss()
    {
        var context = new EvalContext(_profile, _world.Request, _world.Now.UtcTicks, _rfm, _catalog.Features);
        var segments = _catalog.Segments;
        var matched = new bool[segments.Count];
        for (var i = 0; i < segments.Count; i++)
        {
            matched[i] = segments[i].Rule is { } rule && rule.Evaluate(context);
        }

        return matched;
    }

    /// <summary>Cache hit through the engine: validation, profile read, cache key, lookup, new decision id.</summary>
    [Benchmark]
    public Decision DecideOnHit() => _world.Engine.Decide(_request);
}
