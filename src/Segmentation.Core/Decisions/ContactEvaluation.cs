using System.Collections.Frozen;
using System.Runtime.InteropServices;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;

namespace Segmentation.Core.Decisions;

/// <summary>What the contact policies say about a decision.</summary>
public enum ContactAction
{
    /// <summary>Contact now.</summary>
    Send,

    /// <summary>Do not contact (a cap is reached, or contact is paused after negative outcomes).</summary>
    Suppress,

    /// <summary>Contact, but not before <see cref="ContactDecision.SendAtTicks"/> (quiet hours in the user's time zone).</summary>
    SendAt,
}

/// <summary>The contact policies' verdict on one decision, with the arithmetic behind it.</summary>
/// <param name="Action">Send, suppress or send at a time.</param>
/// <param name="Channel">The channel whose policy applied.</param>
/// <param name="Policy">Which rule decided: <c>cap</c>, <c>override</c> (the segment's own cap), <c>suppression</c>, <c>quiet_hours</c> or <c>none</c>.</param>
/// <param name="Reason">The arithmetic, in words (written when the decision is explained; empty otherwise).</param>
/// <param name="Engagement">The user's engagement level the cap was tiered by (<c>default</c> when none).</param>
/// <param name="Count">Contacts (or negative outcomes, for suppression) counted in the window.</param>
/// <param name="Limit">The cap (or the suppression threshold); -1 when none applied.</param>
/// <param name="Window">The window counted over.</param>
/// <param name="SendAtTicks">For <see cref="ContactAction.SendAt"/>, when (UTC ticks); for a suppression, when contact is next allowed; else 0.</param>
/// <param name="TimeZone">The user's time zone the quiet hours were read in.</param>
public sealed record ContactDecision(ContactAction Action, string Channel, string Policy, string Reason, string Engagement, int Count, int Limit, TimeSpan Window, long SendAtTicks, string TimeZone);

/// <summary>
/// Contact policies applied to a decision, after consent and after the winner is known: first suppression after
/// negative outcomes, then the channel's frequency cap (the winning segment's override, else the cap of the user's
/// engagement level), then quiet hours in the user's time zone. Caps count the profile's own send outcomes
/// (<c>email_send</c> for email, <c>impression</c> otherwise) in a rolling window, so a decision rendered but not
/// sent uses up nothing, and a send re-sent with the same event id counts once. A pure function of the profile,
/// the policies, the request and the time; the decision is valid until the verdict would change.
/// </summary>
public static class ContactEvaluation
{
    /// <summary>
    /// The verdict, or null when the channel has no policy. The arithmetic in words (<see cref="ContactDecision.Reason"/>)
    /// is written only when <paramref name="explain"/> (empty otherwise: the structured fields say the same).
    /// </summary>
    public static ContactDecision? Evaluate(ContactPolicies policies, string channel, Segment winner, Profile? profile, EvalContext context, RequestContext request, bool explain = false)
    {
        ArgumentNullException.ThrowIfNull(policies);
        ArgumentNullException.ThrowIfNull(winner);
        ArgumentNullException.ThrowIfNull(context);
        var verdict = EvaluateNow(policies, channel, winner, profile, context, request, explain);

        // The time given (when to send, or when contact is next allowed) is checked against the policy as it will be
        // then, and moved on while contact is refused at it: by then the user's engagement may have dropped to a level
        // whose cap allows none, an unopened send become ignored and started a pause, or quiet hours begun.
        for (var check = 0; verdict is { Action: ContactAction.SendAt or ContactAction.Suppress, SendAtTicks: > 0 } given && check < MaxTimeChecks; check++)
        {
            var at = given.SendAtTicks;
            var then = EvaluateNow(policies, channel, winner, profile, new EvalContext(profile, request, at, context.Rfm), request, explain: false);
            if (then is null or { Action: ContactAction.Send } || (then.SendAtTicks != 0 && then.SendAtTicks <= at))
            {
                break;
            }

            // A time moved on keeps the rule that decides now; contact refused for good takes the rule, engagement and
            // counts that refuse it then (a cap of 0), since they, not the rule of now, are why there is no time.
            var reason = !explain ? "" : $"{given.Reason}; at {Time(at)} the {channel} policy refuses contact ({then.Policy}, engagement '{then.Engagement}'): "
                + (then.SendAtTicks == 0 ? "none is allowed from then on" : $"contact is next allowed at {Time(then.SendAtTicks)}");
            verdict = then.SendAtTicks == 0
                ? then with { Action = ContactAction.Suppress, Reason = reason }
                : given with { SendAtTicks = then.SendAtTicks, Reason = reason };
        }

        return verdict;
    }

