using System.Globalization;
using Segmentation.Core.Events;
using Segmentation.Core.Rules;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Catalog;

/// <summary>At most <paramref name="Max"/> contacts in any rolling <paramref name="Window"/>.</summary>
/// <param name="Max">Contacts allowed (0: none).</param>
/// <param name="Window">The rolling window.</param>
public sealed record FrequencyCap(int Max, TimeSpan Window)
{
    /// <inheritdoc />
    public override string ToString() => $"{Max}/{Rules.Duration.Format(Window)}";
}

/// <summary>Local hours in which a channel does not contact: from <paramref name="StartMinute"/> to <paramref name="EndMinute"/> (minutes after midnight; may wrap past midnight).</summary>
/// <param name="StartMinute">Start, minutes after local midnight.</param>
/// <param name="EndMinute">End (exclusive), minutes after local midnight.</param>
public sealed record QuietHours(int StartMinute, int EndMinute)
{
    /// <summary>True when <paramref name="minuteOfDay"/> is inside.</summary>
    public bool Contains(int minuteOfDay) => StartMinute <= EndMinute
        ? minuteOfDay >= StartMinute && minuteOfDay < EndMinute
        : minuteOfDay >= StartMinute || minuteOfDay < EndMinute;

    /// <inheritdoc />
    public override string ToString() => $"{StartMinute / 60:00}:{StartMinute % 60:00}-{EndMinute / 60:00}:{EndMinute % 60:00}";
}

/// <summary>After <paramref name="After"/> negative outcomes (<paramref name="EventTypes"/>) within <paramref name="Within"/>, no contact for <paramref name="Pause"/> from the last of them.</summary>
/// <param name="After">Negative outcomes that trigger the pause.</param>
/// <param name="EventTypes">Which outcomes are negative: dismiss, email_unsubscribe, and email_ignored (a send with no open or click within <paramref name="IgnoredAfter"/>).</param>
/// <param name="Within">The window they are counted in.</param>
/// <param name="Pause">How long contact pauses after the last of them.</param>
/// <param name="SegmentOnly">
/// True (<c>scope: segment</c>): only outcomes of decisions the winning segment made count, and only that segment's
/// contact pauses ("pause that segment's offer"); false (<c>scope: all</c>, the default): every negative outcome
/// counts and all marketing on the channel pauses.
/// </param>
/// <param name="IgnoredAfter">How long a send may go without an open or click before it counts as ignored.</param>
public sealed record SuppressionRule(int After, IReadOnlyList<string> EventTypes, TimeSpan Within, TimeSpan Pause, bool SegmentOnly = false, TimeSpan IgnoredAfter = default)
{
    /// <summary>The negative outcome of a send nobody opened or clicked in time.</summary>
    public const string EmailIgnored = "email_ignored";

    /// <summary>The default time a send may go unopened before it counts as ignored.</summary>
    public static readonly TimeSpan DefaultIgnoredAfter = TimeSpan.FromDays(3);

    /// <summary>Which outcomes are negative (see the constructor).</summary>
    public IReadOnlyList<string> EventTypes
    {
        get;
        init
        {
            field = value;
            CountsIgnored = value.Contains(EmailIgnored); // kept in step by a copy (`with`) that sets the types
        }
    } = EventTypes;

    /// <summary>True when ignored emails are among the negative outcomes (they are read from the event log, not a series).</summary>
    public bool CountsIgnored { get; private init; } = EventTypes.Contains(EmailIgnored); // as constructed (an initializer bypasses the accessor above)
}

/// <summary>One channel's policy.</summary>
/// <param name="Channel">The channel (email, web, app, ads).</param>
/// <param name="ConsumedBy">The outcome that uses up the cap: <c>email_send</c> for email, <c>impression</c> otherwise.</param>
/// <param name="Caps">Caps by engagement level (high, active, declining, inactive), and <c>default</c> for users without one.</param>
/// <param name="Quiet">Quiet hours, if any.</param>
/// <param name="Overrides">Caps for users a segment wins, overriding the tiers (a re-engagement message to inactive users).</param>
public sealed record ChannelPolicy(string Channel, string ConsumedBy, IReadOnlyDictionary<string, FrequencyCap> Caps, QuietHours? Quiet, IReadOnlyDictionary<string, FrequencyCap> Overrides);

/// <summary>
/// The catalog's contact policies: per channel, frequency caps by engagement level shared by every segment and campaign
/// on that channel (with per-segment overrides), quiet hours in the user's time zone, and suppression after negative
/// outcomes. Evaluated after consent, for every decision on a channel that has a policy (see <see cref="Decisions.ContactEvaluation"/>).
/// </summary>
public sealed class ContactPolicies
{
    /// <summary>Most suppression rules a catalog may declare (each reads the user's recent outcomes at every decision on a channel with a policy).</summary>
    public const int MaxSuppressionRules = 50;

