using Segmentation.Contracts.V1;
using Segmentation.Core.Events;
using Segmentation.Core.Scoring;
using DomainContext = Segmentation.Core.Events.EventContext;
using DomainLine = Segmentation.Core.Events.OrderLine;

namespace Segmentation.Server.Mapping;

/// <summary>Maps events and profiles between protobuf and the domain. Validation happens in the domain.</summary>
internal static class ProfileMapper
{
    public static BehaviourEvent ToDomain(Event e)
    {
        var c = e.Context ?? new Contracts.V1.EventContext();
        return new BehaviourEvent
        {
            EventId = e.EventId,
            Type = e.Type,
            UserId = e.UserId,
            AnonymousId = e.AnonymousId,
            Timestamp = e.Timestamp?.ToDateTimeOffset() ?? default,
            Context = new DomainContext(c.Source, c.Device, c.SessionId, c.PageType, NullIfEmpty(c.PagePath), NullIfEmpty(c.Country)),
            Value = e.Value,
            Currency = NullIfEmpty(e.Currency),
            OrderId = NullIfEmpty(e.OrderId),
            Lines = e.Lines.Select(l => new DomainLine(l.ProductId, NullIfEmpty(l.Name), NullIfEmpty(l.Category), l.Quantity, l.UnitPrice)).ToList(),
            ProductId = NullIfEmpty(e.ProductId),
            Category = NullIfEmpty(e.Category),
            CampaignId = NullIfEmpty(e.CampaignId),
            SearchQuery = NullIfEmpty(e.SearchQuery),
            Properties = e.Properties
                .Select(p => (p.Key, Value: ValueMapper.ToDomain(p.Value)))
                .Where(p => p.Value is not null)
                .ToDictionary(p => p.Key, p => p.Value!, StringComparer.Ordinal),
        };
    }

    public static Contracts.V1.Profile ToProto(Core.Profiles.Profile p, RfmModel rfm)
    {
        var result = new Contracts.V1.Profile
        {
            UserId = p.UserId,
            Version = p.Version,
            Aggregates = new ProfileAggregates
            {
                FirstSeen = ValueMapper.Ticks(p.FirstSeenTicks),
                LastSeen = ValueMapper.Ticks(p.LastSeenTicks),
                Sessions = p.SessionIds.Count,
                Orders = p.Orders,
                Revenue = Math.Round(p.Revenue, 2),
                AverageOrderValue = Math.Round(p.AverageOrderValue, 2),
                FirstPurchaseAt = ValueMapper.Ticks(p.FirstPurchaseTicks),
                LastPurchaseAt = ValueMapper.Ticks(p.LastPurchaseTicks),
                CartItems = p.CartItems,
                RfmRecency = rfm.Recency(p),
                RfmFrequency = rfm.Frequency(p),
                RfmMonetary = rfm.Monetary(p),
            },
        };
        foreach (var a in p.Attributes.Values.OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            result.Attributes.Add(new Contracts.V1.ProfileAttribute
            {
                Name = a.Name,
                Value = ValueMapper.ToProto(a.Value),
                Layer = ValueMapper.ToProto(a.Layer),
                Source = a.Source,
                UpdatedAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(a.UpdatedAt),
            });
        }

        foreach (var (type, series) in p.Events)
        {
            result.EventCounts[type] = series.Count;
        }

        return result;
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;
}