    // How many times a time refused when it comes is moved on (pauses and quiet hours following one another).
    private const int MaxTimeChecks = 32;

    private static ContactDecision? EvaluateNow(ContactPolicies policies, string channel, Segment winner, Profile? profile, EvalContext context, RequestContext request, bool explain)
    {
        if (!policies.TryGetPlan(channel, out var policy, out var capsByTier))
        {
            return null;
        }

        var now = context.NowTicks;
        var tier = Engagement(profile, context) ?? "default";
        var zone = ZoneOf(policies, profile, request);

        // The channel's frequency cap, shared by every segment and campaign on the channel.
        var (cap, name) = CapFor(policy, capsByTier, winner, tier);
        var (sent, frees) = (0, long.MinValue);
        if (cap is not null)
        {
            (sent, frees) = Sends(profile?.Series(policy.ConsumedBy) ?? EventSeries.Empty, now, cap, out var changes);
            context.Until(changes);
        }

        // Suppression after negative outcomes: at least `after` of them within `within` pause contact until `pause` after
        // the last of them, even once they have left the counting window (a pause may be longer than the window). Of the
        // rules in force, the pause that ends last holds; contact is next allowed when it ends and the cap allows a send.
        var rules = policies.Suppression;
        (SuppressionRule Rule, int Count, long Last, long Until)? pause = null;
        for (var r = 0; r < rules.Count; r++)
        {
            var rule = rules[r];
            var (count, last) = rule.SegmentOnly || rule.CountsIgnored
                ? NegativeOutcomes(rule, profile, winner.Id, context)
                : NegativeOutcomesOfAll(rule, profile, context);
            if (last != long.MinValue && (pause is null || last + rule.Pause.Ticks > pause.Value.Until))
            {
                pause = (rule, count, last, last + rule.Pause.Ticks);
            }
        }

        if (pause is { } held)
        {
            context.Until(held.Until);
            var next = AfterPause(policy, capsByTier, winner, profile, context, held.Until);
            var whose = held.Rule.SegmentOnly ? $" of segment '{winner.Id}'s decisions" : "";
            var then = next == held.Until ? "" : next == 0 ? $"; then the {channel} cap of 0 allows none" : $"; then the {channel} cap allows the next at {Time(next)}";
            return new ContactDecision(
                ContactAction.Suppress, channel, "suppression",
                explain ? $"{held.Count} negative outcome(s){whose} ({string.Join(", ", held.Rule.EventTypes)}) within {Duration.Format(held.Rule.Within)}, the last at {Time(held.Last)}, at least {held.Rule.After}: {(held.Rule.SegmentOnly ? "this segment's" : "all")} contact paused {Duration.Format(held.Rule.Pause)} after the last, until {Time(held.Until)}{then}" : "",
                tier, held.Count, held.Rule.After, held.Rule.Within, next, zone.Id);
        }

        if (cap is not null && frees != long.MinValue)
        {
            // When a send leaves the window, the cap that applies then decides (the user's engagement may have changed
            // by then, to a level whose cap allows none), as after a pause.
            var nextAllowed = frees == long.MaxValue ? 0 : AfterPause(policy, capsByTier, winner, profile, context, frees);
            var reason = "";
            if (explain)
            {
                var whose = name == "override" ? $"segment '{winner.Id}''s own {channel} cap" : $"{channel} cap for engagement '{tier}'";
                var next = frees == long.MaxValue ? "never (the cap is 0)"
                    : nextAllowed == 0 ? $"never: when a send leaves the window, at {Time(frees)}, the cap then allows none"
                    : nextAllowed == frees ? $"next allowed at {Time(frees)}"
                    : $"a send leaves the window at {Time(frees)}, and the cap then allows the next at {Time(nextAllowed)}";
                reason = $"{whose}: {sent} {policy.ConsumedBy}(s) in the last {Duration.Format(cap.Window)}, at most {cap.Max}: suppressed; {next}";
            }

            return new ContactDecision(ContactAction.Suppress, channel, name, reason, tier, sent, cap.Max, cap.Window, nextAllowed, zone.Id);
        }

        var allowance = !explain ? "" : cap is null ? $"no {channel} cap" : $"{sent} of {cap.Max} {policy.ConsumedBy}(s) in the last {Duration.Format(cap.Window)} ({(name == "override" ? $"segment '{winner.Id}''s own cap" : $"engagement '{tier}'")})";

        // Quiet hours in the user's local time.
        if (policy.Quiet is { } quiet)
        {
            var offset = ZoneClock.OffsetAt(zone, now);
            var localTicks = now + offset;
            var minute = (int)(localTicks % TimeSpan.TicksPerDay / TimeSpan.TicksPerMinute);
            if (quiet.Contains(minute))
            {
                var sendAt = ZoneClock.NextLocal(zone, now, offset, quiet.EndMinute);
                context.Until(sendAt);
                return new ContactDecision(
                    ContactAction.SendAt, channel, "quiet_hours",
                    explain ? $"{allowance}; {new DateTime(localTicks):HH:mm} in {zone.Id} is inside quiet hours {quiet}: send at {Time(sendAt)}" : "",
                    tier, sent, cap?.Max ?? -1, cap?.Window ?? TimeSpan.Zero, sendAt, zone.Id);
            }

            context.Until(ZoneClock.NextLocal(zone, now, offset, quiet.StartMinute)); // the verdict changes when quiet hours begin
        }

        return new ContactDecision(ContactAction.Send, channel, cap is null ? "none" : name, explain ? $"{allowance}: send" : "", tier, sent, cap?.Max ?? -1, cap?.Window ?? TimeSpan.Zero, 0, zone.Id);
    }

