using System.Runtime.InteropServices;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Profiles.Compact;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Scoring;

/// <summary>
/// Derived (inferred) data computed from a profile at an evaluation time: lifecycle stage,
/// engagement status, intent level, lead score and grade, named RFM segment, and decayed
/// category/product affinity. Each function narrows <see cref="EvalContext.ValidUntilTicks"/> to
/// the instant its answer could change with time alone, so cached decisions never go stale.
/// </summary>
public static class DerivedScores
{
    /// <summary>Names of derived traits; a declared or observed value of the same name wins.</summary>
    public static readonly IReadOnlyDictionary<string, FieldType> Traits = new Dictionary<string, FieldType>(StringComparer.Ordinal)
    {
        ["lifecycle_stage"] = FieldType.String,
        ["engagement_status"] = FieldType.String,
        ["intent_level"] = FieldType.String,
        ["lead_score"] = FieldType.Number,
        ["lead_grade"] = FieldType.String,
        ["rfm_segment"] = FieldType.String,
    };

    private const long Day = TimeSpan.TicksPerDay;

    /// <summary>
    /// Most events (the newest) that lead-score signals filtered by page type or category, and affinities,
    /// look at: reading them means walking the events one by one, and this bounds what a write of a profile
    /// with a very long history (a bot, a busy B2B account) costs. Profiles with fewer events are read whole.
    /// </summary>
    public const int ScanHorizon = 1024;

    /// <summary>Computes a derived trait by name; null when the profile has nothing to derive from.</summary>
    public static object? Compute(string name, EvalContext c, ScoringSettings settings) => name switch
    {
        "lifecycle_stage" => LifecycleStage(c),
        "engagement_status" => Engagement(c),
        "intent_level" => Intent(c),
        "lead_score" => c.Profile is null ? null : (double)LeadScore(c, settings.Lead),
        "lead_grade" => c.Profile is null ? null : LeadGrade(GradedLeadScore(c.Profile, LeadScore(c, settings.Lead)), settings.Lead),
        "rfm_segment" => RfmSegment(c.Rfm.Recency(c.Profile), c.Rfm.Frequency(c.Profile), c.Rfm.Monetary(c.Profile)),
        _ => null,
    };

    /// <summary>
    /// new_subscriber (no orders, first seen within 30 days), prospect (no orders, older), first_time_buyer
    /// (1 order), repeat_buyer (2–4 orders), loyal (5+ orders), at_risk (last order 90–180 days ago),
    /// lapsed (last order over 180 days ago).
    /// </summary>
    public static string? LifecycleStage(EvalContext c)
    {
        var p = c.Profile;
        if (p is null || p.TotalEvents == 0)
        {
            return null;
        }

        if (p.Orders == 0)
        {
            c.Until(p.FirstSeenTicks + (30 * Day));
            return c.NowTicks < p.FirstSeenTicks + (30 * Day) ? "new_subscriber" : "prospect";
        }

        var since = c.NowTicks - p.LastPurchaseTicks;
        c.Until(p.LastPurchaseTicks + (90 * Day) + 1); // the stage moves when more than 90 (180) days have passed: one tick after
        c.Until(p.LastPurchaseTicks + (180 * Day) + 1);
        if (since > 180 * Day)
        {
            return "lapsed";
        }

        if (since > 90 * Day)
        {
            return "at_risk";
        }

        return p.Orders switch
        {
            1 => "first_time_buyer",
            >= 5 => "loyal",
            _ => "repeat_buyer",
        };
    }

    /// <summary>
    /// inactive (no event in 30 days), declining (fewer than half the events of the previous 60 days'
    /// 30-day average), high (10+ events in 30 days), otherwise active. Only the user's own events count: the
    /// service's email sends and impressions are what it did, not what the user did (each send would otherwise make an
    /// inactive user active again, and the contact policy's inactive tier would never hold for a user mailed monthly).
    /// A user who was sent or shown something but never did anything is inactive; null without any event at all.
    /// </summary>
    public static string? Engagement(EvalContext c)
    {
        var p = c.Profile;
        if (p is null || p.TotalEvents == 0)
        {
            return null;
        }

        // Each series gives its windowed count in two binary searches, whatever the history's length (a profile that
        // was never sent to nor shown anything has empty ones).
        var all = p.AllEvents;
        var sends = p.Series(EventTypes.EmailSend);
        var impressions = p.Series(EventTypes.Impression);

        var recent = OwnEvents(c, all, sends, impressions, 30 * Day);
        var previous = OwnEvents(c, all, sends, impressions, 90 * Day) - recent;

        if (recent == 0)
        {
            return "inactive";
        }

        if (recent * 2 < previous / 2.0)
        {
            return "declining";
        }

        return recent >= 10 ? "high" : "active";
    }

