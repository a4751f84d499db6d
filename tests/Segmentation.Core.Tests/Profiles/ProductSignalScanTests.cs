using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;

namespace Segmentation.Core.Tests.Profiles;

/// <summary>
/// The product signals and affinities read the log through its backward scan, comparing the string pool's codes; here
/// they are recomputed independently, event by event through the log's string accessors, on generated histories
/// long enough to have an archived run (past <see cref="EventLog.HotLimit"/> events).
/// </summary>
public sealed class ProductSignalScanTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static readonly string[] Types = [EventTypes.ProductView, EventTypes.ProductView, EventTypes.PageView, EventTypes.AddToCart, EventTypes.RemoveFromCart, EventTypes.Purchase, "newsletter_signup"];

    private static Profile History(int seed, int count)
    {
        var random = new Random(seed);
        var events = new List<StoredEvent>(count);
        for (var i = 0; i < count; i++)
        {
            var type = Types[random.Next(Types.Length)];
            var product = type == EventTypes.PageView || random.Next(20) == 0 ? null : $"sku-{seed}-{random.Next(40)}";
            var category = random.Next(10) == 0 ? null : $"category-{random.Next(8)}";
            var ticks = Now.AddDays(-400).AddMinutes(i * (400.0 * 24 * 60 / count)).UtcTicks;
            events.Add(new StoredEvent($"e-{seed}-{i}", type, ticks, type == EventTypes.Purchase ? 20 + i : 0, random.Next(1, 4), $"s-{i / 10}", "web", "product", category, product, i % 7 == 0 ? Guid.NewGuid().ToString() : null, null));
        }

        return new Profile($"user-{seed}").WithEvents(events, count);
    }

    public static TheoryData<int, int> Histories() => new() { { 1, 30 }, { 2, 700 }, { 3, 2_500 }, { 4, 5_000 } };

    [Theory]
    [MemberData(nameof(Histories))]
    public void Signals_read_by_code_equal_those_read_event_by_event(int seed, int count)
    {
        var p = History(seed, count);
        Assert.True(count < EventLog.HotLimit || p.Events.HasArchive);
        var events = p.Events;

        var viewed = new List<string>();
        for (var i = events.Count - 1; i >= 0 && viewed.Count < ProductSignals.MaxItems; i--)
        {
            if (events.TypeAt(i) == EventTypes.ProductView && events.ProductIdAt(i) is { } product && !viewed.Contains(product))
            {
                viewed.Add(product);
            }
        }

        // The cart: since the last purchase, each product's additions less its removals (never below 0), newest addition first.
        var decodedEvents = events.ToList();
        var sinceCheckout = decodedEvents.Skip(decodedEvents.FindLastIndex(e => e.Type == EventTypes.Purchase) + 1).ToList();
        var held = new Dictionary<string, (int Quantity, int LastAdded)>();
        for (var i = 0; i < sinceCheckout.Count; i++)
        {
            if (sinceCheckout[i] is { ProductId: { } product } e && e.Type is EventTypes.AddToCart or EventTypes.RemoveFromCart)
            {
                var (quantity, lastAdded) = held.GetValueOrDefault(product);
                held[product] = e.Type == EventTypes.AddToCart ? (quantity + e.Quantity, i) : (Math.Max(0, quantity - e.Quantity), lastAdded);
            }
        }

        var cart = p.CartItems <= 0 ? [] : held.Where(h => h.Value.Quantity > 0).OrderByDescending(h => h.Value.LastAdded).Take(ProductSignals.MaxItems).Select(h => h.Key).ToList();

        var purchased = Enumerable.Range(0, events.Count).Where(i => events.TypeAt(i) == EventTypes.Purchase).Select(events.ProductIdAt).OfType<string>().ToHashSet();

        // Each event's value read in place equals the decoded event's, and the last purchase is the decoded one's.
        var decoded = events.ToList();
        Assert.Equal(decoded.Select(e => e.Value), Enumerable.Range(0, events.Count).Select(events.ValueAt));
        var lastPurchase = decoded.LastOrDefault(e => e.Type == EventTypes.Purchase);
        Assert.Equal(
            lastPurchase.Type is null ? null : new LastPurchase(lastPurchase.ProductId, lastPurchase.Category, lastPurchase.Value, lastPurchase.Ticks),
            ProductSignals.Last(p));

        Assert.Equal(viewed, ProductSignals.RecentlyViewed(p));
        Assert.Equal(cart, ProductSignals.CartProducts(p));
        Assert.Equal(purchased.Order(), ProductSignals.Purchased(p).Order());
        foreach (var categories in new[] { true, false })
        {
            Assert.Equal(TopEventByEvent(p, categories), DerivedScores.TopAffinities(p, Now.UtcTicks, ProductSignals.AffinityHalfLife, byProduct: !categories, max: 5, out _));
        }

        foreach (var byProduct in new[] { true, false })
        {
            var expected = AffinityEventByEvent(p, byProduct);
            var actual = DerivedScores.Affinity(p, Now.UtcTicks, ProductSignals.AffinityHalfLife, byProduct);
            Assert.Equal((expected.Top, expected.Last), (actual.Top, actual.LastTicks));
            Assert.Equal(expected.Score, actual.Score, 9);
        }
    }

    [Fact]
    public void A_product_partly_removed_from_the_cart_is_still_in_it()
    {
        StoredEvent Cart(int i, string type, string product, int quantity) =>
            new($"e-{i}", type, Now.AddMinutes(i).UtcTicks, 0, quantity, "s-1", "web", "product", "shoes", product, null, null);

        var events = new List<StoredEvent>
        {
            Cart(0, EventTypes.AddToCart, "sku-a", 2),
            Cart(1, EventTypes.AddToCart, "sku-b", 1),
            Cart(2, EventTypes.RemoveFromCart, "sku-a", 1),
        };
        var profile = new Profile("user-cart").WithEvents(events, events.Count);
        Assert.Equal(2, profile.CartItems);
        Assert.Equal(["sku-b", "sku-a"], ProductSignals.CartProducts(profile));

        events.Add(Cart(3, EventTypes.RemoveFromCart, "sku-a", 1));
        Assert.Equal(["sku-b"], ProductSignals.CartProducts(new Profile("user-cart").WithEvents(events, events.Count)));

        events.Add(Cart(4, EventTypes.AddToCart, "sku-a", 1));
        Assert.Equal(["sku-a", "sku-b"], ProductSignals.CartProducts(new Profile("user-cart").WithEvents(events, events.Count)));
    }

    // The newest ScanHorizon events within 8 half-lives, as affinity reads them.
    private static List<string> TopEventByEvent(Profile p, bool categories)
    {
        var horizon = Now.UtcTicks - (8 * ProductSignals.AffinityHalfLife.Ticks);
        var scores = new Dictionary<string, double>();
        var events = p.Events;
        for (var i = events.Count - 1; i >= Math.Max(0, events.Count - DerivedScores.ScanHorizon) && events.TicksAt(i) > horizon; i--)
        {
            var weight = ProductSignals.Weight(events.TypeAt(i));
            if (weight > 0 && events.TicksAt(i) <= Now.UtcTicks && (categories ? events.CategoryAt(i) : events.ProductIdAt(i)) is { } key)
            {
                scores[key] = scores.GetValueOrDefault(key) + (weight * Math.Pow(0.5, (Now.UtcTicks - events.TicksAt(i)) / (double)ProductSignals.AffinityHalfLife.Ticks));
            }
        }

        return [.. scores.OrderByDescending(s => s.Value).ThenBy(s => s.Key, StringComparer.Ordinal).Take(5).Select(s => s.Key)];
    }

    private static (string? Top, double Score, long Last) AffinityEventByEvent(Profile p, bool byProduct)
    {
        var half = ProductSignals.AffinityHalfLife;
        var horizon = Now.UtcTicks - (8 * half.Ticks);
        var scores = new Dictionary<string, (double Score, long Last)>();
        var events = p.Events;
        for (var i = events.Count - 1; i >= Math.Max(0, events.Count - DerivedScores.ScanHorizon) && events.TicksAt(i) > horizon; i--)
        {
            var weight = ProductSignals.Weight(events.TypeAt(i));
            if (weight > 0 && (byProduct ? events.ProductIdAt(i) : events.CategoryAt(i)) is { } key)
            {
                var current = scores.GetValueOrDefault(key);
                scores[key] = (current.Score + (weight * Math.Pow(0.5, (Now.UtcTicks - events.TicksAt(i)) / (double)half.Ticks)), Math.Max(current.Last, events.TicksAt(i)));
            }
        }

        if (scores.Count == 0)
        {
            return (null, 0, long.MinValue);
        }

        var best = scores.MaxBy(kv => (kv.Value.Score, kv.Key));
        return (best.Key, best.Value.Score, best.Value.Last);
    }
}