    // The user's engagement level, read from the whole profile even when the consent gate hid it from the rules (contact
    // limits are not personalization); the verdict may change when the level does.
    private static string? Engagement(Profile? profile, EvalContext context)
    {
        if (ReferenceEquals(profile, context.Profile))
        {
            return DerivedScores.Engagement(context);
        }

        var own = new EvalContext(profile, context.Request, context.NowTicks, context.Rfm);
        var tier = DerivedScores.Engagement(own);
        context.Until(own.ValidUntilTicks);
        return tier;
    }

    // When contact is next allowed after a pause ending at `until`: then, if the cap that applies then (the user's
    // engagement may have changed by then: a pause's own outcomes leave the 30 days counted) allows a send; else when it
    // does, or 0 for never (a cap of 0).
    private static long AfterPause(ChannelPolicy policy, FrequencyCap?[] capsByTier, Segment winner, Profile? profile, EvalContext context, long until)
    {
        var tierThen = DerivedScores.Engagement(new EvalContext(profile, context.Request, until, context.Rfm)) ?? "default";
        if (CapFor(policy, capsByTier, winner, tierThen).Cap is not { } cap)
        {
            return until;
        }

        var (_, frees) = Sends(profile?.Series(policy.ConsumedBy) ?? EventSeries.Empty, until, cap, out _);
        return frees == long.MinValue ? until : frees == long.MaxValue ? 0 : frees;
    }

    // The cap that applies to the winner: its own override, else the engagement tier's, else none.
    private static (FrequencyCap? Cap, string Name) CapFor(ChannelPolicy policy, FrequencyCap?[] capsByTier, Segment winner, string tier) =>
        policy.Overrides.Count > 0 && policy.Overrides.TryGetValue(winner.Id, out var own) ? (own, "override")
        : capsByTier[ContactPolicies.TierIndex(tier)] is { } tiered ? (tiered, "cap") : (null, "none");