    // The user's own events in the window: every event but the service's sends and impressions; the count may change
    // when any of the three does.
    private static int OwnEvents(EvalContext c, EventSeries all, EventSeries sends, EventSeries impressions, long window)
    {
        var count = all.CountInWindow(c.NowTicks, window, out var changes);
        c.Until(changes);
        if (sends.Count > 0)
        {
            count -= sends.CountInWindow(c.NowTicks, window, out var sendsChange);
            c.Until(sendsChange);
        }

        if (impressions.Count > 0)
        {
            count -= impressions.CountInWindow(c.NowTicks, window, out var impressionsChange);
            c.Until(impressionsChange);
        }

        return count;
    }

    /// <summary>
    /// ready_to_buy (checkout started or item added to cart in 24 hours), researching (2+ searches or
    /// 3+ product views in 7 days), browsing (any page or product view or search in 7 days), else none.
    /// </summary>
    public static string? Intent(EvalContext c)
    {
        var p = c.Profile;
        if (p is null)
        {
            return null;
        }

        int Count(string type, long window)
        {
            var n = p.Series(type).CountInWindow(c.NowTicks, window, out var changes);
            c.Until(changes);
            return n;
        }

        if (Count(EventTypes.CheckoutStart, Day) + Count(EventTypes.AddToCart, Day) > 0)
        {
            return "ready_to_buy";
        }

        var searches = Count(EventTypes.Search, 7 * Day);
        var views = Count(EventTypes.ProductView, 7 * Day);
        if (searches >= 2 || views >= 3)
        {
            return "researching";
        }

        return searches + views + Count(EventTypes.PageView, 7 * Day) > 0 ? "browsing" : null;
    }

    /// <summary>Lead score 0–100: fit + behaviour + engagement signals + negative signals, clamped.</summary>
    public static int LeadScore(EvalContext c, LeadScoring lead)
    {
        var p = c.Profile;
        if (p is null)
        {
            return 0;
        }

        var score = 0;
        var fits = lead.Fit;
        for (var i = 0; i < fits.Count; i++) // by index: a foreach over the interface would box a list enumerator per score
        {
            var fit = fits[i];
            if (fit.Rule.Evaluate(c))
            {
                score += fit.Points;
            }
        }

        Span<int> counts = stackalloc int[lead.Signals.Count];
        CountSignals(c, p, lead, counts);
        for (var i = 0; i < counts.Length; i++)
        {
            var signal = lead.Signals[i];
            var points = counts[i] * signal.Points;
            // Between 0 and the cap: a cap of the other sign (0 points, or a kept version from before the check) adds nothing
            // rather than itself to every profile.
            score += points >= 0 ? Math.Min(points, Math.Max(signal.Cap, 0)) : Math.Max(points, Math.Min(signal.Cap, 0));
        }

        if (p.TotalEvents > 0)
        {
            // Inactive as engagement judges it: by the user's own events (the service's sends and impressions are not).
            var (lastOwn, nextOwn) = p.OwnEventTicks(c.NowTicks);
            var inactiveAt = lastOwn == long.MinValue ? long.MinValue : lastOwn + lead.InactiveAfter.Ticks;
            c.Until(inactiveAt);
            c.Until(nextOwn); // an event dated ahead counts from its time on
            if (c.NowTicks >= inactiveAt)
            {
                score += lead.InactivePoints;
            }
        }

        return Math.Clamp(score, 0, 100);
    }

