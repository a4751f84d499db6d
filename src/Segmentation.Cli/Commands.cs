using System.Globalization;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>Options of the track command.</summary>
internal sealed record TrackOptions(
    string UserId,
    string Type,
    string? Category,
    double? Value,
    string PageType,
    string Device,
    string? ProductId,
    string? OrderId,
    DateTimeOffset? Timestamp = null);

/// <summary>The small commands: decide, profile, catalog, track.</summary>
internal static class Commands
{
    /// <summary>The most days the KPI, size and quality commands ask for (what the service keeps).</summary>
    public const int MaxDays = 90;

    /// <summary>Throws a usage error unless <paramref name="days"/> is 1 to <see cref="MaxDays"/>: the range asked for is the one printed.</summary>
    public static int CheckDays(int days) =>
        days is >= 1 and <= MaxDays ? days : throw new ArgumentException($"--days must be 1 to {MaxDays} (got {days}): the service keeps {MaxDays} days");

    public static async Task<int> DecideAsync(
        ServiceTarget address, string userId, bool anonymous, bool explain, string? device, string? country, string? pageType, string? channel, bool json, CancellationToken ct)
    {
        var request = new DecideRequest
        {
            Explain = explain,
            Channel = ParseChannel(channel),
            Context = new RequestContext { Device = device ?? "", Country = country ?? "", PageType = pageType ?? "" },
        };
        if (anonymous)
        {
            request.AnonymousId = userId;
        }
        else
        {
            request.UserId = userId;
        }

        using var grpc = Cli.OpenChannel(address);
        var response = await new DecisionService.DecisionServiceClient(grpc).DecideAsync(request, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return 0;
        }

        var d = response.Decision;
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"user          {d.UserId}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"segment       {d.Segment.Id} ({d.Segment.Name}; {Cli.EnumName(d.Segment.Type)}, priority {d.Segment.Priority}){(d.FallbackUsed ? "  [fallback]" : "")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"catalog       v{d.CatalogVersion}   from cache: {(d.FromCache ? "yes" : "no")}   evaluated at {Cli.Time(d.EvaluatedAt)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"decision id   {d.DecisionId}");
        sb.AppendLine("matched segments:");
        if (d.MatchedSegments.Count == 0)
        {
            sb.AppendLine("  (none)");
        }

        foreach (var m in d.MatchedSegments)
        {
            var by = m.SuppressedBy.Length > 0 ? $" by {m.SuppressedBy}" : "";
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {m.Segment.Id,-28} {m.Segment.Priority,4}  {Cli.EnumName(m.Status)}{by}");
        }

        sb.AppendLine("variants:");
        AppendVariant(sb, "content", d.Content);
        AppendVariant(sb, "offer", d.Offer);
        AppendVariant(sb, "cta", d.Cta);
        AppendVariant(sb, "journey", d.Journey);
        AppendVariant(sb, "messaging", d.Messaging);
        if (d.ExperimentId.Length > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"experiment    {d.ExperimentId}, arm {d.ArmId}");
        }

        if (d.Contact is { } contact)
        {
            // The channel's contact policy: send, suppress or send at a time, and the counts behind it (the arithmetic in
            // words with --explain).
            var cap = contact.Limit < 0 ? "no cap" : $"{contact.Count} of {contact.Limit} in {contact.Window?.ToTimeSpan().TotalDays:0.#} days";
            var when = contact.SendAt is { } at ? $", {(contact.Action == ContactAction.SendAt ? "send at" : "next allowed")} {Cli.Time(at)}" : "";
            sb.AppendLine(CultureInfo.InvariantCulture, $"contact       {Cli.EnumName(contact.Action)} on {contact.Channel}: {contact.Policy}, engagement {contact.Engagement}, {cap}{when} ({contact.TimeZone})");
            if (contact.Reason.Length > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"  {contact.Reason}");
            }
        }

