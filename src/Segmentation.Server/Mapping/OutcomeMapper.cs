using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Measurement;
using Domain = Segmentation.Core.Outcomes;
using Rendering = Segmentation.Core.Rendering;

namespace Segmentation.Server.Mapping;

/// <summary>Maps outcomes and KPIs between protobuf and the domain.</summary>
internal static class OutcomeMapper
{
    // An unknown enum value is carried as an undefined domain value, which the domain's validation reports for that outcome alone.
    public static Domain.Outcome ToDomain(Outcome o) => new(
        o.EventId,
        o.Type switch
        {
            OutcomeType.Impression => Domain.OutcomeType.Impression,
            OutcomeType.Click => Domain.OutcomeType.Click,
            OutcomeType.Conversion => Domain.OutcomeType.Conversion,
            OutcomeType.Dismiss => Domain.OutcomeType.Dismiss,
            OutcomeType.EmailSend => Domain.OutcomeType.EmailSend,
            OutcomeType.EmailOpen => Domain.OutcomeType.EmailOpen,
            OutcomeType.EmailClick => Domain.OutcomeType.EmailClick,
            OutcomeType.EmailUnsubscribe => Domain.OutcomeType.EmailUnsubscribe,
            _ => (Domain.OutcomeType)(-1),
        },
        o.DecisionId,
        o.UserId,
        o.AnonymousId,
        ToDomain(o.Variant),
        ValueMapper.ToEventTime(o.Timestamp),
        o.Conversion?.OrderId is { Length: > 0 } order ? order : null,
        o.Conversion?.Value ?? 0,
        o.Conversion?.Currency is { Length: > 0 } currency ? currency : null);

    public static Rendering.VariantKind? ToDomain(VariantKind kind) => kind switch
    {
        VariantKind.Content => Rendering.VariantKind.Content,
        VariantKind.Offer => Rendering.VariantKind.Offer,
        VariantKind.Cta => Rendering.VariantKind.Cta,
        VariantKind.Journey => Rendering.VariantKind.Journey,
        VariantKind.Messaging => Rendering.VariantKind.Messaging,
        VariantKind.Unspecified => null,
        _ => (Rendering.VariantKind)(-1), // undefined: reported by the domain's validation, never read as "no variant"
    };

    public static VariantKind ToProto(Rendering.VariantKind? kind) => kind switch
    {
        Rendering.VariantKind.Content => VariantKind.Content,
        Rendering.VariantKind.Offer => VariantKind.Offer,
        Rendering.VariantKind.Cta => VariantKind.Cta,
        Rendering.VariantKind.Journey => VariantKind.Journey,
        Rendering.VariantKind.Messaging => VariantKind.Messaging,
        _ => VariantKind.Unspecified,
    };

    public static Contracts.V1.OutcomeResult ToProto(Core.Application.Measurement.OutcomeResult r) => new()
    {
        Index = r.Index,
        Attribution = r.Attribution switch
        {
            Domain.Attribution.Decision => Attribution.Decision,
            Domain.Attribution.LastImpression => Attribution.LastImpression,
            Domain.Attribution.Unattributed => Attribution.Unattributed,
            Domain.Attribution.Duplicate => Attribution.Duplicate,
            _ => Attribution.Rejected,
        },
        DecisionId = r.DecisionId ?? "",
        SegmentId = r.SegmentId ?? "",
        Error = string.Join("; ", r.Violations.Select(v => $"{v.Field}: {v.Description}")),
    };

    public static Core.Application.Measurement.KpiDimension ToDomain(Contracts.V1.KpiDimension d, int index) => d switch
    {
        Contracts.V1.KpiDimension.Segment => Core.Application.Measurement.KpiDimension.Segment,
        Contracts.V1.KpiDimension.Variant => Core.Application.Measurement.KpiDimension.Variant,
        Contracts.V1.KpiDimension.Channel => Core.Application.Measurement.KpiDimension.Channel,
        Contracts.V1.KpiDimension.CatalogVersion => Core.Application.Measurement.KpiDimension.CatalogVersion,
        Contracts.V1.KpiDimension.Arm => Core.Application.Measurement.KpiDimension.Arm,
        _ => throw new Core.Validation.ValidationException($"group_by[{index}]", "must be a KpiDimension other than KPI_DIMENSION_UNSPECIFIED"),
    };

