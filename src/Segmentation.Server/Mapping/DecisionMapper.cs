using System.Runtime.CompilerServices;
using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.Core.Catalog;
using Domain = Segmentation.Core.Decisions;

namespace Segmentation.Server.Mapping;

/// <summary>Maps decision requests and results between protobuf and the domain.</summary>
internal static class DecisionMapper
{
    public static Core.Requests.RequestContext ToDomain(Contracts.V1.RequestContext? c, Channel channel)
    {
        var name = ChannelName(channel);
        return c is null
            ? Core.Requests.RequestContext.Empty with { Channel = name }
            : new Core.Requests.RequestContext(name, c.Device, c.Country, c.Locale, c.Referrer, c.Source, c.PageType, c.PagePath, c.SearchQuery);
    }

    /// <summary>A request's channel: unspecified means web; a value the contract does not define is a validation error.</summary>
    public static string ChannelName(Channel channel) => channel switch
    {
        Channel.Unspecified or Channel.Web => "web",
        Channel.Email => "email",
        Channel.Ads => "ads",
        Channel.App => "app",
        _ => throw new Core.Validation.ValidationException("channel", $"unknown channel {(int)channel}: use CHANNEL_WEB, CHANNEL_EMAIL, CHANNEL_ADS or CHANNEL_APP"),
    };

    public static Contracts.V1.SegmentType ToProto(Core.Catalog.SegmentType type) => type switch
    {
        Core.Catalog.SegmentType.Behavioural => Contracts.V1.SegmentType.Behavioural,
        Core.Catalog.SegmentType.Intent => Contracts.V1.SegmentType.Intent,
        Core.Catalog.SegmentType.Value => Contracts.V1.SegmentType.Value,
        Core.Catalog.SegmentType.Need => Contracts.V1.SegmentType.Need,
        Core.Catalog.SegmentType.Contextual => Contracts.V1.SegmentType.Contextual,
        Core.Catalog.SegmentType.Psychographic => Contracts.V1.SegmentType.Psychographic,
        Core.Catalog.SegmentType.Firmographic => Contracts.V1.SegmentType.Firmographic,
        Core.Catalog.SegmentType.Technographic => Contracts.V1.SegmentType.Technographic,
        Core.Catalog.SegmentType.Lifecycle => Contracts.V1.SegmentType.Lifecycle,
        Core.Catalog.SegmentType.Engagement => Contracts.V1.SegmentType.Engagement,
        Core.Catalog.SegmentType.Transactional => Contracts.V1.SegmentType.Transactional,
        Core.Catalog.SegmentType.Preference => Contracts.V1.SegmentType.Preference,
        Core.Catalog.SegmentType.Demographic => Contracts.V1.SegmentType.Demographic,
        _ => Contracts.V1.SegmentType.Unspecified,
    };

    public static SegmentRef ToRef(Segment s) => new()
    {
        Id = s.Id,
        Name = s.Name,
        Type = ToProto(s.Type),
        Priority = s.Priority,
    };

    public static Contracts.V1.Decision ToProto(Domain.Decision d)
    {
        // The parts that every copy of a cached decision shares are mapped once and reused by reference
        // (protobuf messages are only read while serialized); only the id, from_cache and the time differ per call.
        // A fresh decision is mapped on its own; the first copy the cache serves keeps its mapping for the next.
        SharedParts parts;
        if (!d.FromCache)
        {
            parts = Share(d);
        }
        else if (!Shared.TryGetValue(d.Variants, out parts!))
        {
            parts = Share(d);
            Shared.AddOrUpdate(d.Variants, parts);
        }

        var result = new Contracts.V1.Decision
        {
            DecisionId = d.DecisionId,
            UserId = d.UserId,
            Segment = parts.Segment,
            FallbackUsed = d.FallbackUsed,
            Content = parts.Content,
            Offer = parts.Offer,
            Cta = parts.Cta,
            Journey = parts.Journey,
            Messaging = parts.Messaging,
            CatalogVersion = d.CatalogVersion,
            FromCache = d.FromCache,
            ConsentGate = d.ConsentGate == Core.Privacy.ConsentGate.ContextOnly ? Contracts.V1.ConsentGate.ContextOnly : Contracts.V1.ConsentGate.FullProfile,
            EvaluatedAt = Timestamp.FromDateTimeOffset(d.EvaluatedAt), // not shared: a cached decision served later is evaluated at the later time
            ExperimentId = d.Arm?.ExperimentId ?? "",
            ArmId = d.Arm?.Id ?? "",
        };
        result.MatchedSegments.AddRange(parts.Matched);
        if (d.Contact is { } contact)
        {
            result.Contact = ToProto(contact);
        }

        if (d.Explanation is { } e)
        {
            var explanation = new Contracts.V1.Explanation { Summary = e.Summary, ContextFieldsRead = { e.ContextFieldsRead }, Consent = e.Consent };
            foreach (var t in e.Segments)
            {
                var trace = new Contracts.V1.SegmentTrace
                {
                    Segment = ToRef(t.Segment),
                    Matched = t.Matched,
                    FirstFailingClause = t.FirstFailingClause ?? "",
                };
                foreach (var c in t.Clauses)
                {
                    trace.Clauses.Add(new Contracts.V1.ClauseTrace { Path = c.Path, Description = c.Text, Result = c.Result, ActualValue = c.Actual ?? "" });
                }

                explanation.Segments.Add(trace);
            }

            result.Explanation = explanation;
        }

        return result;
    }

