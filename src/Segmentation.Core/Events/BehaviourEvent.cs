namespace Segmentation.Core.Events;

/// <summary>Where and how an event happened.</summary>
public sealed record EventContext(string Source, string Device, string SessionId, string PageType, string? PagePath = null, string? Country = null);

/// <summary>One line of an order or cart change.</summary>
public sealed record OrderLine(string ProductId, string? Name, string? Category, int Quantity, double UnitPrice);

/// <summary>
/// A validated behavioural event (first-party data). Build one through <see cref="EventValidator"/>
/// so that the invariants in its documentation hold.
/// </summary>
public sealed record BehaviourEvent
{
    /// <summary>Client-generated id used for de-duplication.</summary>
    public required string EventId { get; init; }

    /// <summary>Event type, one of <see cref="EventTypes.BuiltIn"/> or <c>custom.&lt;name&gt;</c>.</summary>
    public required string Type { get; init; }

    /// <summary>Known user id, or empty for anonymous visitors.</summary>
    public string UserId { get; init; } = "";

    /// <summary>Anonymous visitor or session id, or empty.</summary>
    public string AnonymousId { get; init; } = "";

    /// <summary>The profile the event belongs to: the user id, else the anonymous id.</summary>
    public string ProfileKey => UserId.Length > 0 ? UserId : AnonymousId;

    /// <summary>When the event happened.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>Where it happened.</summary>
    public required EventContext Context { get; init; }

    /// <summary>Monetary value, zero or more and finite.</summary>
    public double Value { get; init; }

    /// <summary>ISO 4217 currency code.</summary>
    public string? Currency { get; init; }

    /// <summary>Order id for purchases and refunds.</summary>
    public string? OrderId { get; init; }

    /// <summary>Order or cart lines.</summary>
    public IReadOnlyList<OrderLine> Lines { get; init; } = [];

    /// <summary>Product id for product and cart events.</summary>
    public string? ProductId { get; init; }

    /// <summary>Product or content category.</summary>
    public string? Category { get; init; }

    /// <summary>Campaign or email send id.</summary>
    public string? CampaignId { get; init; }

    /// <summary>Search query for search events.</summary>
    public string? SearchQuery { get; init; }

    /// <summary>Custom properties (none: one shared empty map).</summary>
    public IReadOnlyDictionary<string, object> Properties { get; init; } = NoProperties;

    /// <summary>The shared empty map of properties.</summary>
    public static IReadOnlyDictionary<string, object> NoProperties { get; } = System.Collections.Frozen.FrozenDictionary<string, object>.Empty;
}

/// <summary>
/// A property value the request gave but no value can hold (a timestamp out of range): kept in place of the value so
/// the event's validation rejects that event, naming the property, instead of the value being dropped unseen.
/// </summary>
/// <param name="Reason">What is wrong, as the violation says it.</param>
public sealed record InvalidPropertyValue(string Reason);