    /// <summary>The engagement levels caps are tiered by (derived field <c>engagement_status</c>), and the tier for users without one.</summary>
    public static readonly IReadOnlyList<string> Tiers = ["high", "active", "declining", "inactive", "default"];

    /// <summary>No policies.</summary>
    public static readonly ContactPolicies None = new(new Dictionary<string, ChannelPolicy>(), [], TimeZoneInfo.Utc);

    private readonly Dictionary<string, (ChannelPolicy Policy, FrequencyCap?[] CapsByTier)> _plans;

    internal ContactPolicies(IReadOnlyDictionary<string, ChannelPolicy> channels, IReadOnlyList<SuppressionRule> suppression, TimeZoneInfo defaultTimeZone)
    {
        Channels = channels;
        Suppression = suppression;
        DefaultTimeZone = defaultTimeZone;

        // Each channel's cap per engagement level (a level without its own cap takes the default's), resolved once:
        // a decision then indexes an array instead of hashing the level's name, twice for a level without a cap.
        _plans = channels.ToDictionary(
            c => c.Key,
            c => (c.Value, Tiers.Select(t => c.Value.Caps.GetValueOrDefault(t) ?? c.Value.Caps.GetValueOrDefault("default")).ToArray()),
            StringComparer.Ordinal);
    }

    /// <summary>
    /// The policy of <paramref name="channel"/> with its cap per engagement level, indexed by <see cref="TierIndex"/>
    /// (null where no cap applies); false when the channel has no policy.
    /// </summary>
    internal bool TryGetPlan(string channel, out ChannelPolicy policy, out FrequencyCap?[] capsByTier)
    {
        if (_plans.Count > 0 && _plans.TryGetValue(channel, out var plan))
        {
            (policy, capsByTier) = plan;
            return true;
        }

        (policy, capsByTier) = (null!, []);
        return false;
    }

    /// <summary>The index of an engagement level in <see cref="Tiers"/>; null or unknown: that of <c>default</c>.</summary>
    internal static int TierIndex(string? tier) => tier switch
    {
        "high" => 0,
        "active" => 1,
        "declining" => 2,
        "inactive" => 3,
        _ => 4,
    };

    /// <summary>Policies by channel.</summary>
    public IReadOnlyDictionary<string, ChannelPolicy> Channels { get; }

    /// <summary>Suppression rules, for every channel with a policy.</summary>
    public IReadOnlyList<SuppressionRule> Suppression { get; }

    /// <summary>The time zone of users whose profile and request say none (catalog setting <c>time_zone</c>; default UTC).</summary>
    public TimeZoneInfo DefaultTimeZone { get; }

    /// <summary>The policy of <paramref name="channel"/>, or null when it has none.</summary>
    public ChannelPolicy? For(string channel) => Channels.Count == 0 ? null : Channels.GetValueOrDefault(channel);
}

/// <summary>Reads <c>contact_policies:</c> from a catalog file, reporting mistakes at file:line.</summary>
internal sealed class ContactPolicyReader(Action<SyntaxNode, string, string> error)
{
    private static readonly string[] Keys = ["time_zone", "channels", "suppression"];
    private static readonly string[] ChannelKeys = ["caps", "quiet_hours", "overrides"];
    private static readonly string[] SuppressionKeys = ["after", "outcomes", "within", "pause", "scope", "ignored_after"];
    private static readonly string[] KnownChannels = ["web", "email", "ads", "app"];

    /// <summary>Event types that count as negative outcomes.</summary>
    public static readonly IReadOnlyList<string> NegativeOutcomes = [EventTypes.Dismiss, EventTypes.EmailUnsubscribe, SuppressionRule.EmailIgnored];

    public ContactPolicies? Read(SyntaxNode node, IReadOnlySet<string> segments)
    {
        if (node is not SyntaxMap map)
        {
            error(node, "contact_policies", "'contact_policies' is a mapping with time_zone, channels and suppression");
            return null;
        }

        foreach (var (k, _) in map.Entries)
        {
            if (!Keys.Contains(k.Text))
            {
                error(k, "contact_policies", $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, Keys)}; contact_policies has: {string.Join(", ", Keys)}");
            }
        }

        var zone = TimeZoneInfo.Utc;
        if (map.Get("time_zone") is { } zoneNode && !TryZone(zoneNode.Text, out zone))
        {
            error(zoneNode, "contact_policies.time_zone", $"unknown time zone '{zoneNode.Text}'; use an IANA name such as Europe/London");
        }

