using Segmentation.Core.Events;

namespace Segmentation.Core.Tests.Support;

/// <summary>Behavioural events as the tests write them: one builder, shared, instead of a copy per test class.</summary>
public static class TestEvents
{
    /// <summary>
    /// An event of <paramref name="type"/> for <paramref name="user"/> at <paramref name="at"/>, shaped as a storefront
    /// sends it: purchases and refunds carry an order id, product views a product and a category, cart additions a line;
    /// the session is one of three per user, the country GB.
    /// </summary>
    public static BehaviourEvent Make(string id, string user, string type, DateTimeOffset at, double value = 0, string anonymous = "") => new()
    {
        EventId = id,
        Type = type,
        UserId = user,
        AnonymousId = anonymous,
        Timestamp = at,
        Context = new EventContext("web", "mobile", "s-" + user + "-" + (at.Ticks % 3), "product", Country: "GB"),
        Value = value,
        OrderId = type is EventTypes.Purchase or EventTypes.Refund ? "o-" + id : null,
        Category = type == EventTypes.ProductView ? "cat-" + (id.Length % 4) : null,
        ProductId = type is EventTypes.ProductView or EventTypes.AddToCart ? "sku-" + id : null,
        Lines = type is EventTypes.AddToCart ? [new OrderLine("sku", null, "toys", 2, 5)] : [],
    };
}
