using BenchmarkDotNet.Attributes;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;

namespace Segmentation.Benchmarks.Products;

/// <summary>
/// What a template or rule pays to read a heavy user's product signals: a profile of 1,000 events over 60 days (product
/// views, page views, adds to cart in seven categories), then a purchase and five more views. Each is computed when a
/// template or rule reads it, so a computed decision for such a user pays for the ones its winner reads.
/// </summary>
[MemoryDiagnoser]
public class ProductSignalsBenchmark
{
    private BenchWorld _world = null!;
    private Profile _profile = null!;
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        string[] categories = ["home_decor", "party", "christmas", "kitchen", "garden", "gifts", "lighting"];
        var start = _world.Now.AddDays(-60);
        for (var i = 0; i < 1000; i++)
        {
            var type = i % 10 == 0 ? EventTypes.AddToCart : i % 3 == 0 ? EventTypes.PageView : EventTypes.ProductView;
            _world.Track("heavy", type, start.AddMinutes(i * 80), category: categories[i % categories.Length]);
        }

        _world.Track("heavy", EventTypes.Purchase, start.AddMinutes((1000 * 80) - 30), value: 40, orderId: "o-1", category: "party", quantity: 2);
        for (var i = 0; i < 5; i++)
        {
            _world.Track("heavy", EventTypes.ProductView, start.AddMinutes((1000 * 80) + i), category: "party");
        }

        _profile = _world.Store.Get("heavy")!;
        _now = _world.Now.UtcTicks;
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>The rule field <c>affinity.top_category</c>.</summary>
    [Benchmark]
    public string? AffinityTopCategory() => DerivedScores.Affinity(_profile, _now, ProductSignals.AffinityHalfLife).Top;

    /// <summary>The template field <c>profile.top_categories</c>.</summary>
    [Benchmark]
    public List<string> TopCategories() => DerivedScores.TopAffinities(_profile, _now, ProductSignals.AffinityHalfLife, byProduct: false, max: 5, out _);

    /// <summary>The template field <c>profile.cart_products</c>.</summary>
    [Benchmark]
    public List<string> CartProducts() => ProductSignals.CartProducts(_profile);

    /// <summary>The products never to recommend again (<c>profile.related</c>).</summary>
    [Benchmark]
    public HashSet<string> Purchased() => ProductSignals.Purchased(_profile);

    /// <summary>The template field <c>profile.last_purchase</c>.</summary>
    [Benchmark]
    public LastPurchase? Last() => ProductSignals.Last(_profile);
}
