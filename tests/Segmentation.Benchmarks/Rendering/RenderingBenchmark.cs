using BenchmarkDotNet.Attributes;
using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Benchmarks.Rendering;

/// <summary>Rendering one small variant, and binding the model every render of a decision shares.</summary>
[MemoryDiagnoser]
public class RenderingBenchmark
{
    private BenchWorld _world = null!;
    private Segment _segment = null!;
    private VariantTemplate _variant = null!;
    private EvalContext _context = null!;
    private RenderModel _model = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _segment = _world.Catalogs.Current.Segments[0];
        _variant = _segment.Variants.First(v => v.Kind == VariantKind.Content); // an if over a trait, ~45 characters out
        _context = _world.ShopperContext();
        _model = RenderModel.Rent(_context, _segment.Subject);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Return();
        _world.Dispose();
    }

    /// <summary>One small templated variant against a prebuilt model.</summary>
    [Benchmark]
    public RenderedVariant RenderSmallVariant() => _world.Renderer.Render(_variant, _model);

    /// <summary>
    /// Binding the render model to a decision's inputs and giving it back, as a decision with templated
    /// variants does once (values are computed as templates read them, so this is all it costs up front).
    /// </summary>
    [Benchmark]
    public RenderModel BindRenderModel()
    {
        var model = RenderModel.Rent(_context, _segment.Subject);
        model.Return();
        return model;
    }
}
