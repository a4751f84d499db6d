using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>An email send (for "opened N of the last M emails").</summary>
public readonly record struct EmailSend(long Ticks, string CampaignId);

/// <summary>
/// Aggregates over a profile's events, computed on write by folding events in time order. Folding
/// the same events in the same order always gives the same aggregates, so out-of-order delivery and
/// identity merges simply replay (<see cref="Replay(IReadOnlyList{StoredEvent})"/>) and equal what in-order delivery gives.
/// </summary>
public sealed record ProfileAggregates
{
    /// <summary>Aggregates of no events.</summary>
    public static readonly ProfileAggregates Empty = new();

    /// <summary>Event history per type (timestamps and value prefix sums) for windowed counts and sums.</summary>
    public EventSeriesDictionary Series { get; init; } = EventSeriesDictionary.Empty;


    /// <summary>Number of events.</summary>
    public int TotalEvents { get; init; }

    /// <summary>First event time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long FirstSeenTicks { get; init; } = long.MinValue;

    /// <summary>Last event time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long LastSeenTicks { get; init; } = long.MinValue;

    /// <summary>Number of purchases.</summary>
    public int Orders { get; init; }

    /// <summary>Purchase value minus refunded value.</summary>
    public double Revenue { get; init; }

    /// <summary>
    /// A sum of money as the rules compare it: rounded to 6 decimals after each addition, so binary fractions never
    /// leave an amount just below the one it adds up to (293.07 + 462.77 + 244.16 is 1000, not 999.9999999999999,
    /// and a rule "revenue ≥ 1000" holds), while amounts keep every decimal a currency has.
    /// </summary>
    public static double Money(double amount) => Math.Round(amount, 6);

    /// <summary>First purchase time or <see cref="long.MinValue"/>.</summary>
    public long FirstPurchaseTicks { get; init; } = long.MinValue;

    /// <summary>Last purchase time or <see cref="long.MinValue"/>.</summary>
    public long LastPurchaseTicks { get; init; } = long.MinValue;

    /// <summary>Items in the open cart: added minus removed since the last purchase.</summary>
    public int CartItems { get; init; }

    /// <summary>Last cart change or <see cref="long.MinValue"/>.</summary>
    public long CartUpdatedTicks { get; init; } = long.MinValue;

    /// <summary>Most recent email sends kept (rules read at most the last 100; the rest leaves room for sends dated in the future).</summary>
    public const int MaxEmailSends = 128;

    /// <summary>The last <see cref="MaxEmailSends"/> email sends, in time order.</summary>
    public ImmutableArray<EmailSend> EmailSends { get; init; } = [];

    /// <summary>Campaigns with an open (a click implies an open).</summary>
    public StringSet OpenedCampaigns { get; init; } = StringSet.Empty;

    /// <summary>Campaigns with a click.</summary>
    public StringSet ClickedCampaigns { get; init; } = StringSet.Empty;

    // The newest MaxEmailSends sends.
    private static ImmutableArray<EmailSend> Keep(ImmutableArray<EmailSend> sends) =>
        sends.Length <= MaxEmailSends ? sends : ImmutableArray.Create(sends, sends.Length - MaxEmailSends, MaxEmailSends);

    /// <summary>Folds one event that is not earlier than any event folded so far.</summary>
    public ProfileAggregates Fold(StoredEvent e)
    {
        // Campaign ids are kept: one shared instance each, except decision ids (outcomes carry them here), which are unique.
        e = e with { CampaignId = StringPool.ShareCampaign(e.CampaignId) };
        var next = this with
        {
            Series = Series.Add(e.Type, e.Ticks, e.Value),
            TotalEvents = TotalEvents + 1,
            FirstSeenTicks = FirstSeenTicks == long.MinValue ? e.Ticks : Math.Min(FirstSeenTicks, e.Ticks),
            LastSeenTicks = Math.Max(LastSeenTicks, e.Ticks),
        };

        return e.Type switch
        {
            EventTypes.Purchase => next with
            {
                Orders = Orders + 1,
                Revenue = Money(Revenue + e.Value),
                FirstPurchaseTicks = FirstPurchaseTicks == long.MinValue ? e.Ticks : Math.Min(FirstPurchaseTicks, e.Ticks),
                LastPurchaseTicks = Math.Max(LastPurchaseTicks, e.Ticks),
                CartItems = 0,
            },
            EventTypes.Refund => next with { Revenue = Money(Revenue - e.Value) },
            EventTypes.AddToCart => next with { CartItems = (int)Math.Min(int.MaxValue, (long)CartItems + e.Quantity), CartUpdatedTicks = e.Ticks },
            EventTypes.RemoveFromCart => next with { CartItems = Math.Max(0, CartItems - e.Quantity), CartUpdatedTicks = e.Ticks },
            EventTypes.EmailSend when e.CampaignId is not null => next with { EmailSends = Keep(EmailSends.Add(new EmailSend(e.Ticks, e.CampaignId))) },
            EventTypes.EmailOpen when e.CampaignId is not null => next with { OpenedCampaigns = OpenedCampaigns.Add(e.CampaignId) },
            EventTypes.EmailClick when e.CampaignId is not null => next with
            {
                ClickedCampaigns = ClickedCampaigns.Add(e.CampaignId),
                OpenedCampaigns = OpenedCampaigns.Add(e.CampaignId),
            },
            _ => next,
        };
    }

