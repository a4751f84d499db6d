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
    private CatalogSnapshot _catalog = null!;
    private bool[] _matched = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _catalog = _world.Catalogs.Current;
        _segments = _catalog.Segments;
        _context = _world.ShopperContext();
        _matched = new bool[_segments.Count];
        _catalog.EvaluateAll(_context, _matched); // compiles the catalog's evaluator (once per catalog)
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>
    /// All 50 rules as a decision evaluates them: the catalog compiled into one method
    /// (<see cref="CatalogSnapshot.EvaluateAll"/>), over one reused context reset first so that every
    /// feature is computed again as in a fresh decision; returns the number matched.
    /// </summary>
    [Benchmark]
    public int Evaluate50Rules()
    {
        _context.Reset();
        _catalog.EvaluateAll(_context, _matched);
        var matched = 0;
        foreach (var m in _matched)
        {
            matched += m ? 1 : 0;
        }

        return matched;
    }

    /// <summary>
    /// For comparison: each rule's own composed delegate, one by one, over one reused context, reset first so that every feature is computed again as in a
    /// fresh decision (nothing carries over between invocations); returns the number matched.
    /// </summary>
    [Benchmark]
    public int Evaluate50RulesOneByOne()
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
