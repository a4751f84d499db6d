using Segmentation.Contracts.V1;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using DomainContext = Segmentation.Core.Events.EventContext;
using DomainLine = Segmentation.Core.Events.OrderLine;

namespace Segmentation.Server.Mapping;

/// <summary>Maps events and profiles between protobuf and the domain. Validation happens in the domain.</summary>
internal static class ProfileMapper
{
    /// <summary>A batch of events, in order.</summary>
    public static BehaviourEvent[] ToDomain(IReadOnlyList<Event> events)
    {
        var mapped = new BehaviourEvent[events.Count];
        for (var i = 0; i < mapped.Length; i++)
        {
            mapped[i] = ToDomain(events[i]);
        }

        return mapped;
    }

    public static BehaviourEvent ToDomain(Event e)
    {
        var c = e.Context ?? new Contracts.V1.EventContext();
        return new BehaviourEvent
        {
            EventId = e.EventId,
            Type = e.Type,
            UserId = e.UserId,
            AnonymousId = e.AnonymousId,
            Timestamp = ValueMapper.ToEventTime(e.Timestamp),
            Context = new DomainContext(c.Source, c.Device, c.SessionId, c.PageType, NullIfEmpty(c.PagePath), NullIfEmpty(c.Country)),
            Value = e.Value,
            Currency = NullIfEmpty(e.Currency),
            OrderId = NullIfEmpty(e.OrderId),
            Lines = e.Lines.Count == 0 ? Array.Empty<DomainLine>() : e.Lines.Select(l => new DomainLine(l.ProductId, NullIfEmpty(l.Name), NullIfEmpty(l.Category), l.Quantity, l.UnitPrice)).ToList(),
            ProductId = NullIfEmpty(e.ProductId),
            Category = NullIfEmpty(e.Category),
            CampaignId = NullIfEmpty(e.CampaignId),
            SearchQuery = NullIfEmpty(e.SearchQuery),
            Properties = e.Properties.Count == 0
                ? BehaviourEvent.NoProperties
                : e.Properties
                    .Select(p => (p.Key, Value: ValueMapper.ToProperty(p.Value)))
                    .Where(p => p.Value is not null)
                    .ToDictionary(p => p.Key, p => p.Value!, StringComparer.Ordinal),
        };
    }

    public static Contracts.V1.EventResult ToProto(Core.Application.Profiles.EventResult r)
    {
        var result = new Contracts.V1.EventResult
        {
            Index = r.Index,
            EventId = r.EventId,
            Status = r.Status switch
            {
                Core.Application.Profiles.EventStatus.Accepted => Contracts.V1.EventStatus.Accepted,
                Core.Application.Profiles.EventStatus.Duplicate => Contracts.V1.EventStatus.Duplicate,
                _ => Contracts.V1.EventStatus.Rejected,
            },
            UserId = r.Profile?.UserId ?? "",
            ProfileVersion = r.Profile?.Version ?? 0,
        };
        foreach (var v in r.Violations)
        {
            result.Violations.Add(new Contracts.V1.FieldViolation { Field = v.Field, Description = v.Description });
        }

        return result;
    }

    public static Contracts.V1.Profile ToProto(Core.Profiles.Profile p, RfmModel rfm, CatalogSnapshot catalog, DateTimeOffset now, IReadOnlyList<string> linkedIds)
    {
        var result = new Contracts.V1.Profile
        {
            UserId = p.UserId,
            Version = p.Version,
            Aggregates = new Contracts.V1.ProfileAggregates
            {
                FirstSeen = ValueMapper.Ticks(p.FirstSeenTicks),
                LastSeen = ValueMapper.Ticks(p.LastSeenTicks),
                Sessions = p.Sessions,
                Orders = p.Orders,
                Revenue = Math.Round(p.Revenue, 2),
                AverageOrderValue = Math.Round(p.AverageOrderValue, 2),
                FirstPurchaseAt = ValueMapper.Ticks(p.FirstPurchaseTicks),
                LastPurchaseAt = ValueMapper.Ticks(p.LastPurchaseTicks),
                CartItems = p.CartItems,
                RfmRecency = rfm.Recency(p),
                RfmFrequency = rfm.Frequency(p),
                RfmMonetary = rfm.Monetary(p),
                RfmModelVersion = rfm.Version,
                RfmComputedAt = rfm.Version == 0 ? null : Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(rfm.ComputedAt),
            },
        };
        foreach (var a in p.AttributesAsObserved().OrderBy(a => a.Name, StringComparer.Ordinal))
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

        var ticks = now.UtcTicks;
        foreach (var (type, series) in p.Aggregates.Series.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            result.EventCounts[type] = series.Count;
            result.EventWindows.Add(new EventWindow
            {
                Type = type,
                Count1D = series.CountInWindow(ticks, TimeSpan.TicksPerDay, out _),
                Count7D = series.CountInWindow(ticks, 7 * TimeSpan.TicksPerDay, out _),
                Count30D = series.CountInWindow(ticks, 30 * TimeSpan.TicksPerDay, out _),
                Count90D = series.CountInWindow(ticks, 90 * TimeSpan.TicksPerDay, out _),
                CountLifetime = series.Count, // ever: an event dated a little ahead (clock skew) too, as event_counts and the aggregates count it
                Sum30D = Math.Round(series.SumInWindow(ticks, 30 * TimeSpan.TicksPerDay, out _), 2),
                Sum90D = Math.Round(series.SumInWindow(ticks, 90 * TimeSpan.TicksPerDay, out _), 2),
                SumLifetime = Math.Round(series.SumInWindow(DateTimeOffset.MaxValue.UtcTicks, long.MaxValue, out _), 2),
            });
        }

        result.Derived = Derived(p, rfm, catalog, ticks);
        result.CurrentSegment = p.CurrentSegment ?? "";
        foreach (var change in p.SegmentHistory)
        {
            result.SegmentChanges.Add(new Contracts.V1.SegmentChange
            {
                FromSegment = change.From ?? "",
                ToSegment = change.To,
                ChangedAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(change.At),
                Cause = change.Cause,
            });
        }

        result.LinkedIds.Add(linkedIds);
        return result;
    }

    // Derived data as of the read, through the same field accessors rules use (declared values win).
    private static DerivedData Derived(Core.Profiles.Profile p, RfmModel rfm, CatalogSnapshot catalog, long nowTicks)
    {
        var context = new Core.Rules.EvalContext(p, Core.Requests.RequestContext.Empty, nowTicks, rfm);
        string Text(string name) => catalog.Field(name).Text!(context) ?? "";
        int Number(string name) => catalog.Field(name).Number!(context) is var d && double.IsNaN(d) ? -1 : (int)d;
        return new DerivedData
        {
            LifecycleStage = Text("traits.lifecycle_stage"),
            EngagementStatus = Text("traits.engagement_status"),
            IntentLevel = Text("traits.intent_level"),
            LeadScore = Math.Max(0, Number("traits.lead_score")),
            LeadGrade = Text("traits.lead_grade"),
            RfmSegment = Text("rfm.segment"),
            TopCategory = Text("affinity.top_category"),
            TopProduct = Text("affinity.top_product"),
            CartAbandoned = catalog.Field("cart.abandoned").Flag!(context) == 1,
            OpensOfLast3Sends = Math.Max(0, Number("email.opens_of_last_sends")),
            ClicksOfLast3Sends = Math.Max(0, Number("email.clicks_of_last_sends")),
            DaysSinceLastOpen = Number("email.days_since_last_open"),
            DaysSinceLastPurchase = Number("orders.days_since_last"),
        };
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;
}