    /// <summary>
    /// Aggregates of <paramref name="events"/>, which must be in time order: equal to folding them one by
    /// one (<see cref="FoldAll"/>), but built in one pass with mutable builders, which is what makes
    /// restoring a million profiles from a snapshot fast.
    /// </summary>
    public static ProfileAggregates Replay(IReadOnlyList<StoredEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        for (var i = 1; i < events.Count; i++)
        {
            if (events[i].Ticks < events[i - 1].Ticks)
            {
                return FoldAll(events); // not in time order: the fold inserts each event by its time
            }
        }

        if (events.Count == 0)
        {
            return Empty;
        }

        EmailSend[]? sends = null; // exactly as many as there are (a restore replays a million profiles)
        var sent = 0;
        List<string>? opened = null, clicked = null;
        int orders = 0, cartItems = 0;
        double revenue = 0;
        long firstPurchase = long.MinValue, lastPurchase = long.MinValue, cartUpdated = long.MinValue;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            var campaign = StringPool.ShareCampaign(e.CampaignId);
            switch (e.Type)
            {
                case EventTypes.Purchase:
                    orders++;
                    revenue = Money(revenue + e.Value);
                    firstPurchase = firstPurchase == long.MinValue ? e.Ticks : Math.Min(firstPurchase, e.Ticks);
                    lastPurchase = Math.Max(lastPurchase, e.Ticks);
                    cartItems = 0;
                    break;
                case EventTypes.Refund:
                    revenue = Money(revenue - e.Value);
                    break;
                case EventTypes.AddToCart:
                    cartItems = (int)Math.Min(int.MaxValue, (long)cartItems + e.Quantity);
                    cartUpdated = e.Ticks;
                    break;
                case EventTypes.RemoveFromCart:
                    cartItems = Math.Max(0, cartItems - e.Quantity);
                    cartUpdated = e.Ticks;
                    break;
                case EventTypes.EmailSend when e.CampaignId is not null:
                    (sends ??= new EmailSend[CountSends(events, i)])[sent++] = new EmailSend(e.Ticks, campaign!);
                    break;
                case EventTypes.EmailOpen when e.CampaignId is not null:
                    (opened ??= []).Add(campaign!);
                    break;
                case EventTypes.EmailClick when e.CampaignId is not null:
                    (clicked ??= []).Add(e.CampaignId);
                    (opened ??= []).Add(campaign!);
                    break;
            }
        }

        return new ProfileAggregates
        {
            Series = EventSeriesDictionary.FromEvents(events),
            TotalEvents = events.Count,
            FirstSeenTicks = events[0].Ticks,
            LastSeenTicks = events[^1].Ticks,
            Orders = orders,
            Revenue = revenue,
            FirstPurchaseTicks = firstPurchase,
            LastPurchaseTicks = lastPurchase,
            CartItems = cartItems,
            CartUpdatedTicks = cartUpdated,
            EmailSends = sends is null ? Empty.EmailSends : Keep(ImmutableCollectionsMarshal.AsImmutableArray(sends)),
            OpenedCampaigns = opened is null ? StringSet.Empty : StringSet.Of(opened),
            ClickedCampaigns = clicked is null ? StringSet.Empty : StringSet.Of(clicked),
        };
    }

    // The email sends Replay keeps from events[from] on.
    private static int CountSends(IReadOnlyList<StoredEvent> events, int from)
    {
        var count = 0;
        for (var i = from; i < events.Count; i++)
        {
            if (events[i] is { Type: EventTypes.EmailSend, CampaignId: not null })
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Aggregates of <paramref name="events"/> folded one by one (any order).</summary>
    public static ProfileAggregates FoldAll(IEnumerable<StoredEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var result = Empty;
        foreach (var e in events)
        {
            result = result.Fold(e);
        }

        return result;
    }
}
