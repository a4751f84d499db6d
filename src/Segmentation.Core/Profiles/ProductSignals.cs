using Segmentation.Core.Events;

namespace Segmentation.Core.Profiles;

/// <summary>The user's last purchase, as templates see it.</summary>
/// <param name="ProductId">Its (first) product, if the order named one.</param>
/// <param name="Category">Its category, if known.</param>
/// <param name="Value">Its value.</param>
/// <param name="Ticks">When (UTC ticks).</param>
public sealed record LastPurchase(string? ProductId, string? Category, double Value, long Ticks);

/// <summary>
/// What a profile knows about products, for data-to-action content ("product viewed → similar products, cart
/// abandoned → reminder, repeat purchase → upsell"): recently viewed products, the cart's products, the last purchase,
/// and the categories and products the user cares most about by decayed affinity. Pure functions of the profile's
/// events, each bounded in size, computed only when a template reads them.
/// </summary>
public static class ProductSignals
{
    /// <summary>Most products or categories in any list.</summary>
    public const int MaxItems = 10;

    /// <summary>Half-life of an interaction's weight in affinities.</summary>
    public static readonly TimeSpan AffinityHalfLife = TimeSpan.FromDays(30);

    /// <summary>Weight of each interaction in affinities: a purchase says more than a view.</summary>
    public static double Weight(string type) => type switch
    {
        EventTypes.Purchase => 5,
        EventTypes.AddToCart => 3,
        EventTypes.ProductView => 1,
        _ => 0,
    };

    /// <summary>Distinct products viewed, newest first (at most <paramref name="max"/>).</summary>
    public static List<string> RecentlyViewed(Profile? profile, int max = MaxItems)
    {
        var result = new List<string>();
        if (profile is null)
        {
            return result;
        }

        var events = profile.Events;
        for (var i = events.Count - 1; i >= 0 && result.Count < max; i--)
        {
            if (events.TypeAt(i) == EventTypes.ProductView && events.ProductIdAt(i) is { } product && !result.Contains(product))
            {
                result.Add(product);
            }
        }

        return result;
    }

    /// <summary>Products added to the cart since the last purchase and not removed, newest first (at most <paramref name="max"/>).</summary>
    public static List<string> CartProducts(Profile? profile, int max = MaxItems)
    {
        var result = new List<string>();
        if (profile is null || profile.CartItems <= 0)
        {
            return result;
        }

        var removed = new HashSet<string>(StringComparer.Ordinal);
        var events = profile.Events;
        for (var i = events.Count - 1; i >= 0 && result.Count < max; i--)
        {
            var type = events.TypeAt(i);
            if (type == EventTypes.Purchase)
            {
                break; // the cart before it was checked out
            }

            if (events.ProductIdAt(i) is not { } product)
            {
                continue;
            }

            if (type == EventTypes.RemoveFromCart)
            {
                removed.Add(product);
            }
            else if (type == EventTypes.AddToCart && !removed.Contains(product) && !result.Contains(product))
            {
                result.Add(product);
            }
        }

        return result;
    }

    /// <summary>The last purchase, or null.</summary>
    public static LastPurchase? Last(Profile? profile)
    {
        if (profile is null || profile.Orders == 0)
        {
            return null;
        }

        var events = profile.Events;
        for (var i = events.Count - 1; i >= 0; i--)
        {
            if (events.TypeAt(i) == EventTypes.Purchase)
            {
                var e = events[i];
                return new LastPurchase(e.ProductId, e.Category, e.Value, e.Ticks);
            }
        }

        return null;
    }

    /// <summary>Products the user has bought (any time the profile remembers).</summary>
    public static HashSet<string> Purchased(Profile? profile)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        if (profile is null)
        {
            return result;
        }

        var events = profile.Events;
        for (var i = 0; i < events.Count; i++)
        {
            if (events.TypeAt(i) == EventTypes.Purchase && events.ProductIdAt(i) is { } product)
            {
                result.Add(product);
            }
        }

        return result;
    }

    /// <summary>
    /// The top products (<paramref name="categories"/> false) or categories by affinity: each view, add to cart and
    /// purchase weighs 1, 3 and 5, halved every 30 days; ties by name. Time scales every weight alike, so the order
    /// never changes with time alone (the decision stays valid).
    /// </summary>
    public static List<string> Top(Profile? profile, bool categories, long nowTicks, int max = 5)
    {
        if (profile is null)
        {
            return [];
        }

        var scores = new Dictionary<string, double>(StringComparer.Ordinal);
        var events = profile.Events;
        for (var i = 0; i < events.Count; i++)
        {
            var weight = Weight(events.TypeAt(i));
            if (weight == 0 || (categories ? events.CategoryAt(i) : events.ProductIdAt(i)) is not { } key)
            {
                continue;
            }

            var age = Math.Max(0, nowTicks - events.TicksAt(i));
            scores[key] = scores.GetValueOrDefault(key) + (weight * Math.Pow(0.5, age / (double)AffinityHalfLife.Ticks));
        }

        return [.. scores.OrderByDescending(s => s.Value).ThenBy(s => s.Key, StringComparer.Ordinal).Take(max).Select(s => s.Key)];
    }
}