    // Events matching each signal within its window. Unfiltered signals use the per-type series (two
    // binary searches), and so do filtered ones (page type, category) when no event of their type is in their
    // window. The other filtered signals share one backward scan from the newest event that stops at the
    // oldest window's start, or once every one of them has reached its cap (older events cannot change the
    // score: it changes when the newest events up to the cap leave the window, which is what the scan reports
    // as the time the result holds until). The scan compares events by their codes in the string pool.
    private static void CountSignals(EvalContext c, Profile p, LeadScoring lead, Span<int> counts)
    {
        var signals = lead.Signals;
        Span<int> scanned = stackalloc int[signals.Count];
        var unsaturated = 0;
        var oldest = long.MaxValue;
        for (var i = 0; i < signals.Count; i++)
        {
            var signal = signals[i];
            var window = signal.Window?.Ticks ?? long.MaxValue;
            var ofType = p.Series(signal.EventType).CountInWindow(c.NowTicks, window, out var changes);
            if ((signal.PageType is null && signal.Category is null) || ofType == 0)
            {
                counts[i] = ofType;
                c.Until(changes); // for a filtered signal: when an event of its type next enters the window
            }
            else if (signal.Saturation > 0)
            {
                scanned[unsaturated++] = i;
                oldest = signal.Window is null ? long.MinValue : Math.Min(oldest, c.NowTicks - window);
            }
        }

        if (unsaturated == 0)
        {
            return;
        }

        // Each scanned signal's type, page type and category as the event log's codes, and its cap in events. A
        // filter compares case-insensitively, so each signal remembers its verdict for the last page type and category
        // code it saw (a profile's events repeat a few); codes below -1 are values the pool did not take and are
        // compared as text.
        scanned = scanned[..unsaturated];
        Span<int> typeCode = stackalloc int[signals.Count];
        Span<int> pageCode = stackalloc int[signals.Count];
        Span<int> categoryCode = stackalloc int[signals.Count];
        Span<int> saturation = stackalloc int[signals.Count];
        foreach (var i in scanned)
        {
            var signal = signals[i];
            typeCode[i] = EventLog.CodeOf(signal.EventType);
            pageCode[i] = signal.PageType is null ? -1 : EventLog.CodeOf(signal.PageType);
            categoryCode[i] = signal.Category is null ? -1 : EventLog.CodeOf(signal.Category);
            saturation[i] = signal.Saturation;
        }

        Span<int> seenPage = stackalloc int[signals.Count];
        Span<bool> pageMatches = stackalloc bool[signals.Count];
        Span<int> seenCategory = stackalloc int[signals.Count];
        Span<bool> categoryMatches = stackalloc bool[signals.Count];
        seenPage.Fill(int.MinValue);
        seenCategory.Fill(int.MinValue);
        var scan = p.Events.Backward(ScanHorizon);
        while (scan.MoveNext())
        {
            var ticks = scan.Ticks;
            if (ticks > c.NowTicks)
            {
                c.Until(ticks);
                continue;
            }

            if (ticks <= oldest)
            {
                break;
            }

            var type = scan.Type;
            foreach (var i in scanned)
            {
                var signal = signals[i];
                if (!scan.Is(type, typeCode[i], signal.EventType) ||
                    counts[i] >= saturation[i] ||
                    (signal.Window is { } w && ticks <= c.NowTicks - w.Ticks) ||
                    (signal.PageType is not null && !Matches(ref scan, scan.PageType, signal.PageType, pageCode[i], ref seenPage[i], ref pageMatches[i])) ||
                    (signal.Category is not null && !Matches(ref scan, scan.Category, signal.Category, categoryCode[i], ref seenCategory[i], ref categoryMatches[i])))
                {
                    continue;
                }

                counts[i]++;
                if (signal.Window is { } window)
                {
                    c.Until(ticks + window.Ticks);
                }

                if (counts[i] == saturation[i] && --unsaturated == 0)
                {
                    return;
                }
            }
        }
    }

