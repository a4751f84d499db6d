using Segmentation.Core.Events;

namespace Segmentation.Core.Profiles;

/// <summary>
/// The part of an accepted event a profile keeps: enough to recompute every aggregate by replay
/// (out-of-order delivery, identity merges) and nothing else (unknown or useless fields are not stored).
/// A value: profiles keep events in an <see cref="EventLog"/> (pooled strings by id, ids as UTF-8), and this
/// is the form they are written and read in, so decoding a snapshot or a log allocates no object per event.
/// </summary>
public readonly record struct StoredEvent(
    string EventId,
    string Type,
    long Ticks,
    double Value,
    int Quantity,
    string SessionId,
    string Source,
    string PageType,
    string? Category,
    string? ProductId,
    string? CampaignId,
    string? Country)
{
    /// <summary>Builds the stored form of a validated event.</summary>
    public static StoredEvent From(BehaviourEvent e)
    {
        var category = e.Category;
        if (category is null && e.Lines.Count > 0)
        {
            category = e.Lines[0].Category;
        }

        return new StoredEvent(
            e.EventId,
            e.Type,
            e.Timestamp.UtcTicks,
            EffectiveValue(e),
            TotalQuantity(e),
            e.Context.SessionId,
            e.Context.Source,
            e.Context.PageType,
            category,
            e.ProductId ?? (e.Lines.Count > 0 ? e.Lines[0].ProductId : null),
            e.CampaignId,
            e.Context.Country);
    }

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

    private static int TotalQuantity(BehaviourEvent e)
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
}
