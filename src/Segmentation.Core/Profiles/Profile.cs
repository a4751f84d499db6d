using System.Collections.Immutable;
using Segmentation.Core.Events;

namespace Segmentation.Core.Profiles;

/// <summary>An email send and whether it was opened or clicked (for "opened the last N emails").</summary>
public readonly record struct EmailSend(long Ticks, string CampaignId);

/// <summary>
/// An immutable snapshot of one user's profile: attributes with provenance (F1), event history and
/// the aggregates derived from it on write. Writers build a new snapshot; readers never lock.
/// </summary>
public sealed record Profile
{
    /// <summary>Creates an empty profile.</summary>
    public Profile(string userId) => UserId = userId;

    /// <summary>The profile key: user id or anonymous id.</summary>
    public string UserId { get; }

    /// <summary>Globally increasing version; a new value on every change. Part of the decision cache key.</summary>
    public long Version { get; init; }

    /// <summary>Stored attributes by name. Each name holds the value of the most reliable layer written (F2).</summary>
    public ImmutableDictionary<string, ProfileAttribute> Attributes { get; init; } = ImmutableDictionary<string, ProfileAttribute>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>Event history per event type.</summary>
    public ImmutableDictionary<string, EventSeries> Events { get; init; } = ImmutableDictionary<string, EventSeries>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>Ids of recorded events (de-duplication of client retries).</summary>
    public ImmutableHashSet<string> EventIds { get; init; } = ImmutableHashSet<string>.Empty.WithComparer(StringComparer.Ordinal);

    /// <summary>Distinct session ids seen.</summary>
    public ImmutableHashSet<string> SessionIds { get; init; } = ImmutableHashSet<string>.Empty.WithComparer(StringComparer.Ordinal);

    /// <summary>Total number of recorded events.</summary>
    public int TotalEvents { get; init; }

    /// <summary>First event time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long FirstSeenTicks { get; init; } = long.MinValue;

    /// <summary>Last event time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long LastSeenTicks { get; init; } = long.MinValue;

    /// <summary>Number of purchases.</summary>
    public int Orders { get; init; }

    /// <summary>Purchase value minus refunded value.</summary>
    public double Revenue { get; init; }

    /// <summary>Revenue per order, 0 without orders.</summary>
    public double AverageOrderValue => Orders == 0 ? 0 : Revenue / Orders;

    /// <summary>First purchase time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long FirstPurchaseTicks { get; init; } = long.MinValue;

    /// <summary>Last purchase time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long LastPurchaseTicks { get; init; } = long.MinValue;

    /// <summary>Items in the open cart.</summary>
    public int CartItems { get; init; }

    /// <summary>Last cart change (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long CartUpdatedTicks { get; init; } = long.MinValue;

    /// <summary>Email sends in time order.</summary>
    public ImmutableList<EmailSend> EmailSends { get; init; } = [];

    /// <summary>Campaign ids with at least one open.</summary>
    public ImmutableHashSet<string> OpenedCampaigns { get; init; } = ImmutableHashSet<string>.Empty.WithComparer(StringComparer.Ordinal);

    /// <summary>Campaign ids with at least one click.</summary>
    public ImmutableHashSet<string> ClickedCampaigns { get; init; } = ImmutableHashSet<string>.Empty.WithComparer(StringComparer.Ordinal);

    /// <summary>The events of one type, or an empty series.</summary>
    public EventSeries Series(string type) => Events.TryGetValue(type, out var s) ? s : EventSeries.Empty;

    /// <summary>The stored value of an attribute, or null.</summary>
    public object? Trait(string name) => Attributes.TryGetValue(name, out var a) ? a.Value : null;

