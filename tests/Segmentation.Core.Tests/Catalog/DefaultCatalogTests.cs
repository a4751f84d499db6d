using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Catalog;

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

    [Fact]
    public void A_trade_prospect_with_strong_fit_and_buying_signals_is_a_hot_trade_lead()
    {
        using var w = new TestWorld();
        w.Ingestion.SetTraits("shop-1", new Dictionary<string, object?> { ["company_size"] = 12d, ["industry"] = "gift_shop", ["company_name"] = "Acorn Gifts" }, "trade-form", AttributeLayer.ZeroParty, null);
        w.Ingestion.Track(new BehaviourEvent { EventId = "p1", Type = EventTypes.PageView, UserId = "shop-1", Timestamp = w.Clock.Now.AddHours(-2), Context = new EventContext("web", "desktop", "s1", "pricing") });
        w.Ingestion.Track(new BehaviourEvent { EventId = "f1", Type = EventTypes.FormSubmit, UserId = "shop-1", Timestamp = w.Clock.Now.AddHours(-1), Category = "demo_request", Context = new EventContext("web", "desktop", "s1", "trade") });

        var d = w.Decide("shop-1");

        Assert.Equal("hot_trade_lead", d.Winner.Id); // 15 fit + 10 industry + 30 request + 10 pricing = 65: hot
        Assert.StartsWith("Acorn Gifts, your trade account", d.Variant(VariantKind.Content).Text, StringComparison.Ordinal);
        Assert.Contains("(65)", d.Variant(VariantKind.Journey).Text, StringComparison.Ordinal);
    }
}
