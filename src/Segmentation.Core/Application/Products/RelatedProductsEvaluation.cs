using Segmentation.Core.Events;

namespace Segmentation.Core.Application.Products;

/// <summary>How well related products predicted what customers bought next.</summary>
/// <param name="Customers">Customers with purchases both before and after the split.</param>
/// <param name="RelatedHits">Of them, those who bought at least one of their top related products after the split.</param>
/// <param name="PopularHits">Those who bought at least one of the top popular products (they had not bought before).</param>
/// <param name="Products">Products the relations tracked when training ended.</param>
/// <param name="Split">The time orders were split at.</param>
public sealed record RelatedProductsScore(int Customers, int RelatedHits, int PopularHits, int Products, DateTimeOffset Split)
{
    /// <summary>Share of customers with a hit among their related products.</summary>
    public double RelatedHitRate => Customers == 0 ? 0 : RelatedHits / (double)Customers;

    /// <summary>Share of customers with a hit among the popular products.</summary>
    public double PopularHitRate => Customers == 0 ? 0 : PopularHits / (double)Customers;
}

/// <summary>
/// A hold-out test of <see cref="ProductRelations"/> on purchase history: orders before a time split train the
/// relations exactly as the service learns them (each order with its lines, after the customer's earlier orders);
/// for every customer who ordered both before and after the split, the top <c>k</c> products related to what they
/// bought before (newest first, never one they already bought) are compared with what they bought after. The
/// baseline recommends the <c>k</c> most popular products before the split that the customer had not bought.
/// </summary>
public static class RelatedProductsEvaluation
{
    /// <summary>Scores the relations on <paramref name="purchases"/> (any order), training on the first <paramref name="trainShare"/> of the time span.</summary>
    public static RelatedProductsScore Run(IReadOnlyList<BehaviourEvent> purchases, double trainShare = 0.8, int k = 5)
    {
        var orders = purchases.Where(e => e.Type == EventTypes.Purchase && e.UserId is not null).OrderBy(e => e.Timestamp).ToList();
        if (orders.Count == 0)
        {
            return new RelatedProductsScore(0, 0, 0, 0, default);
        }

        var split = orders[0].Timestamp + ((orders[^1].Timestamp - orders[0].Timestamp) * trainShare);
        var relations = new ProductRelations();
        var history = new Dictionary<string, List<string>>(StringComparer.Ordinal); // products bought before the split, oldest first
        foreach (var order in orders.TakeWhile(o => o.Timestamp < split))
        {
            var basket = Basket(order);
            var earlier = history.TryGetValue(order.UserId!, out var bought) ? Enumerable.Reverse(bought).Where(p => !basket.Contains(p)).Distinct().Take(5).ToList() : [];
            relations.ObservePurchase(basket, earlier);
            (history.TryGetValue(order.UserId!, out var list) ? list : history[order.UserId!] = []).AddRange(basket);
        }

        var later = orders.SkipWhile(o => o.Timestamp < split).GroupBy(o => o.UserId!).ToDictionary(g => g.Key, g => g.SelectMany(Basket).ToHashSet(StringComparer.Ordinal));
        var popular = relations.Popular(1000);
        int customers = 0, relatedHits = 0, popularHits = 0;
        var at = split.UtcTicks + 1;
        foreach (var (user, boughtAfter) in later)
        {
            if (!history.TryGetValue(user, out var before))
            {
                continue;
            }

            customers++;
            var owned = before.ToHashSet(StringComparer.Ordinal);
            var seeds = Enumerable.Reverse(before).Distinct().Take(10).ToList();
            var related = relations.Related(seeds, owned, k, at, out _);
            relatedHits += related.Any(boughtAfter.Contains) ? 1 : 0;
            popularHits += popular.Where(p => !owned.Contains(p)).Take(k).Any(boughtAfter.Contains) ? 1 : 0;
        }

        return new RelatedProductsScore(customers, relatedHits, popularHits, relations.Products, split);
    }

    private static List<string> Basket(BehaviourEvent order) =>
        [.. order.Lines.Select(l => l.ProductId).Append(order.ProductId).OfType<string>().Distinct(StringComparer.Ordinal).Take(ProductRelations.MaxBasket)];
}
