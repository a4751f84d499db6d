using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;

namespace Segmentation.Core.Tests;

public class DefaultCatalogTests
{
    [Fact]
    public void Default_catalog_loads_with_a_fallback_and_all_five_outcomes_per_segment()
    {
        var catalog = CatalogLoader.Load(new EmbeddedCatalogSource());

        Assert.InRange(catalog.Segments.Count, 18, 40);
        Assert.True(catalog.Fallback.IsFallback);
        Assert.Same(catalog.Fallback, catalog.Segments[^1]);
        Assert.All(catalog.Segments, s => Assert.Equal(Enum.GetValues<VariantKind>().Length, s.Variants.Count));
        Assert.All(catalog.Segments.Where(s => !s.IsFallback), s => Assert.NotNull(s.Rule));
    }

    [Fact]
    public void Default_catalog_orders_segments_by_priority_descending()
    {
        var catalog = CatalogLoader.Load(new EmbeddedCatalogSource());
        var ranked = catalog.Segments.Where(s => !s.IsFallback).Select(s => s.Priority).ToList();

        Assert.Equal(ranked.OrderByDescending(p => p), ranked);
        Assert.Equal(SegmentType.Intent, catalog.Segments[0].Type);
    }
}
