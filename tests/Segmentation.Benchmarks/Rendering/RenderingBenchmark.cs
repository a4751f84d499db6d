using BenchmarkDotNet.Attributes;
using Scriban.Runtime;
using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Benchmarks.Rendering;

/// <summary>Rendering one small variant, and building the model every render of a decision shares.</summary>
[MemoryDiagnoser]
public class RenderingBenchmark
{
    private BenchWorld _world = null!;
    private Segment _segment = null!;
    private VariantTemplate _variant = null!;
    private EvalContext _context = null!;
    private ScriptObject _model = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _segment = _world.Catalogs.Current.Segments[0];
        _variant = _segment.Variants.First(v => v.Kind == VariantKind.Content); // an if over a trait, ~45 characters out
        _context = _world.ShopperContext();
        _model = RenderModel.Build(_context, _segment.Subject);
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>One small templated variant against a prebuilt model.</summary>
    [Benchmark]
    public RenderedVariant RenderSmallVariant() => _world.Renderer.Render(_variant, _model);

    /// <summary>The render model (built once per decision on a miss).</summary>
    [Benchmark]
    public ScriptObject BuildRenderModel() => RenderModel.Build(_context, _segment.Subject);
}
