using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests.Support;

/// <summary>Events as the service tests send them: one builder, shared.</summary>
public static class ProtoEvents
{
    /// <summary>An event of <paramref name="type"/> for <paramref name="user"/> (now when <paramref name="at"/> is null), with an order id on purchases and a product on views and cart additions.</summary>
    public static Event Make(string user, string id, string type, DateTimeOffset? at = null, double value = 0) => new()
    {
        EventId = id,
        Type = type,
        UserId = user,
        Timestamp = Timestamp.FromDateTimeOffset(at ?? DateTimeOffset.UtcNow),
        Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s-" + user, PageType = "product" },
        Value = value,
        OrderId = type == "purchase" ? "o-" + id : "",
        ProductId = type is "product_view" or "add_to_cart" ? "sku-1" : "",
    };
}
