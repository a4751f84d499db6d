using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Decisions;

/// <summary>Contact policies: caps by engagement shared across segments, overrides, suppression, quiet hours in the user's time zone.</summary>
public class ContactPolicyTests
{
    internal const string Policies = """
        contact_policies:
          time_zone: Europe/London
          channels:
            email:
              caps:
                high: 5/7d
                active: 2/7d
                declining: 1/7d
                inactive: 0/7d
                default: 2/7d
              quiet_hours: "21:00-08:00"
              overrides:
                reengage: 1/14d
          suppression:
            - after: 2
              outcomes: [dismiss, email_unsubscribe]
              within: 7d
              pause: 14d
        """;

    private static readonly RequestContext Email = new(Channel: "email");

    // Noon in London in June (BST): outside quiet hours.
    private static readonly DateTimeOffset Noon = new(2026, 6, 10, 11, 0, 0, TimeSpan.Zero);

    private static InMemoryCatalogSource Source(string policies = Policies) => new(
    [
        new CatalogFile("catalog.yaml", TestCatalogs.Schema.Replace("first_name: { type: string, pii: true }", "first_name: { type: string, pii: true }\n    time_zone: { type: string }", StringComparison.Ordinal)),
        new CatalogFile("fallback.yaml", TestCatalogs.Fallback),
        new CatalogFile("segments.yaml", "segments:\n" + string.Join("\n",
            TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }"),
            TestCatalogs.Segment("regular", "behavioural", "{ field: traits.tier, eq: regular }"),
            TestCatalogs.Segment("reengage", "lifecycle", "{ field: traits.tier, eq: lapsed }"))),
        new CatalogFile("policies.yaml", policies),
    ]);

    private static TestWorld World(DateTimeOffset? now = null) => new(Source(), now ?? Noon);

    private static void Traits(TestWorld w, string user, string key, object value) =>
        w.Ingestion.SetTraits(user, new Dictionary<string, object?> { [key] = value }, "crm", AttributeLayer.ZeroParty, null);

    private static void Sent(TestWorld w, string user, Decision d, string sendId) =>
        w.Outcomes.Record(0, new Outcome(sendId, OutcomeType.EmailSend, d.DecisionId, user, "", null, w.Clock.Now));

    [Fact]
    public void The_email_cap_is_shared_by_every_segment_and_only_sends_use_it_up()
    {
        using var w = World();
        Traits(w, "u", "vip", true);
        w.Track("u", "page_view", Noon.AddMinutes(-5)); // active (a user only ever sent to is inactive)
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(ContactAction.Send, w.Decide("u", Email).Contact!.Action); // rendered, not sent: nothing used up
        }

        Sent(w, "u", w.Decide("u", Email), "send-1");
        Sent(w, "u", w.Decide("u", Email), "send-1"); // the same send id again: counted once
        var second = w.Decide("u", Email);
        Assert.Equal((ContactAction.Send, 1, 2), (second.Contact!.Action, second.Contact.Count, second.Contact.Limit));
        Sent(w, "u", second, "send-2");

        var capped = w.Decide("u", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, "cap", 2, 2), (capped.Action, capped.Policy, capped.Count, capped.Limit));
        Assert.Equal("", capped.Reason); // words only when explained: the fields say the same
        Assert.Contains("2 email_send(s) in the last 7d, at most 2: suppressed", w.Decide("u", Email, explain: true).Contact!.Reason, StringComparison.Ordinal);

        // Another segment's campaign on the same channel: the same allowance.
        Traits(w, "u", "vip", false);
        Traits(w, "u", "tier", "regular");
        var other = w.Decide("u", Email);
        Assert.Equal(("regular", ContactAction.Suppress), (other.Winner.Id, other.Contact!.Action));

        // The window rolls: allowed again when the first send leaves it, not a tick before.
        w.Clock.Now = new DateTimeOffset(capped.SendAtTicks, TimeSpan.Zero).AddTicks(-1);
        Assert.Equal(ContactAction.Suppress, w.Decide("u", Email).Contact!.Action);
        w.Clock.Now = new DateTimeOffset(capped.SendAtTicks, TimeSpan.Zero);
        Assert.Equal(ContactAction.Send, w.Decide("u", Email).Contact!.Action);
        Assert.Equal(Noon.AddDays(7).UtcTicks, capped.SendAtTicks); // the first send, 7 days on
    }

    [Fact]
    public void A_capped_users_next_allowed_time_is_checked_against_the_cap_of_their_engagement_then()
    {
        // Regression (review): the time a send leaves the window was given as "next allowed" under today's cap, although by
        // then the user's last own event has left the 30 days that make them active, and the inactive cap allows none:
        // the sender was handed a time at which contact is refused for good (as was fixed for pauses before).
        using var w = World(Noon.AddDays(-2));
        Traits(w, "u", "vip", true);
        w.Track("u", "page_view", Noon.AddDays(-27)); // active until Noon + 3 days
        Sent(w, "u", w.Decide("u", Email), "send-1");
        w.Clock.Now = Noon.AddDays(-1);
        Sent(w, "u", w.Decide("u", Email), "send-2");
        w.Clock.Now = Noon;

        var capped = w.Decide("u", Email, explain: true).Contact!;

        Assert.Equal((ContactAction.Suppress, "active"), (capped.Action, capped.Engagement));
        Assert.Equal(0, capped.SendAtTicks); // never (Noon + 5 days before)
        Assert.Contains("the cap then allows none", capped.Reason, StringComparison.Ordinal);
        w.Clock.Now = Noon.AddDays(5);
        var then = w.Decide("u", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, 0L), (then.Action, then.SendAtTicks)); // as said
    }

    [Fact]
    public void A_time_to_send_is_one_at_which_contact_is_allowed_when_it_comes()
    {
        // Regression (review): a single decision's send_at was the end of quiet hours, or the end of a pause, as seen now:
        // a user whose engagement drops to inactive (a cap of 0) before quiet hours end was told "send at 08:00", and a
        // pause ending at 22:40 local time was given as the time contact is next allowed, inside quiet hours. A sender
        // trusting send_at mailed a user whose cap was 0 (the batch's send times were already checked).
        var lastSeen = new DateTimeOffset(2026, 5, 11, 3, 0, 0, TimeSpan.Zero); // active until 2026-06-10 03:00Z
        using (var w = World(lastSeen))
        {
            Traits(w, "u", "vip", true);
            w.Track("u", "page_view", lastSeen);
            w.Clock.Now = new DateTimeOffset(2026, 6, 9, 22, 0, 0, TimeSpan.Zero); // 23:00 in London: quiet hours until 07:00Z
            var quiet = w.Decide("u", Email, explain: true).Contact!;
            Assert.Equal((ContactAction.Suppress, 0L), (quiet.Action, quiet.SendAtTicks)); // at 07:00Z the inactive cap allows none
            Assert.Contains("none is allowed from then on", quiet.Reason, StringComparison.Ordinal);
            w.Clock.Now = new DateTimeOffset(2026, 6, 10, 7, 0, 0, TimeSpan.Zero);
            var then = w.Decide("u", Email).Contact!;
            Assert.Equal((ContactAction.Suppress, 0L), (then.Action, then.SendAtTicks)); // as said

            // The fields say why, as the reason does (own review: they were the quiet hours' and today's engagement).
            Assert.Equal((then.Policy, then.Engagement, then.Limit), (quiet.Policy, quiet.Engagement, quiet.Limit));
            Assert.Equal(("cap", "inactive", 0), (quiet.Policy, quiet.Engagement, quiet.Limit));
        }

        var firstDismiss = new DateTimeOffset(2026, 6, 1, 21, 30, 0, TimeSpan.Zero);
        using (var w = World(firstDismiss))
        {
            Traits(w, "d", "vip", true);
            var d = w.Decide("d", Email);
            w.Outcomes.Record(0, new Outcome("dismiss-1", OutcomeType.Dismiss, d.DecisionId, "d", "", null, firstDismiss));
            w.Clock.Now = firstDismiss.AddMinutes(10);
            w.Outcomes.Record(0, new Outcome("dismiss-2", OutcomeType.Dismiss, d.DecisionId, "d", "", null, w.Clock.Now));
            w.Clock.Now = new DateTimeOffset(2026, 6, 5, 11, 0, 0, TimeSpan.Zero);
            var paused = w.Decide("d", Email).Contact!;

            // The pause ends 2026-06-15 21:40Z, 22:40 in London: inside quiet hours, which end at 07:00Z the next day.
            Assert.Equal((ContactAction.Suppress, "suppression"), (paused.Action, paused.Policy));
            Assert.Equal(new DateTimeOffset(2026, 6, 16, 7, 0, 0, TimeSpan.Zero).UtcTicks, paused.SendAtTicks);
            w.Clock.Now = new DateTimeOffset(paused.SendAtTicks, TimeSpan.Zero);
            Assert.Equal(ContactAction.Send, w.Decide("d", Email).Contact!.Action);
        }
    }

    [Fact]
    public void A_send_dated_a_few_minutes_ahead_counts_at_once()
    {
        // Regression: the cap counted sends up to now only; a send stamped by a sender whose clock runs 4 minutes fast
        // (accepted: at most 5) did not count for those 4 minutes, and another campaign was sent meanwhile.
        using var w = World();
        Traits(w, "u", "vip", true);
        Sent(w, "u", w.Decide("u", Email), "send-1");
        w.Outcomes.Record(0, new Outcome("send-2", OutcomeType.EmailSend, w.Decide("u", Email).DecisionId, "u", "", null, Noon.AddMinutes(4)));

        var capped = w.Decide("u", Email).Contact!;

        Assert.Equal((ContactAction.Suppress, 2), (capped.Action, capped.Count));
    }

    [Fact]
    public void A_batch_decides_each_user_once_whichever_of_their_ids_is_listed_again()
    {
        // Regression: a user listed twice (or under a stitched visitor id too) got two decisions, each allowed by the
        // cap, and an email send mailed them twice.
        using var w = World();
        Traits(w, "u", "vip", true);
        w.Track("visitor", "page_view", Noon.AddMinutes(-5));
        w.Ingestion.Identify("visitor", "u");

        var items = w.Engine.DecideBatch(["u", "w", "u", "visitor"], Email, null, false).ToList();

        Assert.Equal([ContactAction.Send, ContactAction.Send], items.Take(2).Select(i => i.Decision!.Contact!.Action));
        Assert.Equal(("user_ids[2]", "the same user as user_ids[0]: a batch decides each user once"), (items[2].Error!.Field, items[2].Error!.Description));
        Assert.Equal(("user_ids[3]", "the same user as user_ids[0]: a batch decides each user once"), (items[3].Error!.Field, items[3].Error!.Description));
        Assert.All(items.Skip(2), i => Assert.Null(i.Decision));
    }

    [Fact]
    public void Above_a_lowered_cap_contact_is_next_allowed_when_enough_sends_have_left_the_window()
    {
        // Four sends recorded on four days (under an earlier, higher cap); the cap is now 2 in 7 days. One more is
        // allowed only when three have left the window: the third send's time plus 7 days, not the first's.
        using var w = World();
        Traits(w, "u", "vip", true);
        w.Track("u", "page_view", Noon.AddMinutes(-5)); // active, whatever the sends
        for (var day = 0; day < 4; day++)
        {
            w.Clock.Now = Noon.AddDays(day);
            Sent(w, "u", w.Decide("u", Email), $"send-{day}");
        }

        var capped = w.Decide("u", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, 4, 2), (capped.Action, capped.Count, capped.Limit));
        Assert.Equal(Noon.AddDays(2 + 7).UtcTicks, capped.SendAtTicks);
        Assert.Contains($"next allowed at {Noon.AddDays(9):yyyy-MM-dd}", w.Decide("u", Email, explain: true).Contact!.Reason, StringComparison.Ordinal);

        w.Clock.Now = Noon.AddDays(8); // the first two have left, two remain: still at the cap
        var stillCapped = w.Decide("u", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, 2, Noon.AddDays(9).UtcTicks), (stillCapped.Action, stillCapped.Count, stillCapped.SendAtTicks));
        w.Clock.Now = new DateTimeOffset(capped.SendAtTicks, TimeSpan.Zero);
        Assert.Equal(ContactAction.Send, w.Decide("u", Email).Contact!.Action);
    }

    [Fact]
    public void An_engagement_level_without_its_own_cap_takes_the_default_and_without_a_default_none()
    {
        // Only 'high' and 'default' declared: a user of another level (no events: no level at all) gets the default cap.
        using var w = new TestWorld(Source(System.Text.RegularExpressions.Regex.Replace(Policies, @"\n\s*(active|declining|inactive): \d/7d", "").Replace("default: 2/7d", "default: 3/7d", StringComparison.Ordinal)), Noon);
        Traits(w, "u", "vip", true);
        Assert.Equal(("cap", 3), (w.Decide("u", Email).Contact!.Policy, w.Decide("u", Email).Contact!.Limit));

        // Only 'high' declared: the same user has no cap.
        using var none = new TestWorld(Source(System.Text.RegularExpressions.Regex.Replace(Policies, @"\n\s*(active|declining|inactive|default): \d/7d", "")), Noon);
        Traits(none, "u", "vip", true);
        Assert.Equal(("none", ContactAction.Send), (none.Decide("u", Email).Contact!.Policy, none.Decide("u", Email).Contact!.Action));
    }

    [Fact]
    public void Inactive_users_get_nothing_except_the_segment_with_its_own_cap()
    {
        using var w = World();
        w.Track("lapsed", "page_view", Noon.AddDays(-40)); // events, but none in 30 days: inactive
        Traits(w, "lapsed", "vip", true);
        var vip = w.Decide("lapsed", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, "inactive", 0, 0L), (vip.Action, vip.Engagement, vip.Limit, vip.SendAtTicks));
        Assert.Contains("never (the cap is 0)", w.Decide("lapsed", Email, explain: true).Contact!.Reason, StringComparison.Ordinal);

        Traits(w, "lapsed", "vip", false);
        Traits(w, "lapsed", "tier", "lapsed");
        var reengage = w.Decide("lapsed", Email);
        Assert.Equal(("reengage", ContactAction.Send, "override", 1), (reengage.Winner.Id, reengage.Contact!.Action, reengage.Contact.Policy, reengage.Contact.Limit));
        Sent(w, "lapsed", reengage, "re-1");
        Assert.Equal(ContactAction.Suppress, w.Decide("lapsed", Email).Contact!.Action); // 1 in 14 days
    }

    [Fact]
    public void The_services_own_sends_and_impressions_do_not_make_an_inactive_user_active()
    {
        // Regression: engagement counted every profile event, the outcomes recorded about the user included: the
        // re-engagement send made the user "active" (cap 2 in 7 days), so the next campaign was sent too.
        using var w = World();
        w.Track("lapsed", "page_view", Noon.AddDays(-40));
        Traits(w, "lapsed", "tier", "lapsed");
        var reengage = w.Decide("lapsed", Email);
        Sent(w, "lapsed", reengage, "re-1");
        w.Outcomes.Record(0, new Outcome("imp-1", OutcomeType.Impression, reengage.DecisionId, "lapsed", "", null, Noon));

        Traits(w, "lapsed", "tier", "regular");
        Traits(w, "lapsed", "vip", true);
        var campaign = w.Decide("lapsed", Email).Contact!;

        Assert.Equal((ContactAction.Suppress, "inactive"), (campaign.Action, campaign.Engagement));
    }

    [Fact]
    public void A_user_only_ever_sent_to_is_inactive()
    {
        // The review of the fix above: a user with sends and no event of their own had no engagement level (the looser
        // default cap), so the least engaged were mailed the most.
        using var w = World(Noon.AddDays(-1));
        Traits(w, "only-sent", "vip", true);
        Sent(w, "only-sent", w.Decide("only-sent", Email), "send-1");
        w.Clock.Now = Noon;

        var contact = w.Decide("only-sent", Email).Contact!;

        Assert.Equal((ContactAction.Suppress, "inactive"), (contact.Action, contact.Engagement));
    }

    [Fact]
    public void Negative_outcomes_pause_contact_for_the_declared_period()
    {
        using var w = World();
        Traits(w, "d", "vip", true);
        var d = w.Decide("d", Email);
        w.Outcomes.Record(0, new Outcome("dismiss-1", OutcomeType.Dismiss, d.DecisionId, "d", "", null, Noon));
        Assert.Equal(ContactAction.Send, w.Decide("d", Email).Contact!.Action); // one is not enough
        w.Clock.Now = Noon.AddDays(2);
        w.Outcomes.Record(0, new Outcome("dismiss-2", OutcomeType.Dismiss, d.DecisionId, "d", "", null, w.Clock.Now));

        var paused = w.Decide("d", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, "suppression", 2), (paused.Action, paused.Policy, paused.Count));
        Assert.Equal(Noon.AddDays(16).UtcTicks, paused.SendAtTicks); // 14 days after the last

        w.Clock.Now = Noon.AddDays(16);
        Assert.Equal(ContactAction.Send, w.Decide("d", Email).Contact!.Action);
    }

    [Fact]
    public void A_pause_longer_than_its_counting_window_lasts_its_whole_length_after_the_last_outcome()
    {
        using var w = World();
        Traits(w, "p", "vip", true);
        var d = w.Decide("p", Email);
        for (var day = 0; day < 3; day++)
        {
            w.Clock.Now = Noon.AddDays(day);
            w.Outcomes.Record(0, new Outcome($"p-dismiss-{day}", OutcomeType.Dismiss, d.DecisionId, "p", "", null, w.Clock.Now));
        }

        // Eight days on, only the last dismissal is within the 7 days counted: the pause it started (14 days) still runs.
        w.Clock.Now = Noon.AddDays(8);
        var paused = w.Decide("p", Email, explain: true).Contact!;
        Assert.Equal((ContactAction.Suppress, "suppression", 3), (paused.Action, paused.Policy, paused.Count));
        Assert.Equal(Noon.AddDays(16).UtcTicks, paused.SendAtTicks);
        Assert.Contains("until 2026-06-26T11:00:00", paused.Reason, StringComparison.Ordinal);

        w.Clock.Now = Noon.AddDays(16).AddMinutes(-1);
        Assert.Equal(ContactAction.Suppress, w.Decide("p", Email).Contact!.Action);
        w.Clock.Now = Noon.AddDays(16);
        Assert.Equal(ContactAction.Send, w.Decide("p", Email).Contact!.Action);
    }

    private const string SegmentPause = """
        contact_policies:
          channels:
            email:
              caps: { default: 100/7d }
          suppression:
            - { after: 2, outcomes: [dismiss], within: 7d, pause: 14d, scope: segment }
        """;

    [Fact]
    public void A_segment_scoped_rule_pauses_only_the_segment_whose_decisions_were_dismissed()
    {
        using var w = new TestWorld(Source(SegmentPause), Noon);
        Traits(w, "s", "vip", true);
        var vip = w.Decide("s", Email);
        w.Outcomes.Record(0, new Outcome("s-dismiss-1", OutcomeType.Dismiss, vip.DecisionId, "s", "", null, Noon));
        w.Outcomes.Record(0, new Outcome("s-dismiss-2", OutcomeType.Dismiss, vip.DecisionId, "s", "", null, Noon.AddMinutes(1)));
        w.Clock.Now = Noon.AddMinutes(2);

        var paused = w.Decide("s", Email, explain: true);
        Assert.Equal(("vip", ContactAction.Suppress, 2), (paused.Winner.Id, paused.Contact!.Action, paused.Contact.Count));
        Assert.Contains("of segment 'vip's decisions", paused.Contact.Reason, StringComparison.Ordinal);
        Assert.Equal(Noon.AddMinutes(1).AddDays(14).UtcTicks, paused.Contact.SendAtTicks);
        w.Clock.Now = Noon.AddDays(8); // both dismissals have left the 7 days counted; the 14-day pause has not ended
        Assert.Equal((ContactAction.Suppress, Noon.AddMinutes(1).AddDays(14).UtcTicks), (w.Decide("s", Email).Contact!.Action, w.Decide("s", Email).Contact!.SendAtTicks));

        Traits(w, "s", "vip", false);
        Traits(w, "s", "tier", "regular"); // another segment's campaign: its offer is not paused
        var regular = w.Decide("s", Email);
        Assert.Equal(("regular", ContactAction.Send), (regular.Winner.Id, regular.Contact!.Action));
    }

    private const string TwoPauses = """
        contact_policies:
          channels:
            email:
              caps: { default: 100/7d }
          suppression:
            - { after: 3, outcomes: [dismiss], within: 7d, pause: 14d }
            - { after: 2, outcomes: [dismiss], within: 7d, pause: 30d, scope: segment }
        """;

    [Fact]
    public void Of_two_pauses_in_force_contact_is_next_allowed_when_the_longer_ends()
    {
        // Regression: only the first rule in force was read: three dismissals gave "until 14 days on" while the
        // segment's 30-day pause was still running then; a sender scheduling at that time mailed into it.
        using var w = new TestWorld(Source(TwoPauses), Noon);
        Traits(w, "s", "vip", true);
        w.Track("s", "page_view", Noon.AddMinutes(-5)); // active: the cap is not what holds
        var vip = w.Decide("s", Email);
        for (var i = 0; i < 3; i++)
        {
            w.Outcomes.Record(0, new Outcome($"s-dismiss-{i}", OutcomeType.Dismiss, vip.DecisionId, "s", "", null, Noon.AddMinutes(i)));
        }

        w.Clock.Now = Noon.AddMinutes(3);
        var paused = w.Decide("s", Email).Contact!;

        Assert.Equal((ContactAction.Suppress, Noon.AddMinutes(2).AddDays(30).UtcTicks), (paused.Action, paused.SendAtTicks));
        w.Clock.Now = Noon.AddDays(15);
        Assert.Equal(ContactAction.Suppress, w.Decide("s", Email).Contact!.Action);
    }

    [Fact]
    public void The_time_after_a_pause_is_judged_by_the_cap_that_applies_when_the_pause_ends()
    {
        // Regression (of the fix above): the time after the pause was checked against today's cap; by the pause's end
        // its own dismissals had left the 30 days counted, the user was inactive (a cap of 0), and a Decide at the time
        // given suppressed for good.
        using var w = new TestWorld(Source(TwoPauses.Replace("{ default: 100/7d }", "{ default: 100/7d, inactive: 0/7d }", StringComparison.Ordinal)), Noon);
        Traits(w, "s", "vip", true);
        var vip = w.Decide("s", Email);
        for (var i = 0; i < 2; i++)
        {
            w.Outcomes.Record(0, new Outcome($"s-dismiss-{i}", OutcomeType.Dismiss, vip.DecisionId, "s", "", null, Noon.AddMinutes(i)));
        }

        w.Clock.Now = Noon.AddMinutes(2);
        var paused = w.Decide("s", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, "suppression", "active", 0L), (paused.Action, paused.Policy, paused.Engagement, paused.SendAtTicks));

        w.Clock.Now = Noon.AddMinutes(1).AddDays(30); // the pause's end
        var then = w.Decide("s", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, "inactive", 0L), (then.Action, then.Engagement, then.SendAtTicks));
    }

    [Fact]
    public void A_pause_over_a_cap_of_zero_gives_no_time_to_send_at()
    {
        // Regression: the pause's end was given as the time to send, though the inactive user's cap of 0 allows
        // nothing then either ("unset when never", as for a cap of 0).
        using var w = new TestWorld(Source(TwoPauses.Replace("pause: 30d", "pause: 60d", StringComparison.Ordinal).Replace("{ default: 100/7d }", "{ default: 100/7d, inactive: 0/7d }", StringComparison.Ordinal)), Noon);
        Traits(w, "s", "vip", true);
        w.Track("s", "page_view", Noon.AddDays(-40)); // inactive (the dismissals, the user's own, are 34 days old too)
        w.Clock.Now = Noon.AddDays(-36);
        var vip = w.Decide("s", Email);
        w.Clock.Now = Noon.AddDays(-34);
        w.Outcomes.Record(0, new Outcome("s-dismiss-1", OutcomeType.Dismiss, vip.DecisionId, "s", "", null, Noon.AddDays(-35)));
        w.Outcomes.Record(0, new Outcome("s-dismiss-2", OutcomeType.Dismiss, vip.DecisionId, "s", "", null, Noon.AddDays(-34)));
        w.Clock.Now = Noon;

        var paused = w.Decide("s", Email).Contact!;
        var batch = w.Engine.DecideBatch(["s"], Email, null, false).Single();

        Assert.Equal((ContactAction.Suppress, "suppression", 0L), (paused.Action, paused.Policy, paused.SendAtTicks));
        Assert.Null(batch.SendTime);
    }

    private const string IgnoredPause = """
        contact_policies:
          channels:
            email:
              caps: { default: 100/7d }
          suppression:
            - { after: 3, outcomes: [email_ignored], within: 30d, pause: 14d, ignored_after: 3d }
        """;

    [Fact]
    public void Emails_ignored_three_times_pause_contact_and_an_opened_one_does_not_count()
    {
        using var w = new TestWorld(Source(IgnoredPause), Noon);
        Traits(w, "i", "vip", true);
        for (var k = 0; k < 4; k++)
        {
            w.Clock.Now = Noon.AddDays(k * 4);
            Sent(w, "i", w.Decide("i", Email), $"i-send-{k}");
            if (k == 1)
            {
                w.Clock.Now = w.Clock.Now.AddHours(5);
                w.Track("i", Events.EventTypes.EmailOpen, campaign: "c1"); // opened within 3 days: not ignored
            }
        }

        // Sends on days 0, 4, 8 and 12; the one of day 4 was opened. On day 14 the day-12 send is not ignored yet.
        w.Clock.Now = Noon.AddDays(14);
        var before = w.Decide("i", Email);
        Assert.Equal(ContactAction.Send, before.Contact!.Action);
        Assert.True(before.ValidUntilTicks <= Noon.AddDays(15).UtcTicks, "the verdict changes when the last send becomes ignored");

        w.Clock.Now = Noon.AddDays(15);
        var paused = w.Decide("i", Email).Contact!;
        Assert.Equal((ContactAction.Suppress, "suppression", 3), (paused.Action, paused.Policy, paused.Count));
        Assert.Equal(Noon.AddDays(15 + 14).UtcTicks, paused.SendAtTicks); // 14 days after the third became ignored
    }

    [Fact]
    public void A_send_time_is_never_inside_a_pause_that_starts_before_it()
    {
        // Regression (review): a batch's send time is the user's best hour after now, up to a day later, and was not
        // checked against the verdict then: an unopened send becoming ignored in between started a 14-day pause, and the
        // sender was told to send an hour into it.
        var start = new DateTimeOffset(2026, 6, 10, 9, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(Source(IgnoredPause), start);
        Traits(w, "i", "vip", true);
        for (var k = 0; k < 3; k++)
        {
            w.Clock.Now = start.AddDays(k);
            Sent(w, "i", w.Decide("i", Email), $"i-send-{k}"); // never opened
        }

        w.Clock.Now = start.AddDays(4).AddHours(3); // two ignored; the third becomes ignored on day 5 at 09:00
        var item = w.Engine.DecideBatch(["i"], Email, null, false).Single();
        Assert.Equal(ContactAction.Send, item.Decision!.Contact!.Action);
        var sendAt = new DateTimeOffset(item.SendTime!.SendAtTicks, TimeSpan.Zero);

        Assert.True(sendAt >= start.AddDays(5 + 14), $"{sendAt:O} is inside the pause from day 5 to day 19");
        w.Clock.Now = sendAt;
        Assert.Equal(ContactAction.Send, w.Decide("i", Email).Contact!.Action); // when it says, contact is allowed
    }

    [Fact]
    public void A_send_time_is_never_inside_a_pause_however_many_pauses_follow_one_another()
    {
        // Regression (review): the send time was checked against the policy four times and the fifth time given
        // unchecked: six daily sends becoming ignored one a day, each pausing contact for a day, put it inside the last pause.
        const string DailyPause = """
            contact_policies:
              channels:
                email:
                  caps: { default: 100/7d }
              suppression:
                - { after: 1, outcomes: [email_ignored], within: 30d, pause: 1d, ignored_after: 7d }
            """;
        var start = new DateTimeOffset(2026, 6, 4, 8, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(Source(DailyPause), start);
        Traits(w, "i", "vip", true);
        for (var k = 0; k < 6; k++)
        {
            w.Clock.Now = start.AddDays(k);
            Sent(w, "i", w.Decide("i", Email), $"i-send-{k}"); // never opened: ignored a week later, one a day
        }

        w.Clock.Now = start.AddDays(6).AddHours(2.5);
        var item = w.Engine.DecideBatch(["i"], Email, null, false).Single();
        Assert.Equal(ContactAction.Send, item.Decision!.Contact!.Action);
        var sendAt = new DateTimeOffset(item.SendTime!.SendAtTicks, TimeSpan.Zero);

        w.Clock.Now = sendAt;
        Assert.Equal(ContactAction.Send, w.Decide("i", Email).Contact!.Action); // when it says, contact is allowed
        Assert.True(sendAt >= start.AddDays(13), $"{sendAt:O} is inside the pauses that end on day 13");
    }

    [Theory]
    [InlineData("2026-03-28T22:30:00Z", "SendAt", "2026-03-29T07:00:00Z")] // 22:30 GMT; the clocks go forward overnight: 08:00 BST is 07:00 UTC
    [InlineData("2026-10-24T22:00:00Z", "SendAt", "2026-10-25T08:00:00Z")] // 23:00 BST; the clocks go back overnight: 08:00 GMT is 08:00 UTC
    [InlineData("2026-06-10T06:59:00Z", "SendAt", "2026-06-10T07:00:00Z")] // 07:59 BST
    [InlineData("2026-06-10T07:00:00Z", "Send", null)] // 08:00 BST: quiet hours end at 08:00
    [InlineData("2026-06-10T19:59:00Z", "Send", null)] // 20:59 BST
    [InlineData("2026-06-10T20:00:00Z", "SendAt", "2026-06-11T07:00:00Z")] // 21:00 BST
    public void Quiet_hours_are_in_the_users_local_time_through_daylight_saving_changes(string now, string action, string? sendAt)
    {
        var at = DateTimeOffset.Parse(now, System.Globalization.CultureInfo.InvariantCulture);
        using var w = World(at);
        Traits(w, "q", "vip", true);

        var contact = w.Decide("q", Email).Contact!;

        Assert.Equal(Enum.Parse<ContactAction>(action), contact.Action);
        Assert.Equal("Europe/London", contact.TimeZone);
        if (sendAt is not null)
        {
            Assert.Equal(DateTimeOffset.Parse(sendAt, System.Globalization.CultureInfo.InvariantCulture).UtcTicks, contact.SendAtTicks);
        }
    }

    [Theory]
    [InlineData("IN", "Asia/Kolkata")]
    [InlineData("NZ", "Pacific/Auckland")]
    [InlineData("BR", "America/Sao_Paulo")]
    [InlineData("Greece", "Europe/Athens")]
    [InlineData("Channel Islands", "Europe/Jersey")]
    [InlineData("RSA", "Africa/Johannesburg")]
    [InlineData("Hong Kong", "Asia/Hong_Kong")]
    [InlineData("United Arab Emirates", "Asia/Dubai")]
    [InlineData("Czech Republic", "Europe/Prague")]
    [InlineData("Iceland", "Atlantic/Reykjavik")]
    public void A_country_the_demo_data_or_iso_names_has_its_own_zone_for_quiet_hours(string country, string zone)
    {
        // Regression: about 22 countries were known; India at 02:00 local time was mailed on London's 20:30.
        var at = new DateTimeOffset(2026, 6, 10, 19, 30, 0, TimeSpan.Zero); // 20:30 in London: outside quiet hours there
        using var w = World(at);
        Traits(w, "z", "vip", true);

        var contact = w.Decide("z", Email with { Country = country }).Contact!;

        Assert.Equal(zone, contact.TimeZone);
    }

    [Fact]
    public void Quiet_hours_ending_at_a_time_the_clocks_skip_end_at_the_first_valid_time_after_it()
    {
        // New York, 8 March 2026: at 02:00 EST the clocks go to 03:00 EDT (07:00 UTC). Quiet hours end at 02:10, a time
        // that does not exist that night: the send is at 03:00 EDT (regression: 03:10, the skipped time was stepped over in
        // quarters of an hour).
        using var w = new TestWorld(Source(Policies.Replace("\"21:00-08:00\"", "\"21:00-02:10\"", StringComparison.Ordinal)), new DateTimeOffset(2026, 3, 8, 5, 0, 0, TimeSpan.Zero));
        Traits(w, "z", "vip", true);
        Traits(w, "z", "time_zone", "America/New_York");

        var c = w.Decide("z", Email).Contact!;

        Assert.Equal(ContactAction.SendAt, c.Action);
        Assert.Equal(new DateTimeOffset(2026, 3, 8, 7, 0, 0, TimeSpan.Zero).UtcTicks, c.SendAtTicks);
    }

    [Fact]
    public void The_time_zone_comes_from_the_profile_then_the_request_country_then_the_catalog()
    {
        var at = new DateTimeOffset(2026, 6, 10, 11, 30, 0, TimeSpan.Zero); // 12:30 in London, 07:30 in New York, 20:30 in Tokyo
        using var w = World(at);
        Traits(w, "z", "vip", true);

        Assert.Equal(("Europe/London", ContactAction.Send), Verdict(w.Decide("z", Email).Contact!));
        Assert.Equal(("Asia/Tokyo", ContactAction.Send), Verdict(w.Decide("z", Email with { Country = "JP" }).Contact!));
        Traits(w, "z", "time_zone", "America/New_York");
        Assert.Equal(("America/New_York", ContactAction.SendAt), Verdict(w.Decide("z", Email with { Country = "JP" }).Contact!));

        static (string, ContactAction) Verdict(ContactDecision c) => (c.TimeZone, c.Action);
    }

    [Fact]
    public void A_channel_without_a_policy_gets_no_verdict_and_explain_shows_the_arithmetic()
    {
        using var w = World();
        Traits(w, "e", "vip", true);

        Assert.Null(w.Decide("e").Contact); // web: no policy
        var explained = w.Decide("e", Email, explain: true);
        Assert.Contains("contact (email): 0 of 2 email_send(s) in the last 7d (engagement 'default'): send", explained.Explanation!.Summary, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("caps:\n        active: two a week", "a cap is MAX/WINDOW")]
    [InlineData("caps:\n        keen: 2/7d", "unknown engagement level 'keen'")]
    [InlineData("overrides:\n        nobody: 1/7d", "unknown segment 'nobody'")]
    [InlineData("quiet_hours: \"late\"", "quiet hours are HH:MM-HH:MM")]
    [InlineData("caps:\n        active: 2/0d", "a cap is MAX/WINDOW")]
    public void Policy_mistakes_are_catalog_errors_at_their_line(string channelBody, string message)
    {
        var yaml = $"contact_policies:\n  channels:\n    email:\n      {channelBody}\n";
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(Source(yaml))).Errors;
        Assert.Contains(errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Line > 0 && e.File == "policies.yaml");
    }

    [Theory]
    [InlineData("contact_policies:\n  time_zone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'")]
    [InlineData("contact_policies:\n  channels:\n    fax: {}\n", "unknown channel 'fax'")]
    [InlineData("contact_policies:\n  suppression:\n    - { after: 2, outcomes: [click], within: 7d, pause: 14d }\n", "'click' is not a negative outcome")]
    [InlineData("contact_policies:\n  suppression:\n    - { after: 0, outcomes: [dismiss], within: 7d, pause: 14d }\n", "'after' is the number of negative outcomes")]
    [InlineData("contact_policies:\n  suppression:\n    - { after: 2, outcomes: [dismiss], within: 7d, pause: 14d, scope: campaign }\n", "'scope' is 'all'")]
    [InlineData("contact_policies:\n  suppression:\n    - { after: 2, outcomes: [dismiss], within: 7d, pause: 14d, ignored_after: 2d }\n", "'ignored_after' applies only to a rule counting email_ignored")]
    [InlineData("contact_policies:\n  suppression:\n    - { after: 2, outcomes: [dismiss, dismiss], within: 7d, pause: 14d }\n", "'dismiss' is listed twice")] // review: one dismissal counted as two, pausing contact after one
    public void Policy_settings_mistakes_are_catalog_errors(string yaml, string message)
    {
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(Source(yaml))).Errors;
        Assert.Contains(errors, e => e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void More_suppression_rules_than_the_limit_are_a_catalog_error()
    {
        // Each rule reads the user's recent outcomes at every decision on a channel with a policy.
        var yaml = "contact_policies:\n  suppression:\n" + string.Concat(Enumerable.Range(0, ContactPolicies.MaxSuppressionRules + 1).Select(_ => "    - { after: 2, outcomes: [dismiss], within: 7d, pause: 14d }\n"));
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(Source(yaml))).Errors;
        Assert.Contains(errors, e => e.Message.Contains($"{ContactPolicies.MaxSuppressionRules + 1} suppression rules (at most {ContactPolicies.MaxSuppressionRules})", StringComparison.Ordinal));
    }

    [Fact]
    public void A_kept_catalog_version_with_more_suppression_rules_than_the_limit_keeps_every_one()
    {
        // Published before the limit: a restart serves it as it was, every rule (the last one is the only one that
        // counts dismissals in a day).
        var rules = string.Concat(Enumerable.Range(0, ContactPolicies.MaxSuppressionRules).Select(_ => "    - { after: 9, outcomes: [email_unsubscribe], within: 7d, pause: 14d }\n"));
        var kept = CatalogLoader.LoadKept(Source("contact_policies:\n  suppression:\n" + rules + "    - { after: 1, outcomes: [dismiss], within: 1d, pause: 2d }\n"));
        Assert.Equal(ContactPolicies.MaxSuppressionRules + 1, kept.ContactPolicies.Suppression.Count);
    }

    [Fact]
    public void A_kept_catalog_version_listing_an_outcome_twice_still_loads_at_start_up()
    {
        // Published before the check: a restart keeps serving it as it was (the check is for what is published now).
        Assert.NotNull(CatalogLoader.LoadKept(Source("contact_policies:\n  suppression:\n    - { after: 2, outcomes: [dismiss, dismiss], within: 7d, pause: 14d }\n")));
    }

    [Fact]
    public void A_time_zone_the_system_cannot_read_falls_back_instead_of_failing_the_decision()
    {
        using var w = World();
        Traits(w, "tz", "vip", true);
        Traits(w, "tz", "time_zone", "Europe"); // a directory of the zone database: reading it throws on Linux

        var contact = w.Decide("tz", Email).Contact!;

        Assert.Equal(("Europe/London", ContactAction.Send), (contact.TimeZone, contact.Action));
        Traits(w, "tz", "time_zone", "europe/paris"); // not a zone (names are case-sensitive)...
        Assert.Equal("Europe/London", w.Decide("tz", Email).Contact!.TimeZone);
        Traits(w, "tz", "time_zone", "Europe/Paris"); // ...which must not hide the real one
        Assert.Equal("Europe/Paris", w.Decide("tz", Email).Contact!.TimeZone);
        Traits(w, "tz", "time_zone", "europe/paris"); // still not a zone once the real one was read (the runtime's zone cache ignores case)
        Assert.Equal("Europe/London", w.Decide("tz", Email).Contact!.TimeZone);
    }

    [Fact]
    public void Utc_is_a_time_zone_in_any_case_and_other_names_only_as_written()
    {
        Assert.True(ContactPolicyReader.TryZone("utc", out var utc));
        Assert.Same(TimeZoneInfo.Utc, utc);
        Assert.True(ContactPolicyReader.TryZone("Europe/Berlin", out _));
        Assert.False(ContactPolicyReader.TryZone("EUROPE/BERLIN", out _)); // after the real one was read (the runtime's cache ignores case)
    }

    [Fact]
    public void A_zone_name_spelt_with_empty_parts_is_not_a_zone()
    {
        // The runtime opens "America//New_York" as the same file, under that name: each spelling would be one more zone
        // remembered for good (a profile trait can carry any of thousands).
        Assert.True(ContactPolicyReader.TryZone("America/New_York", out _));
        foreach (var spelling in new[] { "America//New_York", "America///New_York", "/America/New_York", "America/New_York/", "America/./New_York", "./America/New_York" })
        {
            Assert.False(ContactPolicyReader.TryZone(spelling, out _), spelling);
        }

        using var w = World();
        Traits(w, "tz2", "vip", true);
        Traits(w, "tz2", "time_zone", "Europe//Paris");
        Assert.Equal("Europe/London", w.Decide("tz2", Email).Contact!.TimeZone); // the catalog's zone, not a variant of Paris
    }

    [Fact]
    public void A_web_decision_in_the_cache_is_not_served_for_an_email_request()
    {
        using var w = World();
        Traits(w, "c", "vip", true);
        w.Decide("c");
        w.Decide("c"); // cached from a context's second request
        Assert.True(w.Decide("c").FromCache); // the catalog's rules read no context field: one cache entry per user...

        var email = w.Decide("c", Email);

        Assert.False(email.FromCache); // ...but contact policies read the channel
        Assert.NotNull(email.Contact);
        Assert.Contains(Core.Requests.ContextField.Channel, w.Catalogs.Current.ContextFieldsRead);
    }

    [Fact]
    public void Caps_hold_for_a_user_who_refused_personalization()
    {
        using var w = World();
        Traits(w, "p", "vip", true);
        Sent(w, "p", w.Decide("p", Email), "p-1");
        Sent(w, "p", w.Decide("p", Email), "p-2");
        w.Ingestion.RecordConsent("p", ConsentPurpose.Personalization, granted: false, "banner", null);

        var d = w.Decide("p", Email);

        Assert.Equal(Core.Privacy.ConsentGate.ContextOnly, d.ConsentGate); // the profile is not used to personalize...
        Assert.Equal((ContactAction.Suppress, 2), (d.Contact!.Action, d.Contact.Count)); // ...but its sends still count
    }

    [Fact]
    public void A_user_who_refused_personalization_keeps_the_cap_of_their_own_engagement()
    {
        // Regression: the engagement level was read from the profile the consent gate had hidden, so every such user got
        // the default cap: an inactive user (cap 0) was sent two emails a week, a highly engaged one (cap 5) two.
        using var w = World();
        w.Track("lapsed", "page_view", Noon.AddDays(-40));
        for (var i = 0; i < 10; i++)
        {
            w.Track("keen", "page_view", Noon.AddDays(-i - 1));
        }

        foreach (var user in new[] { "lapsed", "keen" })
        {
            w.Ingestion.RecordConsent(user, ConsentPurpose.Personalization, granted: false, "banner", null);
        }

        var lapsed = w.Decide("lapsed", Email);
        var keen = w.Decide("keen", Email);

        Assert.Equal(Core.Privacy.ConsentGate.ContextOnly, lapsed.ConsentGate);
        Assert.Equal((ContactAction.Suppress, "inactive", 0), (lapsed.Contact!.Action, lapsed.Contact.Engagement, lapsed.Contact.Limit));
        Assert.Equal((ContactAction.Send, "high", 5), (keen.Contact!.Action, keen.Contact.Engagement, keen.Contact.Limit));
    }
}