    // Whether an event's key (code) equals a filter case-insensitively, remembering the verdict for the last pooled code.
    private static bool Matches(ref EventLog.BackwardScan scan, int code, string filter, int filterCode, ref int seen, ref bool matches)
    {
        if (code == filterCode && code >= 0)
        {
            return true;
        }

        if (code < -1)
        {
            return string.Equals(scan.Text(code), filter, StringComparison.OrdinalIgnoreCase);
        }

        if (code != seen)
        {
            seen = code;
            matches = string.Equals(scan.Text(code), filter, StringComparison.OrdinalIgnoreCase);
        }

        return matches;
    }

    /// <summary>cold, warm, hot or sales_ready by the configured thresholds (by default 0–30, 31–50, 51–80, 81–100).</summary>
    public static string LeadGrade(double score, LeadScoring lead) =>
        score >= lead.SalesReady ? "sales_ready" : score >= lead.Hot ? "hot" : score >= lead.Warm ? "warm" : "cold";

    /// <summary>
    /// The lead score the grade is given for: a <c>lead_score</c> held in a more reliable layer than the
    /// derived one (declared by the user or set by a CRM) wins over the computed <paramref name="computed"/>,
    /// as it does for rules, so that the grade always agrees with the score a reader sees.
    /// </summary>
    public static double GradedLeadScore(Profile profile, int computed)
    {
        ArgumentNullException.ThrowIfNull(profile);
        return profile.Attributes.TryGetValue("lead_score", out var held) && held.Layer != AttributeLayer.Derived && held.Value is double declared
            ? declared
            : computed;
    }

    /// <summary>
    /// The named RFM segment of scores r, f, m (1–5), first match in this order:
    /// champions (4–5 on each; 5-5-5 at the core), at_risk_high_value (r ≤ 2, m ≥ 4), lost (all ≤ 2),
    /// recent_low_value (r ≥ 4, m ≤ 2), vip (f 5, m 5), emerging_vip (r ≥ 4, m ≥ 4),
    /// high_potential (r ≥ 4, m 3), price_sensitive (f ≥ 3, m ≤ 2), core (all 2–4), otherwise other.
    /// Null without purchases.
    /// </summary>
    public static string? RfmSegment(int r, int f, int m) => (r, f, m) switch
    {
        (0, _, _) => null,
        ( >= 4, >= 4, >= 4) => "champions",
        ( <= 2, _, >= 4) => "at_risk_high_value",
        ( <= 2, <= 2, <= 2) => "lost",
        ( >= 4, _, <= 2) => "recent_low_value",
        (_, 5, 5) => "vip",
        ( >= 4, _, >= 4) => "emerging_vip",
        ( >= 4, _, 3) => "high_potential",
        (_, >= 3, <= 2) => "price_sensitive",
        ( >= 2 and <= 4, >= 2 and <= 4, >= 2 and <= 4) => "core",
        _ => "other",
    };

    /// <summary>
    /// The category (or product, with <paramref name="byProduct"/>) with the highest decayed affinity:
    /// each product view counts 1, add to cart 3 and purchase 5, halved every half-life;
    /// interactions older than 8 half-lives are ignored. Also the
    /// time of the latest interaction with it. Decay scales every score alike, so the ranking only
    /// changes with new events, or when the oldest interaction read leaves the 8 half-lives.
    /// </summary>
    public static (string? Top, double Score, long LastTicks) Affinity(Profile? p, long nowTicks, TimeSpan halfLife, bool byProduct = false) =>
        Affinity(p, nowTicks, halfLife, byProduct, out _);

    /// <summary>As <see cref="Affinity(Profile?, long, TimeSpan, bool)"/>; <paramref name="changesAt"/> is when the oldest interaction read leaves the 8 half-lives (the result may change then), or <see cref="long.MaxValue"/>.</summary>
    public static (string? Top, double Score, long LastTicks) Affinity(Profile? p, long nowTicks, TimeSpan halfLife, bool byProduct, out long changesAt)
    {
        var (byCode, scores) = AffinityScores(p, nowTicks, halfLife, byProduct, out changesAt);
        if (scores is null)
        {
            // Every key pooled (the usual case): the best straight from the codes, compared as below.
            (string? Top, double Score, long Last) top = (null, 0, long.MinValue);
            foreach (var (code, (score, last)) in byCode ?? [])
            {
                var name = StringPool.ValueOf(code);
                if (Beats(score, name, top.Score, top.Top))
                {
                    top = (name, score, last);
                }
            }

            return top;
        }

        (string? Top, double Score, long Last) best = (null, 0, long.MinValue);
        foreach (var (name, (score, last)) in ByName(byCode, scores))
        {
            if (Beats(score, name, best.Score, best.Top))
            {
                best = (name, score, last);
            }
        }

        return best;
    }