    // The sends counted against the cap at `at` — one dated up to the accepted clock skew ahead (a sender's fast clock) has
    // happened — and, when they reach it, when one more is allowed (long.MaxValue: never; long.MinValue: not reached).
    // `changesAt` is when the count may change with time alone.
    private static (int Sent, long Frees) Sends(EventSeries series, long at, FrequencyCap cap, out long changesAt)
    {
        var ahead = EventValidator.MaxFutureSkew.Ticks;
        var sent = series.CountInWindow(at + ahead, cap.Window.Ticks + ahead, out var changes);
        changesAt = changes == long.MaxValue ? changes : changes - ahead; // counted as of at + ahead: the change, in real time
        return (sent, sent >= cap.Max ? NextAllowed(series, at, sent, cap) : long.MinValue);
    }

    // When enough sends have left the window for one more: the (sent − max + 1)-th oldest of the window's sends leaves it.
    // That is the oldest only when the user is exactly at the cap; after a cap was lowered (or sends were recorded
    // beyond it) more of them must leave first. Never while the cap is 0.
    private static long NextAllowed(EventSeries series, long now, int sent, FrequencyCap cap)
    {
        if (cap.Max <= 0)
        {
            return long.MaxValue;
        }

        var window = cap.Window.Ticks;
        var first = series.InsertionIndex(now - window); // the oldest send inside the window
        return series.TicksAt(first + sent - cap.Max) + window;
    }

    // How far back a negative outcome can still matter: counted within `within` of a moment at most `pause` ago.
    private static long Reach(SuppressionRule rule) => rule.Within.Ticks > long.MaxValue - rule.Pause.Ticks ? long.MaxValue : rule.Within.Ticks + rule.Pause.Ticks;

    // The pause in force, from the profile's per-type series (the common case: cheap): the latest negative outcome that
    // made `after` within `within`, if its pause has not ended, with the count it made; else (0, long.MinValue).
    private static (int Count, long Last) NegativeOutcomesOfAll(SuppressionRule rule, Profile? profile, EvalContext context)
    {
        if (profile is null)
        {
            return (0, long.MinValue);
        }

        var now = context.NowTicks;
        var reach = Reach(rule);
        var count = 0;
        var types = rule.EventTypes;
        for (var t = 0; t < types.Count; t++) // by index: no enumerator
        {
            count += profile.Series(types[t]).CountInWindow(now, reach, out var changes);
            context.Until(changes);
        }

        if (count < rule.After)
        {
            return (0, long.MinValue); // too few to have started a pause that still runs
        }

        Span<long> times = count <= 128 ? stackalloc long[count] : new long[count]; // a decision allocates nothing for a few outcomes
        var n = 0;
        var from = reach == long.MaxValue ? long.MinValue : now - reach;
        for (var t = 0; t < types.Count; t++)
        {
            var series = profile.Series(types[t]);
            var end = series.InsertionIndex(now);
            for (var i = from == long.MinValue ? 0 : series.InsertionIndex(from); i < end && n < times.Length; i++)
            {
                times[n++] = series.TicksAt(i);
            }
        }

        times = times[..n];
        times.Sort();
        return PauseInForce(times, now, rule);
    }

    // The latest moment T in (now − pause, now] at which at least `after` of the outcomes fell in (T − within, T] — the
    // last of them, whose pause is still running — with how many; else (0, long.MinValue). Times ascending, none after
    // now. The count only rises at an outcome, so only outcomes' times are tried, newest first; the window's oldest
    // index only moves back as they do.
    private static (int Count, long Last) PauseInForce(ReadOnlySpan<long> times, long now, SuppressionRule rule)
    {
        var oldest = times.Length - 1;
        for (var j = times.Length - 1; j >= 0; j--)
        {
            var at = times[j];
            if (at <= now - rule.Pause.Ticks)
            {
                break; // its pause, and every earlier one's, has ended
            }

            oldest = Math.Min(oldest, j);
            while (oldest > 0 && times[oldest - 1] > at - rule.Within.Ticks)
            {
                oldest--;
            }

            if (j - oldest + 1 >= rule.After)
            {
                return (j - oldest + 1, at);
            }
        }

        return (0, long.MinValue);
    }