        var channels = new Dictionary<string, ChannelPolicy>(StringComparer.Ordinal);
        if (map.Get("channels") is SyntaxMap channelMap)
        {
            foreach (var (k, v) in channelMap.Entries)
            {
                var channel = k.Text ?? "";
                if (!KnownChannels.Contains(channel))
                {
                    error(k, "contact_policies.channels", $"unknown channel '{channel}'; expected any of: {string.Join(", ", KnownChannels)}");
                }
                else if (ReadChannel(channel, v, segments) is { } policy)
                {
                    channels[channel] = policy;
                }
            }
        }
        else if (map.Get("channels") is { } bad)
        {
            error(bad, "contact_policies.channels", "'channels' maps a channel (email, web, app, ads) to its caps, quiet_hours and overrides");
        }

        var suppression = new List<SuppressionRule>();
        if (map.Get("suppression") is SyntaxList rules)
        {
            if (rules.Items.Count > ContactPolicies.MaxSuppressionRules && !KeptVersion.Loading)
            {
                error(rules.Items[ContactPolicies.MaxSuppressionRules], "contact_policies.suppression", $"{rules.Items.Count:N0} suppression rules (at most {ContactPolicies.MaxSuppressionRules:N0})");
            }

            foreach (var item in KeptVersion.Loading ? rules.Items : rules.Items.Take(ContactPolicies.MaxSuppressionRules)) // a kept version keeps every rule it had
            {
                if (ReadSuppression(item) is { } rule)
                {
                    suppression.Add(rule);
                }
            }
        }
        else if (map.Get("suppression") is { } bad)
        {
            error(bad, "contact_policies.suppression", "'suppression' is a list of rules (after, outcomes, within, pause)");
        }

