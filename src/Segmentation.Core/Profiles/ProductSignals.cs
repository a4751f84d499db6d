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
/// and the weights of interactions in the decayed affinities scoring ranks them by. Pure functions of the profile's
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

    /// <summary><see cref="Weight"/> of a scanned event, by its type's code: the codes are looked up once per scan.</summary>
    internal readonly struct InteractionWeights()
    {
        private readonly int _view = EventLog.CodeOf(EventTypes.ProductView);
        private readonly int _cart = EventLog.CodeOf(EventTypes.AddToCart);
        private readonly int _purchase = EventLog.CodeOf(EventTypes.Purchase);

        public double Of(ref EventLog.BackwardScan scan)
        {
            var type = scan.Type;
            return scan.Is(type, _view, EventTypes.ProductView) ? Weight(EventTypes.ProductView)
                : scan.Is(type, _cart, EventTypes.AddToCart) ? Weight(EventTypes.AddToCart)
                : scan.Is(type, _purchase, EventTypes.Purchase) ? Weight(EventTypes.Purchase)
                : 0;
        }
    }

    /// <summary>Distinct products viewed, newest first (at most <paramref name="max"/>).</summary>
    public static List<string> RecentlyViewed(Profile? profile, int max = MaxItems)
    {
        var result = new List<string>();
        if (profile is null)
        {
            return result;
        }

        var view = EventLog.CodeOf(EventTypes.ProductView);
        var scan = profile.Events.Backward(int.MaxValue);
        while (result.Count < max && scan.MoveNext())
        {
            if (scan.Is(scan.Type, view, EventTypes.ProductView) && scan.Text(scan.ProductId) is { } product && !result.Contains(product))
            {
                result.Add(product);
            }
        }

        return result;
    }

    /// <summary>
    /// Products in the cart — added since the last purchase, fewer removed than added — newest addition first (at most
    /// <paramref name="max"/>).
    /// </summary>
    public static List<string> CartProducts(Profile? profile, int max = MaxItems)
    {
        var result = new List<string>();
        if (profile is null || profile.CartItems <= 0)
        {
            return result;
        }

        var (purchase, remove, add) = (EventLog.CodeOf(EventTypes.Purchase), EventLog.CodeOf(EventTypes.RemoveFromCart), EventLog.CodeOf(EventTypes.AddToCart));
        var scan = profile.Events.Backward(int.MaxValue);
        while (result.Count < max && scan.MoveNext())
        {
            var type = scan.Type;
            if (scan.Is(type, purchase, EventTypes.Purchase))
            {
                break; // the cart before it was checked out
            }

            if (scan.Is(type, remove, EventTypes.RemoveFromCart))
            {
                return CartByQuantity(profile.Events, max); // what is left of a product depends on how many of it were added and removed
            }

            if (scan.Is(type, add, EventTypes.AddToCart) && scan.Text(scan.ProductId) is { } product && !result.Contains(product))
            {
                result.Add(product);
            }
        }

        return result;
    }

    // The cart since the last purchase, replayed in order with each event's quantity: the slower reading, for a cart
    // something was removed from.
    private static List<string> CartByQuantity(EventLog events, int max)
    {
        var start = events.Count;
        while (start > 0 && events.TypeAt(start - 1) != EventTypes.Purchase)
        {
            start--;
        }

        var quantities = new int[events.Count - start];
        events.ReadQuantities(start, quantities);
        var held = new Dictionary<string, (long Quantity, int LastAdded)>(StringComparer.Ordinal);
        for (var i = start; i < events.Count; i++)
        {
            var type = events.TypeAt(i);
            if (events.ProductIdAt(i) is not { } product || type is not (EventTypes.AddToCart or EventTypes.RemoveFromCart))
            {
                continue;
            }

            var (quantity, lastAdded) = held.GetValueOrDefault(product);
            held[product] = type == EventTypes.AddToCart
                ? (quantity + quantities[i - start], i)
                : (Math.Max(0, quantity - quantities[i - start]), lastAdded);
        }

        return [.. held.Where(p => p.Value.Quantity > 0).OrderByDescending(p => p.Value.LastAdded).Take(max).Select(p => p.Key)];
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
                return new LastPurchase(events.ProductIdAt(i), events.CategoryAt(i), events.ValueAt(i), events.TicksAt(i)); // not the whole event: that decodes the log up to it
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

        var purchase = EventLog.CodeOf(EventTypes.Purchase);
        var scan = profile.Events.Backward(int.MaxValue);
        while (scan.MoveNext())
        {
            if (scan.Is(scan.Type, purchase, EventTypes.Purchase) && scan.Text(scan.ProductId) is { } product)
            {
                result.Add(product);
            }
        }

        return result;
    }
}