    // Negative outcomes read from the event log: those credited to the winning segment's decisions (outcome events carry
    // that segment as their page type) when the rule is scoped to the segment, and ignored emails — sends with no open
    // or click within the rule's ignored_after, counted from the moment they became ignored. Returns the pause in force
    // as PauseInForce does.
    private static (int Count, long Last) NegativeOutcomes(SuppressionRule rule, Profile? profile, string segment, EvalContext context)
    {
        if (profile is null)
        {
            return (0, long.MinValue);
        }

        var now = context.NowTicks;
        var reach = Reach(rule);
        var from = reach == long.MaxValue ? long.MinValue : now - reach;
        var ignored = rule.CountsIgnored;
        var engaged = ignored ? Engagement(profile) : [];
        List<long>? counted = null;
        var events = profile.Events;
        for (var i = events.Count - 1; i >= 0; i--)
        {
            var at = events.TicksAt(i);
            if (at > now)
            {
                context.Until(at); // dated later: it may count then
                continue;
            }

            if (at + rule.IgnoredAfter.Ticks <= from)
            {
                break; // older than anything that can still count: the log is in time order (before any test of the type,
                       // so that a long history of other events, or of sends that were opened, is not walked to its start)
            }

            var type = events.TypeAt(i);
            var when = at;
            if (ignored && type == EventTypes.EmailSend)
            {
                when = at + rule.IgnoredAfter.Ticks; // ignored from then on, if nothing was opened or clicked by then
                if (when > now)
                {
                    if (!Opened(engaged, at, now))
                    {
                        context.Until(when); // it may become ignored
                    }

                    continue;
                }

                if (Opened(engaged, at, when))
                {
                    continue;
                }
            }
            else if (!rule.EventTypes.Contains(type))
            {
                continue;
            }

            if (when <= from)
            {
                continue;
            }

            if (rule.SegmentOnly && !string.Equals(events.PageTypeAt(i), segment, StringComparison.Ordinal))
            {
                continue;
            }

            (counted ??= []).Add(when);
        }

        if (counted is null || counted.Count < rule.After)
        {
            return (0, long.MinValue);
        }

        counted.Sort();
        return PauseInForce(CollectionsMarshal.AsSpan(counted), now, rule);
    }

    // The times of every open and click, ascending.
    private static long[] Engagement(Profile profile)
    {
        var opens = profile.Series(EventTypes.EmailOpen).Ticks;
        var clicks = profile.Series(EventTypes.EmailClick).Ticks;
        var all = new long[opens.Length + clicks.Length];
        opens.CopyTo(all);
        clicks.CopyTo(all, opens.Length);
        Array.Sort(all);
        return all;
    }

    // True when an open or click falls in (from, to].
    private static bool Opened(long[] engagement, long from, long to)
    {
        var i = Array.BinarySearch(engagement, from + 1);
        i = i < 0 ? ~i : i;
        return i < engagement.Length && engagement[i] <= to;
    }

    /// <summary>
    /// The user's time zone: the profile's declared trait <c>time_zone</c> if it names one, else the request's
    /// country's, else the profile's observed country's, else the catalog's <c>time_zone</c> (default UTC).
    /// </summary>
    public static TimeZoneInfo ZoneOf(ContactPolicies policies, Profile? profile, RequestContext request)
    {
        ArgumentNullException.ThrowIfNull(policies);
        if (profile?.Trait("time_zone") is string declared && Zones.Named(declared) is { } named)
        {
            return named;
        }

        return Zones.OfCountry(request?.Country) ?? Zones.OfCountry(profile?.Trait(ObservedAttributes.Country) as string) ?? policies.DefaultTimeZone;
    }

    private static string Time(long ticks) => new DateTimeOffset(ticks, TimeSpan.Zero).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// A time zone's UTC offset, remembered per zone for the quarter hour it was asked for (offsets change on
    /// quarter-hour boundaries), so a decision reads its local time without converting through the zone's rules.
    /// </summary>
    internal static class ZoneClock
    {
        private const long Quarter = TimeSpan.TicksPerMinute * 15;
        private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TimeZoneInfo, Remembered> Offsets = [];

        // Slot 0 remembers the quarter hour decisions are made in; slot 1 the one a boundary (the end or start of quiet
        // hours) falls in, which stays the same all day.
        // The zone this thread asked about last and its remembered offsets: most decisions in a row are for one zone,
        // and a thread-static read is cheaper than the table's lookup.
        [ThreadStatic]
        private static (TimeZoneInfo Zone, Remembered Remembered)? t_last;