        if (d.Explanation is { } x)
        {
            sb.AppendLine("explanation:");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {Terminal.Shown(x.Summary)}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"  context fields read: {(x.ContextFieldsRead.Count == 0 ? "(none)" : string.Join(", ", x.ContextFieldsRead))}");
            foreach (var s in x.Segments)
            {
                var failing = s.Matched ? "" : s.FirstFailingClause.Length > 0 ? $"  decided by: {s.FirstFailingClause}" : "";
                sb.AppendLine(CultureInfo.InvariantCulture, $"  [{(s.Matched ? "match" : "no")}] {s.Segment.Id} ({s.Segment.Priority}){failing}");
                foreach (var c in s.Clauses)
                {
                    var actual = c.ActualValue.Length > 0 ? $"  (saw {Terminal.Shown(c.ActualValue)})" : "";
                    sb.AppendLine(CultureInfo.InvariantCulture, $"      {(c.Result ? "✓" : "✗")} {c.Path}: {c.Description}{actual}");
                }
            }
        }

        Console.Write(sb.ToString());
        return 0;
    }

    public static async Task<int> ProfileAsync(ServiceTarget address, string userId, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var response = await new ProfileService.ProfileServiceClient(grpc).GetProfileAsync(new GetProfileRequest { UserId = userId }, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return 0;
        }

        var p = response.Profile;
        var a = p.Aggregates ?? new ProfileAggregates();
        var d = p.Derived ?? new DerivedData();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"user            {Terminal.Shown(p.UserId)}   version {p.Version}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"current segment {(p.CurrentSegment.Length > 0 ? p.CurrentSegment : "-")}");
        if (p.LinkedIds.Count > 0)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"linked ids      {string.Join(", ", p.LinkedIds.Select(Terminal.Shown))}");
        }

        sb.AppendLine("aggregates:");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  first seen {Cli.Time(a.FirstSeen)}   last seen {Cli.Time(a.LastSeen)}   sessions {a.Sessions}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  orders {a.Orders}   revenue {a.Revenue:0.00}   AOV {a.AverageOrderValue:0.00}   cart items {a.CartItems}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  first purchase {Cli.Time(a.FirstPurchaseAt)}   last purchase {Cli.Time(a.LastPurchaseAt)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  RFM {a.RfmRecency}-{a.RfmFrequency}-{a.RfmMonetary} (recency-frequency-monetary, 0 = no purchases)");
        sb.AppendLine("derived:");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  lifecycle {Or(d.LifecycleStage)}   engagement {Or(d.EngagementStatus)}   intent {Or(d.IntentLevel)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  lead score {d.LeadScore} ({Or(d.LeadGrade)})   RFM segment {Or(d.RfmSegment)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  top category {Or(d.TopCategory)}   top product {Or(d.TopProduct)}   cart abandoned {(d.CartAbandoned ? "yes" : "no")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  days since last purchase {d.DaysSinceLastPurchase}   days since last open {d.DaysSinceLastOpen}   opens/clicks of last 3 sends {d.OpensOfLast3Sends}/{d.ClicksOfLast3Sends}");
        sb.AppendLine("event counts:");
        if (p.EventCounts.Count == 0)
        {
            sb.AppendLine("  (none)");
        }

        foreach (var (type, count) in p.EventCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var w = p.EventWindows.FirstOrDefault(x => x.Type == type);
            var windows = w is null ? "" : $"   1d {w.Count1D}, 7d {w.Count7D}, 30d {w.Count30D}, 90d {w.Count90D}; sum lifetime {w.SumLifetime:0.00}";
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {Terminal.Shown(type),-20} {count,6}{windows}");
        }

        sb.AppendLine("attributes:");
        if (p.Attributes.Count == 0)
        {
            sb.AppendLine("  (none)");
        }

        foreach (var attr in p.Attributes)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {Terminal.Shown(attr.Name)} = {Terminal.Shown(Format(attr.Value))}   [{Cli.EnumName(attr.Layer)}, source {Or(attr.Source)}, {Cli.Time(attr.UpdatedAt)}]");
        }

        sb.AppendLine("segment changes:");
        if (p.SegmentChanges.Count == 0)
        {
            sb.AppendLine("  (none)");
        }

        foreach (var c in p.SegmentChanges)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {Cli.Time(c.ChangedAt)}  {(c.FromSegment.Length > 0 ? c.FromSegment : "(none)")} → {c.ToSegment}   ({Terminal.Shown(c.Cause)})");
        }

        Console.Write(sb.ToString());
        return 0;
    }

    public static async Task<int> CatalogAsync(ServiceTarget address, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(address);
        var c = await new CatalogService.CatalogServiceClient(grpc).GetCatalogAsync(new GetCatalogRequest(), cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(c));
            return 0;
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"catalog   {c.Name} v{c.Version}   origin {c.Origin}   loaded {Cli.Time(c.LoadedAt)}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"fallback  {c.FallbackSegmentId}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"context fields read: {(c.ContextFieldsRead.Count == 0 ? "(none)" : string.Join(", ", c.ContextFieldsRead))}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"{c.Segments.Count} segments, in priority order:");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  {"priority",8}  {"id",-30} {"type",-14} name");
        foreach (var s in c.Segments)
        {
            var extras = new List<string>();
            if (s.Fallback)
            {
                extras.Add("fallback");
            }

            if (s.Overrides.Count > 0)
            {
                extras.Add("overrides " + string.Join(",", s.Overrides));
            }

            if (s.Exclusions.Count > 0)
            {
                extras.Add("excludes " + string.Join(",", s.Exclusions));
            }

            var suffix = extras.Count > 0 ? $"  [{string.Join("; ", extras)}]" : "";
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {s.Segment.Priority,8}  {s.Segment.Id,-30} {Cli.EnumName(s.Segment.Type),-14} {s.Segment.Name}{suffix}");
        }

        Console.Write(sb.ToString());
        return 0;
    }

    public static async Task<int> TrackAsync(ServiceTarget address, TrackOptions o, bool json, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var e = new Event
        {
            EventId = "segctl-" + Guid.CreateVersion7(now).ToString("N"),
            Type = o.Type,
            UserId = o.UserId,
            Timestamp = Timestamp.FromDateTimeOffset(o.Timestamp ?? now), // when it happened; the service checks how far back or ahead it may be
            Context = new EventContext
            {
                Source = "segctl",
                Device = o.Device,
                SessionId = "segctl-" + (o.Timestamp ?? now).UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture), // the day it happened: a back-dated event is not in today's session
                PageType = o.PageType,
            },
            Category = o.Category ?? "",
            ProductId = o.ProductId ?? "",
        };
        if (o.Value is { } v)
        {
            e.Value = v;
            e.Currency = "GBP";
        }

        if (o.Type is "purchase" or "refund")
        {
            e.OrderId = o.OrderId ?? e.EventId;
        }
        else if (o.OrderId is not null)
        {
            e.OrderId = o.OrderId;
        }

        using var grpc = Cli.OpenChannel(address);
        var response = await new ProfileService.ProfileServiceClient(grpc).TrackEventAsync(new TrackEventRequest { Event = e }, cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(response));
            return 0;
        }

        Console.WriteLine(
            $"{(response.Duplicate ? "duplicate" : "accepted")}: {e.Type} {e.EventId} for {response.UserId}, profile version {response.ProfileVersion}");
        return 0;
    }

    internal static Channel ParseChannel(string? channel) => channel?.ToLowerInvariant() switch
    {
        null or "" or "web" => Channel.Web,
        "email" => Channel.Email,
        "ads" => Channel.Ads,
        "app" => Channel.App,
        _ => throw new ArgumentException($"unknown channel '{channel}': use web, email, ads or app"),
    };

    private static void AppendVariant(StringBuilder sb, string slot, RenderedVariant? v)
    {
        if (v is null)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {slot,-10} -");
            return;
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"  {slot,-10} [{v.VariantId}]{(v.FallbackUsed ? " (template fallback)" : "")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"             {v.Text}");
    }

    private static string Or(string s) => s.Length > 0 ? Terminal.Shown(s) : "-";

    private static string Format(AttributeValue? v) => v?.KindCase switch
    {
        AttributeValue.KindOneofCase.StringValue => v.StringValue,
        AttributeValue.KindOneofCase.NumberValue => v.NumberValue.ToString("G", CultureInfo.InvariantCulture),
        AttributeValue.KindOneofCase.BoolValue => v.BoolValue ? "true" : "false",
        AttributeValue.KindOneofCase.TimestampValue => Cli.Time(v.TimestampValue),
        AttributeValue.KindOneofCase.StringListValue => "[" + string.Join(", ", v.StringListValue.Values) + "]",
        _ => "(unset)",
    };
}