        return new ContactPolicies(channels, suppression, zone);
    }

    /// <summary>The time zone named <paramref name="id"/> (IANA or Windows ids), if the system knows it.</summary>
    public static bool TryZone(string? id, out TimeZoneInfo zone)
    {
        zone = TimeZoneInfo.Utc;
        if (string.IsNullOrWhiteSpace(id) || id.Split('/').Any(part => part is "" or "." or ".."))
        {
            return false; // the system opens "America//New_York" as America/New_York's file, under that name: one zone per spelling
        }

        try
        {
            // Zone names are case-sensitive (IANA file names); the runtime's cache of zones already read is not, so a
            // name that differs from the zone found only by case is refused, whichever zones were read before.
            var found = TimeZoneInfo.FindSystemTimeZoneById(id);
            // (UTC is the runtime's own zone, found in any case: "utc" stays valid.)
            if (!string.Equals(found.Id, id, StringComparison.Ordinal) && string.Equals(found.Id, id, StringComparison.OrdinalIgnoreCase) && !ReferenceEquals(found, TimeZoneInfo.Utc))
            {
                return false;
            }

            zone = found;
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return false; // not found, invalid, or a name the system cannot read (a directory such as "Europe" throws SecurityException on Linux)
        }
    }

    private ChannelPolicy? ReadChannel(string channel, SyntaxNode node, IReadOnlySet<string> segments)
    {
        var clause = $"contact_policies.channels.{channel}";
        if (node is not SyntaxMap map)
        {
            error(node, clause, "a channel's policy is a mapping with caps, quiet_hours and overrides");
            return null;
        }

        foreach (var (k, _) in map.Entries)
        {
            if (!ChannelKeys.Contains(k.Text))
            {
                error(k, clause, $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, ChannelKeys)}; a channel's policy has: {string.Join(", ", ChannelKeys)}");
            }
        }

        var caps = new Dictionary<string, FrequencyCap>(StringComparer.Ordinal);
        if (map.Get("caps") is SyntaxMap capMap)
        {
            foreach (var (k, v) in capMap.Entries)
            {
                if (!ContactPolicies.Tiers.Contains(k.Text))
                {
                    error(k, clause + ".caps", $"unknown engagement level '{k.Text}'; caps are by: {string.Join(", ", ContactPolicies.Tiers)}");
                }
                else if (Cap(v, clause + ".caps." + k.Text) is { } cap)
                {
                    caps[k.Text!] = cap;
                }
            }
        }

        QuietHours? quiet = null;
        if (map.Get("quiet_hours") is { } quietNode)
        {
            quiet = Quiet(quietNode, clause + ".quiet_hours");
        }

        var overrides = new Dictionary<string, FrequencyCap>(StringComparer.Ordinal);
        if (map.Get("overrides") is SyntaxMap overrideMap)
        {
            foreach (var (k, v) in overrideMap.Entries)
            {
                if (k.Text is not { } segment || !segments.Contains(segment))
                {
                    error(k, clause + ".overrides", $"unknown segment '{k.Text}'");
                }
                else if (Cap(v, clause + ".overrides." + segment) is { } cap)
                {
                    overrides[segment] = cap;
                }
            }
        }

        return new ChannelPolicy(channel, channel == "email" ? EventTypes.EmailSend : EventTypes.Impression, caps, quiet, overrides);
    }

    // "2/7d": at most 2 in any 7 days.
    private FrequencyCap? Cap(SyntaxNode node, string clause)
    {
        var text = node.Text ?? "";
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && int.TryParse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var max) && max <= 10_000
            && Rules.Duration.TryParse(text[(slash + 1)..], out var window) && window > TimeSpan.Zero && window <= TimeSpan.FromDays(366))
        {
            return new FrequencyCap(max, window);
        }

        error(node, clause, $"a cap is MAX/WINDOW, such as 2/7d (at most 2 in any 7 days; MAX 0 to 10000, WINDOW up to 366d); got '{text}'");
        return null;
    }

    // "21:00-08:00", local time; may wrap past midnight.
    private QuietHours? Quiet(SyntaxNode node, string clause)
    {
        var parts = (node.Text ?? "").Split('-');
        if (parts.Length == 2 && Minute(parts[0]) is { } start && Minute(parts[1]) is { } end && start != end)
        {
            return new QuietHours(start, end);
        }

        error(node, clause, $"quiet hours are HH:MM-HH:MM in the user's local time, such as 21:00-08:00; got '{node.Text}'");
        return null;

        static int? Minute(string hhmm) =>
            TimeOnly.TryParseExact(hhmm.Trim(), "HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.None, out var t) ? (t.Hour * 60) + t.Minute : null;
    }

    private SuppressionRule? ReadSuppression(SyntaxNode node)
    {
        const string Clause = "contact_policies.suppression";
        if (node is not SyntaxMap map)
        {
            error(node, Clause, "a suppression rule is a mapping: after, outcomes, within, pause (and scope, ignored_after)");
            return null;
        }

        foreach (var (k, _) in map.Entries)
        {
            if (!SuppressionKeys.Contains(k.Text))
            {
                error(k, Clause, $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, SuppressionKeys)}; a suppression rule has: {string.Join(", ", SuppressionKeys)}");
            }
        }

        var ok = true;
        if (!int.TryParse(map.Get("after")?.Text, NumberStyles.None, CultureInfo.InvariantCulture, out var after) || after < 1)
        {
            error(map.Get("after") ?? node, Clause + ".after", "'after' is the number of negative outcomes (1 or more) that pause contact");
            ok = false;
        }

        var outcomes = new List<string>();
        foreach (var o in map.Get("outcomes") is SyntaxList list ? list.Items : map.Get("outcomes") is { } single ? [single] : [])
        {
            if (o.Text is { } type && NegativeOutcomes.Contains(type))
            {
                if (outcomes.Contains(type) && !Rules.KeptVersion.Loading) // a version published before this check keeps the meaning it had
                {
                    error(o, Clause + ".outcomes", $"'{type}' is listed twice (each of its outcomes would count twice)");
                    ok = false;
                }

                outcomes.Add(type);
            }
            else
            {
                error(o, Clause + ".outcomes", $"'{o.Text}' is not a negative outcome; expected any of: {string.Join(", ", NegativeOutcomes)}");
                ok = false;
            }
        }

        if (outcomes.Count == 0 && ok)
        {
            error(node, Clause + ".outcomes", $"'outcomes' lists the negative outcomes counted: {string.Join(", ", NegativeOutcomes)}");
            ok = false;
        }

        var within = Window(map, "within", Clause, ref ok);
        var pause = Window(map, "pause", Clause, ref ok);
        var segmentOnly = false;
        if (map.Get("scope") is { } scope)
        {
            if (scope.Text is "segment" or "all")
            {
                segmentOnly = scope.Text == "segment";
            }
            else
            {
                error(scope, Clause + ".scope", $"'scope' is 'all' (pause all marketing on the channel, the default) or 'segment' (pause only the segment whose decisions drew the outcomes); got '{scope.Text}'");
                ok = false;
            }
        }

        var ignoredAfter = SuppressionRule.DefaultIgnoredAfter;
        if (map.Get("ignored_after") is not null)
        {
            ignoredAfter = Window(map, "ignored_after", Clause, ref ok);
            if (!outcomes.Contains(SuppressionRule.EmailIgnored))
            {
                error(map.Get("ignored_after")!, Clause + ".ignored_after", "'ignored_after' applies only to a rule counting email_ignored");
                ok = false;
            }
        }

        return ok ? new SuppressionRule(after, outcomes, within, pause, segmentOnly, ignoredAfter) : null;
    }

    private TimeSpan Window(SyntaxMap map, string key, string clause, ref bool ok)
    {
        if (Rules.Duration.TryParse(map.Get(key)?.Text, out var value) && value > TimeSpan.Zero && value <= TimeSpan.FromDays(366))
        {
            return value;
        }

        error(map.Get(key) ?? map, clause + "." + key, $"'{key}' is a duration such as 7d or 12h (up to 366d)");
        ok = false;
        return TimeSpan.Zero;
    }
}