        public static long OffsetAt(TimeZoneInfo zone, long utcTicks, int slot = 0)
        {
            var quarter = utcTicks - (utcTicks % Quarter);
            Remembered remembered;
            if (t_last is { } last0 && ReferenceEquals(last0.Zone, zone))
            {
                remembered = last0.Remembered;
            }
            else
            {
                remembered = Offsets.GetValue(zone, static _ => new Remembered());
                t_last = (zone, remembered);
            }

            var last = Volatile.Read(ref remembered.Slots[slot]);
            if (last is not null && last.Quarter == quarter)
            {
                return last.Offset;
            }

            var offset = zone.GetUtcOffset(new DateTime(utcTicks, DateTimeKind.Utc)).Ticks;
            Volatile.Write(ref remembered.Slots[slot], new Entry(quarter, offset));
            return offset;
        }

        // The next UTC instant after localTicks at which the zone's local clock reads minuteOfDay (a local time the clocks
        // skip in spring moves to the first valid time after it).
        public static long NextLocal(TimeZoneInfo zone, long utcTicks, long offset, int minuteOfDay)
        {
            var localTicks = utcTicks + offset;
            var target = localTicks - (localTicks % TimeSpan.TicksPerDay) + (minuteOfDay * TimeSpan.TicksPerMinute);
            if (target <= localTicks)
            {
                // On the autumn night the clocks go back, a time in the repeated hour the clock has passed comes again
                // within the hour, under the offset after the change (one night a year: looked at only when the offset
                // changes within the next two hours).
                if (OffsetAt(zone, utcTicks + (2 * TimeSpan.TicksPerHour), slot: 1) != offset
                    && new DateTime(target, DateTimeKind.Unspecified) is var passed && zone.IsAmbiguousTime(passed)
                    && target - zone.GetAmbiguousTimeOffsets(passed).Min().Ticks is var again && again > utcTicks)
                {
                    return again;
                }

                target += TimeSpan.TicksPerDay;
            }

            // No change of offset between now and then (every day but two a year): the same offset converts it back.
            var guess = target - offset;
            if (OffsetAt(zone, guess, slot: 1) == offset)
            {
                return guess;
            }

            // A skipped time: on to the first minute the clocks show (a gap is an hour or two, on two nights a year).
            var local = new DateTime(target, DateTimeKind.Unspecified);
            while (zone.IsInvalidTime(local))
            {
                local = local.AddMinutes(1);
            }

            return TimeZoneInfo.ConvertTimeToUtc(local, zone).Ticks;
        }

        private sealed record Entry(long Quarter, long Offset);

        private sealed class Remembered
        {
            public readonly Entry?[] Slots = new Entry?[2];
        }
    }

    /// <summary>Time zones by name and by country, looked up once each.</summary>
    private static class Zones
    {
        // Zones that exist, by the name asked for (a bounded set), and names asked for that are not zones (at most
        // 1,000 remembered, counted here: ConcurrentDictionary.Count takes every lock).
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, TimeZoneInfo> ByName = new(StringComparer.Ordinal);
        private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> NotZones = new(StringComparer.Ordinal);
        private static int _notZones;

