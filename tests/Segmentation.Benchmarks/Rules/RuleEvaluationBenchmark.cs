using BenchmarkDotNet.Attributes;
using Segmentation.Core.Catalog;
using Segmentation.Core.Rules;

namespace Segmentation.Benchmarks.Rules;

/// <summary>
/// Evaluating every compiled rule of the 50-segment synthetic catalog for one realistic shopper:
/// the rules part of a decision, without resolution, rendering or the cache.
/// </summary>
[MemoryDiagnoser]
public class RuleEvaluationBenchmark
{
    private BenchWorld _world = null!;
    private IReadOnlyList<Segment> _segments = null!;
    private EvalContext _context = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _segments = _world.Catalogs.Current.Segments;
        _context = _world.ShopperContext();
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>
    /// All 50 rules over one reused context, reset first so that every feature is computed again as in a
    /// fresh decision (nothing carries over between invocations); returns the number matched.
    /// </summary>
    [Benchmark]
    public int Evaluate50Rules()
    {
        _context.Reset();
        var matched = 0;
        for (var i = 0; i < _segments.Count; i++)
        {
            if (_segments[i].Rule is { } rule && rule.Evaluate(_context))
            {
                matched++;
            }
        }

        return matched;
    }
}