    // Protobuf forms of decisions, keyed by the decision's rendered variants: every decision the decider makes
    // renders into a list of its own, and the copies the decision cache serves share it (a record copy keeps
    // the reference), so the key stands for "this decision and its cached copies" without the domain holding
    // a slot for the adapter. Entries live as long as the decision does (the cache holds it) and no longer.
    private static readonly ConditionalWeakTable<IReadOnlyList<Core.Rendering.RenderedVariant>, SharedParts> Shared = [];

    private static SharedParts Share(Domain.Decision d)
    {
        var matched = new MatchedSegment[d.Matched.Count];
        for (var i = 0; i < matched.Length; i++)
        {
            var m = d.Matched[i];
            matched[i] = new MatchedSegment
            {
                Segment = ToRef(m.Segment),
                Status = m.Status switch
                {
                    Domain.MatchStatus.Winner => Contracts.V1.MatchStatus.Winner,
                    Domain.MatchStatus.Overridden => Contracts.V1.MatchStatus.Overridden,
                    Domain.MatchStatus.Excluded => Contracts.V1.MatchStatus.Excluded,
                    _ => Contracts.V1.MatchStatus.Outranked,
                },
                SuppressedBy = m.SuppressedBy ?? "",
            };
        }

        var parts = new SharedParts(
            ToRef(d.Winner),
            ToProto(d.Variant(Core.Rendering.VariantKind.Content)),
            ToProto(d.Variant(Core.Rendering.VariantKind.Offer)),
            ToProto(d.Variant(Core.Rendering.VariantKind.Cta)),
            ToProto(d.Variant(Core.Rendering.VariantKind.Journey)),
            ToProto(d.Variant(Core.Rendering.VariantKind.Messaging)),
            matched);
        return parts;
    }

    private sealed record SharedParts(
        SegmentRef Segment,
        Contracts.V1.RenderedVariant Content,
        Contracts.V1.RenderedVariant Offer,
        Contracts.V1.RenderedVariant Cta,
        Contracts.V1.RenderedVariant Journey,
        Contracts.V1.RenderedVariant Messaging,
        MatchedSegment[] Matched);

    private static Contracts.V1.RenderedVariant ToProto(Core.Rendering.RenderedVariant v) =>
        new() { VariantId = v.VariantId, Text = v.Text, FallbackUsed = v.FallbackUsed };

    public static Contracts.V1.SendTime ToProto(Core.Decisions.SendTimeAdvice a) => new()
    {
        LocalHour = a.LocalHour,
        SendAt = Timestamp.FromDateTimeOffset(new DateTimeOffset(a.SendAtTicks, TimeSpan.Zero)),
        TimeZone = a.TimeZone,
        Observations = a.Observations,
        Share = a.Share,
        Basis = a.Basis,
    };

    private static Contracts.V1.ContactDecision ToProto(Core.Decisions.ContactDecision c) => new()
    {
        Action = c.Action switch
        {
            Core.Decisions.ContactAction.Send => Contracts.V1.ContactAction.Send,
            Core.Decisions.ContactAction.Suppress => Contracts.V1.ContactAction.Suppress,
            _ => Contracts.V1.ContactAction.SendAt,
        },
        Channel = c.Channel,
        Policy = c.Policy,
        Reason = c.Reason,
        Engagement = c.Engagement,
        Count = c.Count,
        Limit = c.Limit,
        Window = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(c.Window),
        SendAt = c.SendAtTicks > 0 ? ValueMapper.Ticks(c.SendAtTicks) : null,
        TimeZone = c.TimeZone,
    };
}