    /// <summary>
    /// Applies an event and returns the new snapshot, or this instance when the event id was already
    /// recorded (idempotent retries). Aggregates and observed attributes are updated here, on write.
    /// </summary>
    public Profile Apply(BehaviourEvent e, long newVersion)
    {
        if (EventIds.Contains(e.EventId))
        {
            return this;
        }

        var ticks = e.Timestamp.UtcTicks;
        var next = this with
        {
            Version = newVersion,
            EventIds = EventIds.Add(e.EventId),
            SessionIds = SessionIds.Add(e.Context.SessionId),
            TotalEvents = TotalEvents + 1,
            FirstSeenTicks = FirstSeenTicks == long.MinValue ? ticks : Math.Min(FirstSeenTicks, ticks),
            LastSeenTicks = Math.Max(LastSeenTicks, ticks),
            Events = Events.SetItem(e.Type, Series(e.Type).Add(ticks, EffectiveValue(e))),
        };

        switch (e.Type)
        {
            case EventTypes.Purchase:
                next = next with
                {
                    Orders = Orders + 1,
                    Revenue = Revenue + EffectiveValue(e),
                    FirstPurchaseTicks = FirstPurchaseTicks == long.MinValue ? ticks : Math.Min(FirstPurchaseTicks, ticks),
                    LastPurchaseTicks = Math.Max(LastPurchaseTicks, ticks),
                    CartItems = ticks >= CartUpdatedTicks ? 0 : CartItems,
                };
                break;
            case EventTypes.Refund:
                next = next with { Revenue = Revenue - EffectiveValue(e) };
                break;
            case EventTypes.AddToCart:
                next = next with { CartItems = CartItems + Quantity(e), CartUpdatedTicks = Math.Max(CartUpdatedTicks, ticks) };
                break;
            case EventTypes.RemoveFromCart:
                next = next with { CartItems = Math.Max(0, CartItems - Quantity(e)), CartUpdatedTicks = Math.Max(CartUpdatedTicks, ticks) };
                break;
            case EventTypes.EmailSend when !string.IsNullOrEmpty(e.CampaignId):
                next = next with { EmailSends = InsertSend(EmailSends, new EmailSend(ticks, e.CampaignId)) };
                break;
            case EventTypes.EmailOpen when !string.IsNullOrEmpty(e.CampaignId):
                next = next with { OpenedCampaigns = OpenedCampaigns.Add(e.CampaignId) };
                break;
            case EventTypes.EmailClick when !string.IsNullOrEmpty(e.CampaignId):
                next = next with { ClickedCampaigns = ClickedCampaigns.Add(e.CampaignId), OpenedCampaigns = OpenedCampaigns.Add(e.CampaignId) };
                break;
            case EventTypes.ProductView when !string.IsNullOrEmpty(e.Category):
                next = next.WithObserved(ObservedAttributes.LastViewedCategory, e.Category, e.Context.Source, e.Timestamp);
                break;
        }

        if (!string.IsNullOrEmpty(e.Context.Country))
        {
            next = next.WithObserved(ObservedAttributes.Country, e.Context.Country, e.Context.Source, e.Timestamp);
        }

        return next;
    }

    /// <summary>
    /// Sets an attribute unless a more reliable layer already holds it (F2). Within the same layer,
    /// the later write wins. Returns false when the write was ignored.
    /// </summary>
    public bool TrySetAttribute(ProfileAttribute attribute, long newVersion, out Profile result)
    {
        if (Attributes.TryGetValue(attribute.Name, out var existing) &&
            (existing.Layer > attribute.Layer || (existing.Layer == attribute.Layer && existing.UpdatedAt > attribute.UpdatedAt)))
        {
            result = this;
            return false;
        }

        result = this with { Version = newVersion, Attributes = Attributes.SetItem(attribute.Name, attribute) };
        return true;
    }

    private Profile WithObserved(string name, string value, string source, DateTimeOffset at) =>
        TrySetAttribute(new ProfileAttribute(name, value, AttributeLayer.FirstParty, source, at), Version, out var p) ? p : this;

    private static double EffectiveValue(BehaviourEvent e)
    {
        if (e.Value > 0 || e.Lines.Count == 0)
        {
            return e.Value;
        }

        var sum = 0d;
        foreach (var line in e.Lines)
        {
            sum += line.Quantity * line.UnitPrice;
        }

        return Math.Round(sum, 2);
    }

    private static int Quantity(BehaviourEvent e)
    {
        if (e.Lines.Count == 0)
        {
            return 1;
        }

        var q = 0;
        foreach (var line in e.Lines)
        {
            q += line.Quantity;
        }

        return q;
    }

    private static ImmutableList<EmailSend> InsertSend(ImmutableList<EmailSend> sends, EmailSend send)
    {
        var i = sends.Count;
        while (i > 0 && sends[i - 1].Ticks > send.Ticks)
        {
            i--;
        }

        return sends.Insert(i, send);
    }
}

/// <summary>Names of attributes the service observes from events (first-party layer).</summary>
public static class ObservedAttributes
{
    /// <summary>Category of the last product viewed.</summary>
    public const string LastViewedCategory = "last_viewed_category";

    /// <summary>Country seen on the user's events.</summary>
    public const string Country = "country";
}
