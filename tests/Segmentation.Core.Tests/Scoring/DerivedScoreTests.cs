using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Scoring;

public class DerivedScoreTests
{
    private static string? Read(TestWorld w, string field, string user = "u1")
    {
        return w.Catalogs.Current.Field(field).Describe(new EvalContext(w.Store.Get(user), RequestContext.Empty, w.Clock.Now.UtcTicks, w.Rfm.Current));
    }

    [Fact]
    public void Sums_of_money_reach_the_amount_they_add_up_to()
    {
        // Regression: revenue and windowed sums were added in binary floating point: 293.07 + 462.77 + 244.16 came to
        // 999.9999999999999, so "revenue ≥ 1000" (the default catalog's vip rule) did not hold while templates showed 1000,
        // and 10.10 + 20.20 ranked below 30.30 in the RFM monetary quintiles though they are equal.
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("vip", "value", "{ field: orders.revenue, gte: 1000 }"),
            TestCatalogs.Segment("spent_1000_this_month", "behavioural", "{ field: events.purchase.sum, window: 30d, gte: 1000 }")));
        var now = w.Clock.Now;
        foreach (var value in new[] { 293.07, 462.77, 244.16 })
        {
            w.Track("u1", EventTypes.Purchase, now.AddHours(-value / 100), value: value);
        }

        Assert.Equal(1000, w.Store.Get("u1")!.Aggregates.Revenue);
        var explained = w.Decide("u1", explain: true);
        Assert.Contains(explained.Explanation!.Segments, s => s.Segment.Id == "vip" && s.Matched);
        Assert.Contains(explained.Explanation.Segments, s => s.Segment.Id == "spent_1000_this_month" && s.Matched);

        w.Track("u2", EventTypes.Purchase, now.AddHours(-2), value: 10.10);
        w.Track("u2", EventTypes.Purchase, now.AddHours(-1), value: 20.20);
        w.Track("u3", EventTypes.Purchase, now.AddHours(-1), value: 30.30);
        Assert.Equal(w.Store.Get("u3")!.Aggregates.Revenue, w.Store.Get("u2")!.Aggregates.Revenue);
    }

    [Fact]
    public void Lifecycle_stage_follows_orders_and_recency()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        Assert.Equal("<missing>", Read(w, "traits.lifecycle_stage"));

        w.Track("u1", EventTypes.PageView, now.AddDays(-2));
        Assert.Equal("new_subscriber", Read(w, "traits.lifecycle_stage"));
        w.Track("u1", EventTypes.Purchase, now.AddDays(-1), value: 10);
        Assert.Equal("first_time_buyer", Read(w, "traits.lifecycle_stage"));
        w.Track("u1", EventTypes.Purchase, now.AddHours(-1), value: 10);
        Assert.Equal("repeat_buyer", Read(w, "traits.lifecycle_stage"));
        for (var i = 0; i < 3; i++)
        {
            w.Track("u1", EventTypes.Purchase, now.AddMinutes(-i), value: 10);
        }

        Assert.Equal("loyal", Read(w, "traits.lifecycle_stage"));
        w.Clock.Now = now.AddDays(100);
        Assert.Equal("at_risk", Read(w, "traits.lifecycle_stage"));
        w.Clock.Now = now.AddDays(200);
        Assert.Equal("lapsed", Read(w, "traits.lifecycle_stage"));
    }

    [Fact]
    public void A_lifecycle_stage_evaluated_at_its_boundary_is_valid_only_until_the_tick_it_moves()
    {
        // At exactly 90 days a first-time buyer is one still ("more than 90 days" is at risk); the bound said 90 days,
        // which is no bound at that instant, so the decision was valid until 180 days (and at exactly 180, for ever).
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("first_timers", "value", "{ field: traits.lifecycle_stage, eq: first_time_buyer }")));
        var bought = w.Clock.Now.AddDays(-90);
        w.Track("u1", EventTypes.Purchase, bought, value: 10);

        var d = w.Decide("u1");

        Assert.Equal(("first_timers", bought.AddDays(90).UtcTicks + 1), (d.Winner.Id, d.ValidUntilTicks));
        w.Clock.Now = w.Clock.Now.AddTicks(1);
        Assert.Equal("everyone", w.Decide("u1").Winner.Id);
    }

    [Fact]
    public void Engagement_status_is_high_active_declining_or_inactive()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        for (var i = 0; i < 12; i++)
        {
            w.Track("u1", EventTypes.PageView, now.AddDays(-i));
        }

        Assert.Equal("high", Read(w, "traits.engagement_status"));
        w.Clock.Now = now.AddDays(25); // 12 events now 25–36 days old: 5 in the last 30 days, 7 before
        Assert.Equal("active", Read(w, "traits.engagement_status"));
        w.Clock.Now = now.AddDays(29); // 1 in the last 30 days, 11 in the 60 days before
        Assert.Equal("declining", Read(w, "traits.engagement_status"));
        w.Clock.Now = now.AddDays(45);
        Assert.Equal("inactive", Read(w, "traits.engagement_status"));
    }

    [Fact]
    public void Intent_level_reads_recent_searches_views_and_cart()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        w.Track("u1", EventTypes.PageView, now.AddDays(-1));
        Assert.Equal("browsing", Read(w, "traits.intent_level"));
        w.Track("u1", EventTypes.Search, now.AddHours(-5));
        w.Track("u1", EventTypes.Search, now.AddHours(-4));
        Assert.Equal("researching", Read(w, "traits.intent_level"));
        w.Track("u1", EventTypes.AddToCart, now.AddHours(-1));
        Assert.Equal("ready_to_buy", Read(w, "traits.intent_level"));
        w.Clock.Now = now.AddDays(10);
        Assert.Equal("<missing>", Read(w, "traits.intent_level"));
    }

    [Fact]
    public void A_stored_derived_trait_that_no_longer_derives_is_removed_at_the_next_write()
    {
        // Regression (review): a derivation that became null left its last value stored, so the profile's traits (and
        // its export) kept intent_level "browsing" for good after a week without intent.
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        w.Track("u1", EventTypes.PageView, now);
        Assert.Equal("browsing", w.Store.Get("u1")!.Attributes["intent_level"].Value);

        w.Clock.Now = now.AddDays(10);
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "gold" }, "crm", AttributeLayer.ZeroParty, null);

        var profile = w.Store.Get("u1")!;
        Assert.False(profile.Attributes.ContainsKey("intent_level"));
        Assert.Equal("gold", profile.Trait("tier"));

        // A value of the same name from another source in a more reliable layer is not the derivation's to remove.
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["intent_level"] = "researching" }, "crm", AttributeLayer.FirstParty, null);
        w.Clock.Now = now.AddDays(20);
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "silver" }, "crm", AttributeLayer.ZeroParty, null);
        Assert.Equal("researching", w.Store.Get("u1")!.Trait("intent_level"));
    }

    [Fact]
    public void Lead_score_uses_the_frameworks_weights_negative_signals_and_thresholds()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        w.Ingestion.Track(new BehaviourEvent { EventId = "p1", Type = EventTypes.PageView, UserId = "u1", Timestamp = now.AddDays(-1), Context = new EventContext("web", "desktop", "s1", "pricing") });
        Assert.Equal("10", Read(w, "traits.lead_score")); // one pricing page view
        Assert.Equal("cold", Read(w, "traits.lead_grade"));

        w.Ingestion.Track(new BehaviourEvent { EventId = "d1", Type = EventTypes.FormSubmit, UserId = "u1", Timestamp = now, Category = "demo_request", Context = new EventContext("web", "desktop", "s1", "demo") });
        Assert.Equal("40", Read(w, "traits.lead_score")); // + demo request 30
        Assert.Equal("warm", Read(w, "traits.lead_grade"));

        w.Track("u1", EventTypes.EmailUnsubscribe);
        Assert.Equal("20", Read(w, "traits.lead_score")); // unsubscribe -20

        w.Clock.Now = now.AddDays(40); // pricing view out of its 30-day window, and 30+ days inactive: -15
        Assert.Equal("0", Read(w, "traits.lead_score")); // 30 - 20 - 15, clamped at 0
    }

    [Fact]
    public void The_lead_scores_inactive_penalty_reads_the_users_own_events_as_engagement_does()
    {
        // Regression: the penalty read the last event of any kind, so a weekly mail kept a user who did nothing for 40
        // days from it while engagement_status called them inactive.
        var schema = TestCatalogs.Schema + """

            scoring:
              lead:
                signals:
                  - { name: pricing, event: page_view, page_type: pricing, points: 25, cap: 50, window: 90d }
            """;
        using var w = new TestWorld(new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]));
        var now = w.Clock.Now;
        w.Ingestion.Track(new BehaviourEvent { EventId = "p1", Type = EventTypes.PageView, UserId = "u1", Timestamp = now.AddDays(-40), Context = new EventContext("web", "desktop", "s1", "pricing") });
        Assert.Equal("10", Read(w, "traits.lead_score")); // 25 - 15

        w.Outcomes.Record(0, new Core.Outcomes.Outcome("send-1", Core.Outcomes.OutcomeType.EmailSend, w.Decide("u1").DecisionId, "u1", "", null, now));

        Assert.Equal("inactive", Read(w, "traits.engagement_status"));
        Assert.Equal("10", Read(w, "traits.lead_score"));

        // Regression: an event of the user's dated a few minutes ahead (within the accepted clock skew) counted as their
        // latest already, lifting the penalty while engagement, which reads up to now, still called them inactive.
        w.Ingestion.Track(new BehaviourEvent { EventId = "ahead", Type = EventTypes.PageView, UserId = "u1", Timestamp = now.AddMinutes(3), Context = new EventContext("web", "desktop", "s1", "home") });
        Assert.Equal("inactive", Read(w, "traits.engagement_status"));
        Assert.Equal("10", Read(w, "traits.lead_score"));
        w.Clock.Now = now.AddMinutes(3);
        Assert.Equal("25", Read(w, "traits.lead_score")); // from its time on the user is active again
    }

    [Fact]
    public void Lead_scoring_is_configurable_in_the_catalog()
    {
        var schema = TestCatalogs.Schema + """

            scoring:
              cart_abandonment_after: 30m
              lead:
                thresholds: { warm: 10, hot: 20, sales_ready: 30 }
                signals:
                  - { name: pricing, event: page_view, page_type: pricing, points: 25, cap: 50, window: 7d }
                fit:
                  - { name: big_company, points: 10, rule: { field: traits.score, gte: 100 } }
            """;
        using var w = new TestWorld(new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]));
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 500d }, "crm", AttributeLayer.FirstParty, null);
        w.Ingestion.Track(new BehaviourEvent { EventId = "p1", Type = EventTypes.PageView, UserId = "u1", Timestamp = w.Clock.Now, Context = new EventContext("web", "desktop", "s1", "pricing") });

        Assert.Equal("35", Read(w, "traits.lead_score"));
        Assert.Equal("sales_ready", Read(w, "traits.lead_grade"));
        Assert.Equal(TimeSpan.FromMinutes(30), w.Catalogs.Current.Scoring.CartAbandonmentAfter);
    }

    [Fact]
    public void A_signal_of_zero_points_adds_nothing_whatever_its_cap()
    {
        // Regression (review): a penalty switched off with points: 0 (or points left out) and its cap of -20 kept took 20
        // points from every profile, one that never unsubscribed included.
        var schema = TestCatalogs.Schema + """

            scoring:
              lead:
                signals:
                  - { name: pricing, event: page_view, page_type: pricing, points: 25, cap: 50, window: 90d }
                  - { name: unsubscribed, event: email_unsubscribe, points: 0, cap: -20 }
                  - { name: sent, event: email_send, cap: -10 }
            """;
        using var w = new TestWorld(new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]));
        w.Ingestion.Track(new BehaviourEvent { EventId = "p1", Type = EventTypes.PageView, UserId = "u1", Timestamp = w.Clock.Now, Context = new EventContext("web", "desktop", "s1", "pricing") });

        Assert.Equal("25", Read(w, "traits.lead_score"));
        w.Track("u1", EventTypes.EmailUnsubscribe);
        Assert.Equal("25", Read(w, "traits.lead_score"));
    }

    [Fact]
    public void A_group_tests_its_other_clauses_before_one_that_walks_the_events()
    {
        // The default catalog's hot trade lead: a lead grade (computed from up to 1,024 events) and no orders. Written
        // grade first, it computed the lead score on every decision of every buyer (about 1 µs of a 1.25 µs decision);
        // the order count decides for a buyer, and the grade is only computed for a prospect.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment(
            "hot_lead", "intent", "{ all: [ { field: traits.lead_grade, in: [hot, sales_ready] }, { field: orders.count, eq: 0 } ] }")));
        w.Track("buyer", EventTypes.Purchase, value: 20, orderId: "o1");
        w.Track("prospect", EventTypes.PageView);

        var buyer = w.Decide("buyer", explain: true).Explanation!.Segments.Single(s => s.Segment.Id == "hot_lead");
        var prospect = w.Decide("prospect", explain: true).Explanation!.Segments.Single(s => s.Segment.Id == "hot_lead");

        Assert.Equal(["rule", "rule.all[1]"], buyer.Clauses.Select(c => c.Path)); // the grade was not read
        Assert.Equal(("rule.all[1]", false), (buyer.FirstFailingClause, buyer.Matched));
        Assert.Equal(["rule", "rule.all[1]", "rule.all[0]"], prospect.Clauses.Select(c => c.Path)); // no orders: the grade decides
        Assert.Equal("rule.all[0]", prospect.FirstFailingClause); // cold
    }

    [Theory]
    [InlineData("fit:\n      - { name: self, points: 10, rule: { field: traits.lead_score, gte: 50 } }", "cannot read 'traits.lead_score'")]
    [InlineData("fit:\n      - { name: graded, points: 10, rule: { segment: hot_leads } }", "cannot read 'traits.lead_grade'")]
    [InlineData("signals:\n      - { name: unsubscribed, event: email_unsubscribe, points: -10, cap: 5 }", "the cap (5) bounds what the signal's points (-10) add up to")]
    [InlineData("fit:\n      - { name: on_mobile, points: 60, rule: \"context.device == mobile\" }", "cannot read the request context ('context.device'")]
    public void Lead_scoring_that_would_read_itself_or_give_points_to_everyone_is_a_catalog_error(string lead, string message)
    {
        // A fit rule reading the score (or the grade, through a segment) recursed until the process's stack ran out at
        // the first profile write; a cap of the other sign than its points was given to every profile.
        var schema = TestCatalogs.Schema + "\n\nscoring:\n  lead:\n    " + lead + "\n";
        var segments = "segments:\n" + TestCatalogs.Segment("hot_leads", "behavioural", "{ field: traits.lead_grade, eq: hot }");

        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback), new("s.yaml", segments)])));

        Assert.Contains(ex.Errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Line > 0);
    }

    [Fact]
    public void Fit_criteria_count_toward_the_catalogs_conditions_and_their_number_is_bounded()
    {
        // Every profile write evaluates every fit criterion: seven criteria of 8,192 conditions each (a fragment doubled
        // thirteen times) loaded although segments of as many are refused, and so did any number of criteria.
        var fragments = new System.Text.StringBuilder("fragments:\n  f0: { field: orders.count, gte: 0 }\n");
        for (var i = 1; i <= 13; i++)
        {
            fragments.Append($"  f{i}: {{ all: [ {{ fragment: f{i - 1} }}, {{ fragment: f{i - 1} }} ] }}\n");
        }

        CatalogException Load(int criteria, string rule)
        {
            var fit = string.Concat(Enumerable.Range(0, criteria).Select(i => $"\n      - {{ name: c{i}, points: 1, rule: {rule} }}"));
            var schema = TestCatalogs.Schema + "\n\nscoring:\n  lead:\n    fit:" + fit + "\n";
            return Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback), new("f.yaml", fragments.ToString())])));
        }

        Assert.Contains(Load(7, "{ fragment: f13 }").Errors, e => e.Message.Contains("stand for 57,344 conditions once", StringComparison.Ordinal));
        Assert.Contains(Load(201, "\"orders.count >= 1\"").Errors, e => e.Message.Contains("201 fit criteria (at most 200)", StringComparison.Ordinal));
    }

    [Fact]
    public void Filtered_lead_signals_count_up_to_their_cap_and_hold_until_the_capped_events_leave_the_window()
    {
        // Filters compare case-insensitively, also for values too long for the string pool (a category of 100
        // characters); a signal at its cap ignores older events, so its score changes when the newest events up to
        // the cap leave the window.
        var longCategory = "whitepaper-" + new string('x', 89);
        var schema = TestCatalogs.Schema + $$"""

            scoring:
              lead:
                signals:
                  - { name: pricing, event: page_view, page_type: Pricing, points: 10, cap: 20, window: 30d }
                  - { name: whitepaper, event: form_submit, category: "{{longCategory.ToUpperInvariant()}}", points: 5, cap: 50, window: 30d }
                  - { name: demo, event: form_submit, category: demo_request, points: 30, cap: 30, window: 90d }
            """;
        using var w = new TestWorld(new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]));
        var now = w.Clock.Now;
        var n = 0;
        void Track(string type, string pageType, string? category, double daysAgo) =>
            w.Ingestion.Track(new BehaviourEvent { EventId = $"e{n++}", Type = type, UserId = "u1", Timestamp = now.AddDays(-daysAgo), Category = category, Context = new EventContext("web", "desktop", "s1", pageType) });
        for (var d = 14; d >= 10; d--)
        {
            Track(EventTypes.PageView, "pricing", null, d); // five pricing views, the newest 10 days ago: two reach the cap
        }

        Track(EventTypes.FormSubmit, "content", longCategory, 4);
        Track(EventTypes.FormSubmit, "content", longCategory, 3);
        Track(EventTypes.FormSubmit, "content", longCategory, 2);
        for (var i = 0; i < 40; i++)
        {
            Track(EventTypes.PageView, "product", null, 0.5); // newer events that match no filter
        }

        Track(EventTypes.FormSubmit, "demo", "demo_request", 60);

        var lead = w.Catalogs.Current.Scoring.Lead;
        var context = new EvalContext(w.Store.Get("u1"), RequestContext.Empty, now.UtcTicks, w.Rfm.Current);
        Assert.Equal(20 + 15 + 30, DerivedScores.LeadScore(context, lead));
        Assert.Equal(now.AddDays(19).UtcTicks, context.ValidUntilTicks); // the second-newest pricing view leaves its window

        var later = new EvalContext(w.Store.Get("u1"), RequestContext.Empty, now.AddDays(19).UtcTicks, w.Rfm.Current);
        Assert.Equal(10 + 15 + 30, DerivedScores.LeadScore(later, lead));
    }

    [Fact]
    public void A_declared_value_wins_over_the_derived_one()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        w.Track("u1", EventTypes.PageView);
        Assert.Equal("new_subscriber", Read(w, "traits.lifecycle_stage"));
        var stored = w.Store.Get("u1")!.Attributes["lifecycle_stage"];
        Assert.Equal((AttributeLayer.Derived, "new_subscriber"), (stored.Layer, stored.Value));

        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["lifecycle_stage"] = "loyal" }, "crm", AttributeLayer.ZeroParty, null);
        w.Track("u1", EventTypes.PageView);

        Assert.Equal("loyal", Read(w, "traits.lifecycle_stage"));
        Assert.Equal(AttributeLayer.ZeroParty, w.Store.Get("u1")!.Attributes["lifecycle_stage"].Layer);
    }

    [Theory]
    [InlineData(5, 5, 5, "champions")]
    [InlineData(4, 4, 5, "champions")]
    [InlineData(1, 3, 5, "at_risk_high_value")]
    [InlineData(1, 1, 1, "lost")]
    [InlineData(2, 1, 2, "lost")]
    [InlineData(5, 2, 1, "recent_low_value")]
    [InlineData(3, 5, 5, "vip")]
    [InlineData(4, 3, 5, "emerging_vip")]
    [InlineData(5, 1, 3, "high_potential")]
    [InlineData(3, 4, 2, "price_sensitive")]
    [InlineData(3, 4, 3, "core")]
    [InlineData(1, 3, 3, "other")]
    [InlineData(0, 0, 0, null)]
    public void Rfm_scores_map_to_the_frameworks_named_segments(int r, int f, int m, string? expected) =>
        Assert.Equal(expected, DerivedScores.RfmSegment(r, f, m));

    [Fact]
    public void Affinity_decays_so_recent_interest_beats_old_interest()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var now = w.Clock.Now;
        for (var i = 0; i < 4; i++)
        {
            w.Track("u1", EventTypes.ProductView, now.AddDays(-120), category: "garden"); // 4 views, 4 half-lives ago: 0.25
        }

        w.Track("u1", EventTypes.ProductView, now.AddDays(-1), category: "kitchen"); // 1 view, yesterday: ~0.98

        Assert.Equal("kitchen", Read(w, "affinity.top_category"));
        var (_, score, _) = DerivedScores.Affinity(w.Store.Get("u1"), now.UtcTicks, TimeSpan.FromDays(30));
        Assert.Equal(Math.Pow(0.5, 1 / 30d), score, 6);
    }

    [Fact]
    public void A_decision_reading_the_top_category_is_valid_until_its_oldest_interaction_leaves_the_eight_half_lives()
    {
        // The ranking never changes with decay alone, but an interaction older than 8 half-lives is no longer read:
        // the only garden view, 239 days old, stops counting on day 240 and the user then has no top category.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("gardener", "psychographic", "{ field: affinity.top_category, eq: garden }")));
        var viewed = w.Clock.Now.AddDays(-239);
        w.Track("u1", EventTypes.ProductView, viewed, category: "garden");

        var d = w.Decide("u1");

        Assert.Equal("gardener", d.Winner.Id);
        Assert.Equal(viewed.AddDays(240).UtcTicks, d.ValidUntilTicks);
        w.Clock.Now = viewed.AddDays(240);
        Assert.Equal("everyone", w.Decide("u1").Winner.Id);
    }

    [Fact]
    public void On_a_tie_the_top_category_is_the_first_of_the_profiles_top_categories()
    {
        // Regression: the rule field kept the greatest name by the culture's comparison, the template's list the
        // smallest by ordinal order: "shoes" for one, "books" first for the other.
        using var w = new TestWorld(TestCatalogs.Source());
        var at = w.Clock.Now.AddHours(-1);
        w.Track("u1", EventTypes.ProductView, at, category: "shoes");
        w.Track("u1", EventTypes.ProductView, at, category: "books");

        var profile = w.Store.Get("u1");
        Assert.Equal("books", Read(w, "affinity.top_category"));
        Assert.Equal("books", DerivedScores.TopAffinities(profile, w.Clock.Now.UtcTicks, ProductSignals.AffinityHalfLife, byProduct: false, max: 5, out _)[0]);
    }

    [Fact]
    public void Rules_can_ask_for_the_more_recent_of_declared_and_observed_behaviour()
    {
        var schema = TestCatalogs.Schema.Replace("tier: { type: string }", "tier: { type: string, observed_by: affinity.top_category }");
        var source = new InMemoryCatalogSource([
            new("catalog.yaml", schema),
            new("fallback.yaml", TestCatalogs.Fallback),
            new("s.yaml", "segments:\n" +
                TestCatalogs.Segment("declared_kitchen", "preference", "{ field: traits.tier, eq: kitchen }") + "\n" +
                TestCatalogs.Segment("recent_garden", "psychographic", "{ field: traits.tier, resolve: recent, eq: garden }")),
        ]);
        using var w = new TestWorld(source);
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "kitchen" }, "quiz", AttributeLayer.ZeroParty, w.Clock.Now.AddDays(-60));
        w.Track("u1", EventTypes.ProductView, w.Clock.Now.AddDays(-1), category: "garden");

        var d = w.Decide("u1");

        Assert.Contains(d.Matched, m => m.Segment.Id == "declared_kitchen"); // the declared value stands
        Assert.Contains(d.Matched, m => m.Segment.Id == "recent_garden"); // recent behaviour wins when asked
    }

    [Fact]
    public void Cart_abandonment_follows_the_configured_delay()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("abandoner", "behavioural", "{ field: cart.abandoned, eq: true }")));
        var now = w.Clock.Now;
        w.Track("u1", EventTypes.AddToCart, now, quantity: 1, value: 5);

        Assert.Equal("everyone", w.Decide("u1").Winner.Id);
        w.Clock.Now = now.AddMinutes(61);
        Assert.Equal("abandoner", w.Decide("u1").Winner.Id);
        w.Track("u1", EventTypes.Purchase, w.Clock.Now, value: 5);
        Assert.Equal("everyone", w.Decide("u1").Winner.Id);
    }
}
