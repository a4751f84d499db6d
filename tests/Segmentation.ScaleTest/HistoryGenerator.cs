using System.Globalization;
using Segmentation.Core.Events;
using Segmentation.Core.Requests;

namespace Segmentation.ScaleTest;

/// <summary>
/// Deterministic synthetic shoppers: profile <c>u</c> always gets the same 3 to 15 events (from its own
/// seed, so the history does not depend on threading), first seen within the last 400 days, in time
/// order: page and product views, searches, carts, some purchases with values and lines, email sends
/// and opens, over a few sessions.
/// </summary>
internal sealed class HistoryGenerator(int seed, DateTimeOffset now)
{
    /// <summary>The storefront request every Decide sends: a product page on a phone in the UK.</summary>
    public static readonly RequestContext Request = new(Channel: "web", Device: "mobile", Country: "GB", Locale: "en-GB", Source: "google", PageType: "product", PagePath: "/gifts/christmas/lanterns");

    private static readonly string[] Categories =
        ["home_decor", "christmas", "kitchen", "garden", "stationery", "toys", "candles", "textiles", "party", "bags", "jewellery", "storage"];

    private static readonly string[] Devices = ["mobile", "mobile", "desktop", "tablet"];

    private static readonly string[] Sources = ["web", "web", "app", "email"];

    private static readonly string[] Searches = ["gift for mum", "christmas lights", "tea towel", "candle holder", "party bunting", "lunch bag"];

    private const long Day = TimeSpan.TicksPerDay;

    /// <summary>The user id of profile number <paramref name="u"/>.</summary>
    public static string UserId(int u) => "u" + u.ToString("D7", CultureInfo.InvariantCulture);

    /// <summary>Profile <paramref name="u"/>'s history, oldest first.</summary>
    public List<BehaviourEvent> Events(int u, string prefix = "u")
    {
        var random = new Random(unchecked((seed * 1_000_003) + u));
        var user = prefix == "u" ? UserId(u) : prefix + u.ToString(CultureInfo.InvariantCulture);
        var count = random.Next(3, 16);
        var firstSeen = now.UtcTicks - (long)(random.NextDouble() * 400 * Day) - TimeSpan.TicksPerHour;
        var span = now.UtcTicks - firstSeen;
        var times = new long[count];
        for (var i = 0; i < count; i++)
        {
            times[i] = firstSeen + (long)(random.NextDouble() * span);
        }

        Array.Sort(times);
        times[0] = firstSeen;
        var device = Devices[random.Next(Devices.Length)];
        var favourite = Categories[random.Next(Categories.Length)];
        var buyer = random.Next(100) < 45; // a bit under half the population ever buys
        var list = new List<BehaviourEvent>(count);
        var session = 0;
        var orders = 0;
        var campaign = -1;
        for (var i = 0; i < count; i++)
        {
            if (i == 0 || times[i] - times[i - 1] > TimeSpan.TicksPerMinute * 30)
            {
                session++;
            }

            var category = random.Next(100) < 60 ? favourite : Categories[random.Next(Categories.Length)];
            var product = $"sku-{category}-{random.Next(400)}";
            var roll = random.Next(100);
            var type = roll switch
            {
                < 28 => EventTypes.PageView,
                < 58 => EventTypes.ProductView,
                < 63 => EventTypes.Search,
                < 72 => EventTypes.AddToCart,
                < 82 => EventTypes.EmailSend,
                < 89 => campaign >= 0 ? EventTypes.EmailOpen : EventTypes.EmailSend,
                _ => buyer ? EventTypes.Purchase : EventTypes.ProductView,
            };
            if (type == EventTypes.EmailSend)
            {
                campaign++;
            }

            var quantity = 1 + random.Next(3);
            var unit = Math.Round(2 + (random.NextDouble() * 60), 2);
            var at = new DateTimeOffset(times[i], TimeSpan.Zero);
            var isEmail = type is EventTypes.EmailSend or EventTypes.EmailOpen;
            list.Add(new BehaviourEvent
            {
                EventId = $"{user}-e{i}",
                Type = type,
                UserId = user,
                Timestamp = at,
                Context = new EventContext(
                    isEmail ? "email" : Sources[random.Next(Sources.Length)],
                    device,
                    $"{user}-s{session}",
                    type switch
                    {
                        EventTypes.Purchase => "checkout",
                        EventTypes.AddToCart or EventTypes.ProductView => "product",
                        EventTypes.Search => "search",
                        _ => isEmail ? "email" : "home",
                    },
                    type == EventTypes.ProductView ? $"/{category}/{product}" : null,
                    "GB"),
                Value = type is EventTypes.Purchase or EventTypes.AddToCart ? Math.Round(unit * quantity, 2) : 0,
                Currency = type is EventTypes.Purchase or EventTypes.AddToCart ? "GBP" : null,
                OrderId = type == EventTypes.Purchase ? $"{user}-o{++orders}" : null,
                Lines = type == EventTypes.Purchase ? [new OrderLine(product, null, category, quantity, unit)] : [],
                ProductId = type is EventTypes.ProductView or EventTypes.AddToCart ? product : null,
                Category = type is EventTypes.ProductView or EventTypes.AddToCart or EventTypes.Purchase ? category : null,
                CampaignId = isEmail ? $"camp-{campaign}" : null,
                SearchQuery = type == EventTypes.Search ? Searches[random.Next(Searches.Length)] : null,
            });
        }

        return list;
    }
}