        // The main time zone of countries by ISO 3166 code and by name (the Online Retail data's own names among them: EIRE,
        // RSA, USA, Channel Islands). A country with several zones gets its most populous; "Unspecified" and "European
        // Community" have none (the catalog's zone applies).
        private static readonly Dictionary<string, string> Countries = new(StringComparer.OrdinalIgnoreCase)
        {
            ["GB"] = "Europe/London", ["United Kingdom"] = "Europe/London",
            ["IE"] = "Europe/Dublin", ["EIRE"] = "Europe/Dublin",
            ["FR"] = "Europe/Paris", ["France"] = "Europe/Paris",
            ["DE"] = "Europe/Berlin", ["Germany"] = "Europe/Berlin",
            ["NL"] = "Europe/Amsterdam", ["Netherlands"] = "Europe/Amsterdam",
            ["BE"] = "Europe/Brussels", ["Belgium"] = "Europe/Brussels",
            ["LU"] = "Europe/Luxembourg", ["Luxembourg"] = "Europe/Luxembourg",
            ["ES"] = "Europe/Madrid", ["Spain"] = "Europe/Madrid",
            ["PT"] = "Europe/Lisbon", ["Portugal"] = "Europe/Lisbon",
            ["IT"] = "Europe/Rome", ["Italy"] = "Europe/Rome",
            ["CH"] = "Europe/Zurich", ["Switzerland"] = "Europe/Zurich",
            ["AT"] = "Europe/Vienna", ["Austria"] = "Europe/Vienna",
            ["NO"] = "Europe/Oslo", ["Norway"] = "Europe/Oslo",
            ["SE"] = "Europe/Stockholm", ["Sweden"] = "Europe/Stockholm",
            ["DK"] = "Europe/Copenhagen", ["Denmark"] = "Europe/Copenhagen",
            ["FI"] = "Europe/Helsinki", ["Finland"] = "Europe/Helsinki",
            ["IS"] = "Atlantic/Reykjavik", ["Iceland"] = "Atlantic/Reykjavik",
            ["PL"] = "Europe/Warsaw", ["Poland"] = "Europe/Warsaw",
            ["CZ"] = "Europe/Prague", ["Czech Republic"] = "Europe/Prague",
            ["SK"] = "Europe/Bratislava", ["Slovakia"] = "Europe/Bratislava",
            ["HU"] = "Europe/Budapest", ["Hungary"] = "Europe/Budapest",
            ["SI"] = "Europe/Ljubljana", ["Slovenia"] = "Europe/Ljubljana",
            ["HR"] = "Europe/Zagreb", ["Croatia"] = "Europe/Zagreb",
            ["RO"] = "Europe/Bucharest", ["Romania"] = "Europe/Bucharest",
            ["BG"] = "Europe/Sofia", ["Bulgaria"] = "Europe/Sofia",
            ["GR"] = "Europe/Athens", ["Greece"] = "Europe/Athens",
            ["CY"] = "Asia/Nicosia", ["Cyprus"] = "Asia/Nicosia",
            ["MT"] = "Europe/Malta", ["Malta"] = "Europe/Malta",
            ["LT"] = "Europe/Vilnius", ["Lithuania"] = "Europe/Vilnius",
            ["LV"] = "Europe/Riga", ["Latvia"] = "Europe/Riga",
            ["EE"] = "Europe/Tallinn", ["Estonia"] = "Europe/Tallinn",
            ["UA"] = "Europe/Kyiv", ["Ukraine"] = "Europe/Kyiv",
            ["RS"] = "Europe/Belgrade", ["Serbia"] = "Europe/Belgrade",
            ["TR"] = "Europe/Istanbul", ["Turkey"] = "Europe/Istanbul",
            ["RU"] = "Europe/Moscow", ["Russia"] = "Europe/Moscow",
            ["JE"] = "Europe/Jersey", ["Channel Islands"] = "Europe/Jersey",
            ["GG"] = "Europe/Guernsey", ["Guernsey"] = "Europe/Guernsey",
            ["IM"] = "Europe/Isle_of_Man", ["Isle of Man"] = "Europe/Isle_of_Man",
            ["MC"] = "Europe/Monaco", ["Monaco"] = "Europe/Monaco",
            ["IL"] = "Asia/Jerusalem", ["Israel"] = "Asia/Jerusalem",
            ["AE"] = "Asia/Dubai", ["United Arab Emirates"] = "Asia/Dubai",
            ["SA"] = "Asia/Riyadh", ["Saudi Arabia"] = "Asia/Riyadh",
            ["BH"] = "Asia/Bahrain", ["Bahrain"] = "Asia/Bahrain",
            ["LB"] = "Asia/Beirut", ["Lebanon"] = "Asia/Beirut",
            ["QA"] = "Asia/Qatar", ["Qatar"] = "Asia/Qatar",
            ["KW"] = "Asia/Kuwait", ["Kuwait"] = "Asia/Kuwait",
            ["JO"] = "Asia/Amman", ["Jordan"] = "Asia/Amman",
            ["EG"] = "Africa/Cairo", ["Egypt"] = "Africa/Cairo",
            ["ZA"] = "Africa/Johannesburg", ["RSA"] = "Africa/Johannesburg",
            ["NG"] = "Africa/Lagos", ["Nigeria"] = "Africa/Lagos",
            ["KE"] = "Africa/Nairobi", ["Kenya"] = "Africa/Nairobi",
            ["MA"] = "Africa/Casablanca", ["Morocco"] = "Africa/Casablanca",
            ["IN"] = "Asia/Kolkata", ["India"] = "Asia/Kolkata",
            ["PK"] = "Asia/Karachi", ["Pakistan"] = "Asia/Karachi",
            ["BD"] = "Asia/Dhaka", ["Bangladesh"] = "Asia/Dhaka",
            ["CN"] = "Asia/Shanghai", ["China"] = "Asia/Shanghai",
            ["HK"] = "Asia/Hong_Kong", ["Hong Kong"] = "Asia/Hong_Kong",
            ["TW"] = "Asia/Taipei", ["Taiwan"] = "Asia/Taipei",
            ["KR"] = "Asia/Seoul", ["South Korea"] = "Asia/Seoul",
            ["JP"] = "Asia/Tokyo", ["Japan"] = "Asia/Tokyo",
            ["SG"] = "Asia/Singapore", ["Singapore"] = "Asia/Singapore",
            ["MY"] = "Asia/Kuala_Lumpur", ["Malaysia"] = "Asia/Kuala_Lumpur",
            ["TH"] = "Asia/Bangkok", ["Thailand"] = "Asia/Bangkok",
            ["VN"] = "Asia/Ho_Chi_Minh", ["Vietnam"] = "Asia/Ho_Chi_Minh",
            ["PH"] = "Asia/Manila", ["Philippines"] = "Asia/Manila",
            ["ID"] = "Asia/Jakarta", ["Indonesia"] = "Asia/Jakarta",
            ["AU"] = "Australia/Sydney", ["Australia"] = "Australia/Sydney",
            ["NZ"] = "Pacific/Auckland", ["New Zealand"] = "Pacific/Auckland",
            ["US"] = "America/New_York", ["USA"] = "America/New_York",
            ["CA"] = "America/Toronto", ["Canada"] = "America/Toronto",
            ["MX"] = "America/Mexico_City", ["Mexico"] = "America/Mexico_City",
            ["BR"] = "America/Sao_Paulo", ["Brazil"] = "America/Sao_Paulo",
            ["AR"] = "America/Argentina/Buenos_Aires", ["Argentina"] = "America/Argentina/Buenos_Aires",
            ["CL"] = "America/Santiago", ["Chile"] = "America/Santiago",
            ["CO"] = "America/Bogota", ["Colombia"] = "America/Bogota",
            ["PE"] = "America/Lima", ["Peru"] = "America/Lima",
            ["United States"] = "America/New_York", ["South Africa"] = "Africa/Johannesburg", ["Ireland"] = "Europe/Dublin", ["Czechia"] = "Europe/Prague",
        };

        public static TimeZoneInfo? Named(string id)
        {
            if (ByName.TryGetValue(id, out var zone))
            {
                return zone;
            }

            if (id.Length > 64 || NotZones.ContainsKey(id))
            {
                return null;
            }

            if (!ContactPolicyReader.TryZone(id, out zone))
            {
                if (Volatile.Read(ref _notZones) < 1_000 && NotZones.TryAdd(id, 0))
                {
                    Interlocked.Increment(ref _notZones); // a profile's misspelt zone is not looked up (under the runtime's lock) on every decision
                }

                return null;
            }

            ByName.TryAdd(id, zone);
            return zone;
        }

        // Each country's zone, resolved once (a country whose zone this system does not know is left out).
        private static readonly FrozenDictionary<string, TimeZoneInfo> CountryZones =
            Countries.Select(c => (c.Key, Zone: Named(c.Value))).Where(c => c.Zone is not null)
                .ToFrozenDictionary(c => c.Key, c => c.Zone!, StringComparer.OrdinalIgnoreCase);

        public static TimeZoneInfo? OfCountry(string? country) =>
            country is { Length: > 0 } && CountryZones.TryGetValue(country, out var zone) ? zone : null;
    }
}