    public static GetDataQualityResponse ToProto(DataQualityReport q)
    {
        var response = new GetDataQualityResponse
        {
            MeasuredAt = Timestamp.FromDateTimeOffset(q.At),
            EventsAccepted = q.Events.Accepted,
            EventsDuplicate = q.Events.Duplicates,
            EventsRejected = q.Events.Rejected,
            Rejections = { q.Events.RejectedByReason.Select(r => new RejectionCount { Reason = r.Key, Events = r.Value }) },
            Completeness = { q.Events.Completeness.Select(c => new FieldCompleteness { Field = c.Key, Share = c.Value }) },
            Profiles = q.Profiles,
            DeclaredShare = q.DeclaredShare,
            Freshness = { q.Freshness.Select(b => new Contracts.V1.FreshnessBand { Label = b.Label, UpTo = b.UpTo is { } up ? Duration.FromTimeSpan(up) : null, Profiles = b.Profiles }) },
            MedianAge = q.MedianAge is { } median ? Duration.FromTimeSpan(median) : null,
            P90Age = q.P90Age is { } p90 ? Duration.FromTimeSpan(p90) : null,
            Decisions = q.Decisions,
            FallbackRate = q.FallbackRate,
            Start = Timestamp.FromDateTimeOffset(q.Start),
            End = Timestamp.FromDateTimeOffset(q.End),
        };
        if (q.UnsegmentedShare is { } unsegmented)
        {
            response.UnsegmentedShare = unsegmented;
        }

        return response;
    }

    public static GetKpisResponse ToProto(KpiReport report)
    {
        var response = new GetKpisResponse
        {
            Start = Timestamp.FromDateTimeOffset(report.Start),
            End = Timestamp.FromDateTimeOffset(report.End),
            Total = ToProto(report.Total),
            UnattributedOutcomes = report.UnattributedOutcomes,
            FallbackRate = report.FallbackRate,
        };
        foreach (var row in report.Rows)
        {
            response.Rows.Add(new Contracts.V1.KpiRow
            {
                SegmentId = row.SegmentId ?? "",
                Variant = ToProto(row.Variant),
                VariantId = row.VariantId ?? "",
                Channel = row.Channel ?? "",
                CatalogVersion = row.CatalogVersion ?? 0,
                Kpis = ToProto(row.Kpis),
                Series = { row.Series.Select(p => new Contracts.V1.KpiPoint { Hour = Timestamp.FromDateTimeOffset(p.Hour), Kpis = ToProto(p.Kpis) }) },
                ExperimentId = row.ExperimentId,
                ArmId = row.ArmId,
            });
        }

        return response;
    }

    private static Kpis ToProto(Domain.Kpis k) => new()
    {
        Decisions = k.Decisions,
        Reach = k.Reach,
        Impressions = k.Impressions,
        Clicks = k.Clicks,
        Ctr = k.ClickThroughRate,
        Conversions = k.Conversions,
        ConversionRate = k.ConversionRate,
        Revenue = k.Revenue,
        RevenuePerUser = k.RevenuePerUser,
        Dismisses = k.Dismisses,
        EmailSends = k.EmailSends,
        EmailOpens = k.EmailOpens,
        EmailClicks = k.EmailClicks,
        EmailUnsubscribes = k.EmailUnsubscribes,
        OpenRate = k.OpenRate,
        UnsubscribeRate = k.UnsubscribeRate,
        Churned = k.Churned,
        MembersAtStart = k.MembersAtStart,
        ChurnRate = k.ChurnRate,
    };
}