    /// <summary>
    /// The <paramref name="max"/> categories (or products, with <paramref name="byProduct"/>) of highest decayed
    /// affinity, highest first (ties by ordinal name): the interactions <see cref="Affinity(Profile?, long, TimeSpan, bool, out long)"/>
    /// reads, so the first is its top. <paramref name="changesAt"/> as there.
    /// </summary>
    public static List<string> TopAffinities(Profile? p, long nowTicks, TimeSpan halfLife, bool byProduct, int max, out long changesAt)
    {
        var (byCode, byName) = AffinityScores(p, nowTicks, halfLife, byProduct, out changesAt);
        if (byCode is null && byName is null)
        {
            return [];
        }

        return [.. ByName(byCode, byName ?? new(StringComparer.Ordinal))
            .OrderByDescending(s => s.Value.Score).ThenBy(s => s.Key, StringComparer.Ordinal).Take(max).Select(s => s.Key)];
    }

    // The decayed score and latest interaction of each key read: the newest ScanHorizon events within 8 half-lives,
    // none dated after now. Summed by the pool's code (an int key; no string hashed per event); a key the pool does not
    // hold is summed by name.
    private static (Dictionary<int, (double Score, long Last)>? ByCode, Dictionary<string, (double Score, long Last)>? ByName) AffinityScores(
        Profile? p, long nowTicks, TimeSpan halfLife, bool byProduct, out long changesAt)
    {
        changesAt = long.MaxValue;
        if (p is null)
        {
            return (null, null);
        }

        // Interactions older than 8 half-lives weigh under 0.4% of a fresh one and are not read.
        var horizon = nowTicks - (8 * halfLife.Ticks);
        Dictionary<int, (double Score, long Last)>? byCode = null;
        Dictionary<string, (double Score, long Last)>? byName = null;
        var weights = new ProductSignals.InteractionWeights();
        var scan = p.Events.Backward(ScanHorizon);
        while (scan.MoveNext() && scan.Ticks > horizon)
        {
            var ticks = scan.Ticks;
            var weight = weights.Of(ref scan);
            var key = byProduct ? scan.ProductId : scan.Category;
            if (key == -1 || weight == 0 || ticks > nowTicks)
            {
                continue;
            }

            changesAt = ticks + (8 * halfLife.Ticks); // newest first: the last one counted is the oldest
            var decayed = weight * Math.Pow(0.5, (nowTicks - ticks) / (double)halfLife.Ticks);
            ref var entry = ref key >= 0
                ? ref CollectionsMarshal.GetValueRefOrAddDefault(byCode ??= [], key, out _)
                : ref CollectionsMarshal.GetValueRefOrAddDefault(byName ??= new(StringComparer.Ordinal), scan.Text(key)!, out _);
            entry = (entry.Score + decayed, Math.Max(entry.Last, ticks));
        }

        return (byCode, byName);
    }

    // The pooled keys' scores added to the named ones (a name the pool took after some of its events were logged has both).
    private static Dictionary<string, (double Score, long Last)> ByName(Dictionary<int, (double Score, long Last)>? byCode, Dictionary<string, (double Score, long Last)> byName)
    {
        foreach (var (code, (score, last)) in byCode ?? [])
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(byName, StringPool.ValueOf(code), out _);
            entry = (entry.Score + score, Math.Max(entry.Last, last));
        }

        return byName;
    }

    // The higher score; on a tie the name first in ordinal order, as TopAffinities ranks them (profile.top_categories'
    // first is affinity.top_category), whatever the server's culture.
    private static bool Beats(double score, string name, double bestScore, string? bestName) =>
        bestName is null || score > bestScore || (score == bestScore && string.CompareOrdinal(name, bestName) < 0);
}
