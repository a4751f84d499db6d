using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Measurement;

public class OutcomeAttributionTests
{
    private static TestWorld World(MeasurementOptions? options = null) => new(TestCatalogs.Source(
        TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }"),
        TestCatalogs.Segment("clicker", "behavioural", "{ field: events.click.count, gte: 2, window: 30d }")), measurement: options);

    private static void Vip(TestWorld w, string user) =>
        w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["vip"] = true }, "crm", AttributeLayer.ZeroParty, null);

    private static Outcome Of(TestWorld w, string eventId, OutcomeType type, string decisionId, string user, VariantKind? variant = VariantKind.Offer, DateTimeOffset? at = null, string? order = null, double value = 0) =>
        new(eventId, type, decisionId, user, "", variant, at ?? w.Clock.Now, order, value, order is null ? null : "GBP");

    private static Kpis SegmentKpis(TestWorld w, string segment) =>
        w.Measurement.Kpis.Query(new KpiQuery(w.Clock.Now.AddDays(-30), w.Clock.Now.AddHours(1), [KpiDimension.Segment])).Rows.SingleOrDefault(r => r.SegmentId == segment)?.Kpis ?? new Kpis();

    private static KpiReport Report(TestWorld w)
    {
        w.Measurement.Drain();
        return w.Measurement.Kpis.Query(new KpiQuery(w.Clock.Now.AddDays(-30), w.Clock.Now.AddHours(1), [KpiDimension.Segment]));
    }

    [Fact]
    public void An_outcome_is_credited_to_the_decision_it_names_and_counted_for_its_segment()
    {
        using var w = World();
        Vip(w, "u1");
        var d = w.Decide("u1");

        var impression = w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Impression, d.DecisionId, "u1"));
        var click = w.Outcomes.Record(1, Of(w, "e2", OutcomeType.Click, d.DecisionId, "u1"));
        var report = Report(w);

        Assert.Equal(Attribution.Decision, impression.Attribution);
        Assert.Equal("vip", impression.SegmentId);
        Assert.Equal(d.DecisionId, click.DecisionId);
        var vip = Assert.Single(report.Rows).Kpis;
        Assert.Equal((1, 1, 1, 1.0), (vip.Decisions, vip.Impressions, vip.Clicks, vip.ClickThroughRate));
        Assert.Equal(1, vip.Reach);
    }

    [Fact]
    public void A_decision_cancelled_after_its_id_was_issued_is_abandoned_so_the_drain_passes_it_at_once()
    {
        // With the drain now waiting up to a minute for a decision still being written, a failed one must say it will
        // never be: a cancelled call would otherwise hold the KPIs (and the journal) for that minute.
        using var w = World();
        Vip(w, "u1");
        using var cancel = new CancellationTokenSource();
        var engine = new DecisionEngine(
            w.Catalogs, new CancellingStore(w.Store, cancel), w.Get<RfmModelProvider>(), new DecisionCache(new DecisionCacheOptions()),
            w.Get<Core.Decisions.Decider>(), w.Clock, w.Get<Core.Privacy.ConsentPolicy>(), w.Measurement, w.Get<SendTimePriorProvider>());
        var issued = w.Measurement.Ledger.Issued;

        Assert.ThrowsAny<OperationCanceledException>(() => engine.Decide(new DecisionRequest("u1", "", RequestContext.Empty, null), cancel.Token));

        Assert.Equal(issued + 1, w.Measurement.Ledger.Issued); // its id was issued
        Assert.False(w.Measurement.Ledger.IsPending(issued)); // and given up: not waited for
        w.Decide("u1");
        Assert.Equal(1, Report(w).Rows.Single().Kpis.Decisions); // the next decision is counted at once
    }

    // Cancels the call while its profile is read: after the engine's first check, before the decider's.
    private sealed class CancellingStore(IProfileStore inner, CancellationTokenSource cancel) : DelegatingProfileStore(inner)
    {
        public override Profile? Get(string key)
        {
            cancel.Cancel();
            return Inner.Get(key);
        }
    }

    [Fact]
    public void A_day_still_kept_reads_the_same_from_its_total_as_from_its_hours()
    {
        // Regression (review): the hours were kept for 90 days and an hour, the day totals for 91 days, so on the 91st
        // day a day's first hour was overwritten: the day read 1 decision from its total and 0 from its hours (a series).
        var day = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")), day.AddMinutes(30));
        Vip(w, "u1");
        w.Decide("u1");
        w.Measurement.Drain();
        w.Clock.Now = day.AddDays(90).AddMinutes(90); // the hour whose slot the first one's was
        w.Decide("u1");
        w.Measurement.Drain();

        var whole = w.Measurement.Kpis.Query(new KpiQuery(day, day.AddDays(1), [KpiDimension.Segment]));
        var hourly = w.Measurement.Kpis.Query(new KpiQuery(day, day.AddDays(1), [KpiDimension.Segment], Series: true));

        Assert.Equal((1L, 1L), (whole.Total.Decisions, hourly.Total.Decisions));
    }

    [Fact]
    public void An_outcome_dated_a_little_into_tomorrow_takes_no_slot_of_a_day_still_kept()
    {
        // Regression (review): the rings had exactly the 91 days a 90-day range touches, so an outcome dated within the
        // allowed 5 minutes ahead, just past midnight, took the slot of the oldest day still asked for: its decisions read 0.
        var oldest = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")), oldest.AddHours(12));
        Vip(w, "u1");
        w.Decide("u1");
        w.Measurement.Drain();

        var today = oldest.AddDays(90);
        w.Clock.Now = today.AddHours(23).AddMinutes(58);
        var d = w.Decide("u1");
        w.Outcomes.Record(0, Of(w, "late-night", OutcomeType.Impression, d.DecisionId, "u1", at: today.AddDays(1).AddMinutes(2)));
        w.Measurement.Drain();

        var day = w.Measurement.Kpis.Query(new KpiQuery(oldest, oldest.AddDays(1), [KpiDimension.Segment]));
        Assert.Equal((1L, 1L), (day.Total.Decisions, day.Total.Reach));
    }

    [Fact]
    public void A_series_estimates_each_days_reach_once_per_row()
    {
        // Regression (review): every hourly point merged every reach sketch of the range for its day's reach, the same for
        // the day's 24 points: a 90-day series of 600 rows was billions of steps and seconds of a server's CPU.
        var day = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")), day.AddMinutes(30));
        for (var hour = 0; hour < 48; hour++)
        {
            w.Clock.Now = day.AddHours(hour).AddMinutes(30);
            var user = hour < 24 ? $"u{hour % 3}" : "u0"; // three users on the first day, one on the second
            Vip(w, user);
            w.Decide(user);
        }

        w.Measurement.Drain();
        var before = w.Measurement.Kpis.ReachEstimates;
        var report = w.Measurement.Kpis.Query(new KpiQuery(day, day.AddDays(2), [KpiDimension.Segment], Series: true));

        var row = Assert.Single(report.Rows);
        Assert.Equal(48, row.Series.Count);
        Assert.All(row.Series.Take(24), p => Assert.Equal(3, p.Kpis.Reach));
        Assert.All(row.Series.Skip(24), p => Assert.Equal(1, p.Kpis.Reach));
        Assert.InRange(w.Measurement.Kpis.ReachEstimates - before, 1, 4); // two days, the row's range and the total
    }

    [Fact]
    public void The_conversion_rate_counts_email_sends_as_exposures_beside_impressions()
    {
        // Regression: the rate divided by impressions only, so an email decision's conversion (no impression: its
        // exposure is the send) made a rate of 0 for its row, and a mix of channels overstated the web's.
        using var w = World();
        Vip(w, "u1");
        Vip(w, "u2");
        var web = w.Decide("u1");
        var email = w.Engine.DecideAsServed(new DecisionRequest("u2", "", new RequestContext(Channel: "email"), w.Clock.Now));
        w.Outcomes.Record(0, Of(w, "w1", OutcomeType.Impression, web.DecisionId, "u1"));
        w.Outcomes.Record(0, Of(w, "m1", OutcomeType.EmailSend, email.DecisionId, "u2", variant: null));
        w.Outcomes.Record(0, Of(w, "m2", OutcomeType.EmailClick, email.DecisionId, "u2", variant: null));
        w.Outcomes.Record(0, Of(w, "m3", OutcomeType.Conversion, email.DecisionId, "u2", variant: null, order: "o1", value: 30));
        w.Measurement.Drain();

        var byChannel = w.Measurement.Kpis.Query(new KpiQuery(w.Clock.Now.AddDays(-30), w.Clock.Now.AddHours(1), [KpiDimension.Channel])).Rows;
        Assert.Equal(1.0, byChannel.Single(r => r.Channel == "email").Kpis.ConversionRate); // one conversion of one send
        Assert.Equal(0.0, byChannel.Single(r => r.Channel == "web").Kpis.ConversionRate);
        var vip = Assert.Single(Report(w).Rows).Kpis;
        Assert.Equal((1, 1, 1, 0.5), (vip.Impressions, vip.EmailSends, vip.Conversions, vip.ConversionRate)); // one of two exposures
        Assert.Equal(0.0, vip.ClickThroughRate); // web clicks per impression; the email's click is an email click
    }

    [Fact]
    public void A_decision_for_another_time_is_a_preview_neither_remembered_nor_counted_and_cannot_take_over_the_kpis()
    {
        using var w = World();
        Vip(w, "u9");
        var served = w.Decide("u9");
        w.Outcomes.Record(0, Of(w, "p1", OutcomeType.Impression, served.DecisionId, "u9"));

        // Years ahead (its hour and day slots would replace today's) and a month back (a replay): previews.
        var ahead = w.Engine.Decide(new DecisionRequest("u9", "", RequestContext.Empty, new DateTimeOffset(2199, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        var replayed = w.Engine.Decide(new DecisionRequest("u9", "", RequestContext.Empty, w.Clock.Now.AddDays(-30)));
        var skewed = w.Engine.Decide(new DecisionRequest("u9", "", RequestContext.Empty, w.Clock.Now.AddMinutes(2))); // a caller's clock a little ahead: served
        Assert.Equal("vip", ahead.Winner.Id);
        Assert.False(w.Measurement.Ledger.TryFind(ahead.DecisionId, out _));
        Assert.False(w.Measurement.Ledger.TryFind(replayed.DecisionId, out _));
        Assert.True(w.Measurement.Ledger.TryFind(skewed.DecisionId, out _));
        Assert.Equal(Attribution.Unattributed, w.Outcomes.Record(0, Of(w, "p2", OutcomeType.Impression, ahead.DecisionId, "u9")).Attribution);

        var vip = Assert.Single(Report(w).Rows).Kpis;
        Assert.Equal((2, 1, 1), (vip.Decisions, vip.Impressions, vip.Reach)); // today's two served decisions and their impression are still there
    }

    [Fact]
    public void The_row_of_outcomes_that_named_no_variant_counts_the_same_decisions_with_or_without_a_series()
    {
        var midnight = new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")), midnight.AddHours(1));
        Vip(w, "u1");
        var d = w.Decide("u1");
        w.Decide("u2");
        w.Clock.Now = midnight.AddHours(3); // the outcome in another hour than the decisions
        w.Outcomes.Record(0, Of(w, "n1", OutcomeType.Click, d.DecisionId, "u1", variant: null));
        w.Measurement.Drain();

        Kpis NoVariant(bool series) => w.Measurement.Kpis.Query(new KpiQuery(midnight, midnight.AddDays(1), [KpiDimension.Variant], Series: series))
            .Rows.Single(r => r.SegmentId == "vip" && r.Variant is null).Kpis;

        var byDay = NoVariant(series: false);
        var byHour = NoVariant(series: true);
        Assert.Equal((1, 1L), (byDay.Decisions, byDay.Clicks)); // every decision of the segment, as each variant's row counts them
        Assert.Equal((byDay.Decisions, byDay.Clicks), (byHour.Decisions, byHour.Clicks));
    }

    [Fact]
    public void A_decision_served_from_the_cache_is_remembered_on_the_channel_that_asked()
    {
        using var w = World();
        Vip(w, "u3");
        var email = new RequestContext(Channel: "email");
        Assert.DoesNotContain(ContextField.Channel, w.Catalogs.Current.ContextFieldsRead); // one cache entry serves every channel
        w.Decide("u3", email);
        w.Decide("u3", email); // cached from the context's second request

        var served = new[] { w.Decide("u3", email), w.Decide("u3", email), w.Decide("u3"), w.Decide("u3", new RequestContext(Channel: "")), w.Decide("u3", new RequestContext(Channel: "Email")), w.Decide("u3", email) };

        Assert.All(served, d => Assert.True(d.FromCache));
        var remembered = served.Select(d => w.Measurement.Ledger.TryFind(d.DecisionId, out var r) ? r : throw new InvalidOperationException(d.DecisionId)).ToArray();
        Assert.Equal(["email", "email", "web", "web", "email", "email"], remembered.Select(r => r.Channel));
        Assert.All(remembered, r => Assert.True(r.Key.FromCache));
        Assert.All(remembered, r => Assert.Equal("vip", r.Segment.Id));
        var report = Report(w);
        Assert.Equal(8, Assert.Single(report.Rows).Kpis.Decisions);
    }

    [Fact]
    public void Outcomes_are_profile_events_that_rules_read()
    {
        using var w = World();
        var first = w.Decide("u2");
        Assert.Equal("everyone", first.Winner.Id);

        w.Outcomes.Record(0, Of(w, "c1", OutcomeType.Click, first.DecisionId, "u2"));
        w.Outcomes.Record(1, Of(w, "c2", OutcomeType.Click, first.DecisionId, "u2"));

        Assert.Equal("clicker", w.Decide("u2").Winner.Id);
        Assert.Equal(2, w.Store.Get("u2")!.Events.Count(e => e.Type == "click"));
        Assert.Equal(0, w.Store.Get("u2")!.Sessions); // outcomes happen outside a session
    }

    [Fact]
    public void A_decision_id_sent_in_upper_case_is_credited_and_kept_in_its_canonical_form()
    {
        using var w = World();
        var d = w.Decide("u1", RequestContext.Empty with { Channel = "email" });

        var send = w.Outcomes.Record(0, Of(w, "s1", OutcomeType.EmailSend, d.DecisionId.ToUpperInvariant(), "u1", VariantKind.Content));
        var open = w.Outcomes.Record(1, Of(w, "o1", OutcomeType.EmailOpen, d.DecisionId, "u1", VariantKind.Content));

        Assert.Equal((Attribution.Decision, d.DecisionId), (send.Attribution, send.DecisionId));
        Assert.Equal(d.DecisionId, open.DecisionId);
        Assert.Equal([d.DecisionId, d.DecisionId], w.Store.Get("u1")!.Events.Select(e => e.CampaignId));
        Assert.Equal(["content", "content"], w.Store.Get("u1")!.Events.Select(e => e.Category));
    }

    [Fact]
    public void Decision_ids_carried_by_outcomes_never_fill_the_shared_string_pool()
    {
        // The pool of low-cardinality strings (event types, categories, product ids) is bounded: were every decision
        // id an outcome carries added to it, a million outcomes would fill it and every new category or product
        // after that would be stored per profile. The ids are kept with their events and still match opens to sends.
        using var w = World();
        var ids = new List<string>();
        for (var i = 0; i < 200; i++)
        {
            var d = w.Decide($"pool-{i}", RequestContext.Empty with { Channel = "email" });
            ids.Add(d.DecisionId);
            w.Outcomes.Record(0, Of(w, $"s{i}", OutcomeType.EmailSend, d.DecisionId, $"pool-{i}", VariantKind.Content));
            w.Outcomes.Record(1, Of(w, $"o{i}", OutcomeType.EmailOpen, d.DecisionId, $"pool-{i}", VariantKind.Content));
        }

        Assert.All(ids, id => Assert.True(Core.Profiles.Compact.StringPool.Find(id) < 0, $"decision id {id} was added to the string pool"));
        var profile = w.Store.Get("pool-7")!;
        Assert.Equal(ids[7], Assert.Single(profile.EmailSends).CampaignId);
        Assert.Contains(ids[7], profile.OpenedCampaigns);
        Assert.Equal([ids[7], ids[7]], profile.Events.Select(e => e.CampaignId));

        // A marketer's campaign id is low-cardinality and still shared through the pool.
        w.Ingestion.Track(new Core.Events.BehaviourEvent { EventId = "open-1", Type = Core.Events.EventTypes.EmailOpen, UserId = "pool-7", Timestamp = w.Clock.Now, CampaignId = "winter-sale-2026-pool-test", Context = new Core.Events.EventContext("email", "unknown", "", "email") });
        Assert.True(Core.Profiles.Compact.StringPool.Find("winter-sale-2026-pool-test") >= 0);
    }

    [Theory]
    [InlineData("not-a-uuid")]
    [InlineData("0190a6e4-7b1c-7d2e-8f3a-123456789abc")] // a well-formed v7 id this service never issued
    public void An_unknown_decision_id_is_accepted_as_unattributed(string decisionId)
    {
        using var w = World();

        var result = w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Click, decisionId, "u1"));

        Assert.Equal(Attribution.Unattributed, result.Attribution);
        Assert.Empty(result.Violations);
        Assert.Equal(1, Report(w).UnattributedOutcomes);
        Assert.NotNull(w.Store.Get("u1")); // still recorded on the profile
    }

    [Fact]
    public void An_outcome_naming_another_users_decision_or_an_expired_one_is_unattributed()
    {
        using var w = World();
        var d = w.Decide("u1");

        var decidedAt = w.Clock.Now;
        var otherUser = w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Impression, d.DecisionId, "u2"));
        w.Clock.Now = decidedAt.AddDays(8);
        var late = w.Outcomes.Record(1, Of(w, "e2", OutcomeType.Impression, d.DecisionId, "u1", at: decidedAt.AddDays(7).AddMinutes(1)));
        var justInTime = w.Outcomes.Record(2, Of(w, "e3", OutcomeType.Impression, d.DecisionId, "u1", at: decidedAt.AddDays(7)));

        Assert.Equal(Attribution.Unattributed, otherUser.Attribution);
        Assert.Equal(Attribution.Unattributed, late.Attribution); // after the 7-day window
        Assert.Equal(Attribution.Decision, justInTime.Attribution);
    }

    [Fact]
    public void A_decision_made_for_an_anonymous_id_is_credited_to_the_user_it_became()
    {
        using var w = World();
        w.Track("anon-1", "page_view");
        var d = w.Decide("anon-1");
        w.Ingestion.Identify("anon-1", "u9");

        var result = w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Impression, d.DecisionId, "u9"));

        Assert.Equal(Attribution.Decision, result.Attribution);
    }

    [Fact]
    public void Re_sending_an_event_id_or_a_second_conversion_of_one_order_is_not_counted_again()
    {
        using var w = World();
        Vip(w, "u1");
        var d = w.Decide("u1");

        var first = w.Outcomes.Record(0, Of(w, "o1", OutcomeType.Conversion, d.DecisionId, "u1", order: "A-1", value: 40));
        var retry = w.Outcomes.Record(1, Of(w, "o1", OutcomeType.Conversion, d.DecisionId, "u1", order: "A-1", value: 40));
        var sameOrder = w.Outcomes.Record(2, Of(w, "o2", OutcomeType.Conversion, d.DecisionId, "u1", order: "A-1", value: 40));
        var otherOrder = w.Outcomes.Record(3, Of(w, "o3", OutcomeType.Conversion, d.DecisionId, "u1", order: "A-2", value: 10));

        Assert.Equal([Attribution.Decision, Attribution.Duplicate, Attribution.Duplicate, Attribution.Decision], new[] { first, retry, sameOrder, otherOrder }.Select(r => r.Attribution));
        var vip = Assert.Single(Report(w).Rows).Kpis;
        Assert.Equal(2, vip.Conversions);
        Assert.Equal(50, vip.Revenue);
    }

    [Fact]
    public void An_order_reported_again_by_last_touch_or_naming_another_decision_is_counted_once()
    {
        using var w = World();
        Vip(w, "u1");
        var email = w.Decide("u1");
        var web = w.Engine.Decide(new DecisionRequest("u1", "", new RequestContext(Device: "other"), Explain: false));
        w.Outcomes.Record(0, Of(w, "i1", OutcomeType.Impression, web.DecisionId, "u1"));

        // The email system reports the order with its decision id; the storefront reports it again without one.
        var named = w.Outcomes.Record(1, Of(w, "o1", OutcomeType.Conversion, email.DecisionId, "u1", order: "A-1", value: 40));
        var lastTouch = w.Outcomes.Record(2, Of(w, "o2", OutcomeType.Conversion, "", "u1", order: "A-1", value: 40));
        var otherDecision = w.Outcomes.Record(3, Of(w, "o3", OutcomeType.Conversion, web.DecisionId, "u1", order: "A-1", value: 40));

        Assert.Equal([Attribution.Decision, Attribution.Duplicate, Attribution.Duplicate], new[] { named, lastTouch, otherDecision }.Select(r => r.Attribution));
        var vip = Assert.Single(Report(w).Rows).Kpis;
        Assert.Equal((1, 40.0), (vip.Conversions, vip.Revenue));
    }

    [Fact]
    public void An_order_reported_again_after_its_decision_was_forgotten_is_still_counted_once()
    {
        // Regression: the order left the memory with its decision, so the storefront's later report of it (no decision
        // id) counted it again, as unattributed and in the user's experiments.
        using var w = World(new MeasurementOptions { RememberedDecisions = 16 });
        Vip(w, "u0");
        var d = w.Decide("u0");
        Assert.Equal(Attribution.Decision, w.Outcomes.Record(0, Of(w, "o1", OutcomeType.Conversion, d.DecisionId, "u0", order: "A-9", value: 40)).Attribution);
        for (var i = 0; i < 40; i++)
        {
            w.Decide($"x{i}"); // the ring of 16 forgets d
            Assert.Equal(Attribution.Unattributed, w.Outcomes.Record(0, Of(w, $"c{i}", OutcomeType.Click, Guid.CreateVersion7().ToString(), $"x{i}")).Attribution); // outcomes prune as the ring moves
        }

        var later = w.Outcomes.Record(0, Of(w, "o2", OutcomeType.Conversion, "", "u0", order: "A-9", value: 40));

        Assert.Equal(Attribution.Duplicate, later.Attribution);
    }

    [Fact]
    public void An_unattributed_order_reported_again_is_counted_once_until_an_attribution_window_after_it()
    {
        using var w = World();
        var first = w.Outcomes.Record(0, Of(w, "c1", OutcomeType.Conversion, "", "u-none", order: "Z-1", value: 5));
        var again = w.Outcomes.Record(1, Of(w, "c2", OutcomeType.Conversion, "", "u-none", order: "Z-1", value: 5));
        Assert.Equal([Attribution.Unattributed, Attribution.Duplicate], new[] { first, again }.Select(r => r.Attribution));

        // Each order is remembered an attribution window after its time, then forgotten: memory stays bounded.
        w.Clock.Now = w.Clock.Now.AddDays(8);
        for (var i = 0; i < 65_536; i++)
        {
            w.Outcomes.Record(2 + i, Of(w, $"n{i}", OutcomeType.Conversion, "", "u-none", order: $"N-{i}", value: 1));
        }

        Assert.DoesNotContain(w.Outcomes.Conversions(), c => c.OrderId == "Z-1");
        Assert.Contains(w.Outcomes.Conversions(), c => c.OrderId == "N-0"); // within its window
    }

    [Fact]
    public void A_conversion_without_a_decision_id_is_credited_to_the_last_impression_at_or_before_it_within_seven_days()
    {
        using var w = World();
        Vip(w, "u1");
        var t0 = w.Clock.Now;
        var older = w.Decide("u1");
        w.Clock.Now = t0.AddDays(1);
        var newer = w.Engine.Decide(new Core.Application.Decisions.DecisionRequest("u1", "", new RequestContext(Device: "other"), Explain: false));
        w.Clock.Now = t0.AddDays(3);
        w.Outcomes.Record(0, Of(w, "i2", OutcomeType.Impression, newer.DecisionId, "u1", at: t0.AddDays(1)));
        w.Outcomes.Record(1, Of(w, "i1", OutcomeType.Impression, older.DecisionId, "u1", at: t0)); // arrives late, happened earlier

        var between = w.Outcomes.Record(2, Of(w, "c1", OutcomeType.Conversion, "", "u1", at: t0.AddHours(12), order: "A", value: 5));
        var after = w.Outcomes.Record(3, Of(w, "c2", OutcomeType.Conversion, "", "u1", at: t0.AddDays(2), order: "B", value: 5));
        var inFuture = w.Outcomes.Record(4, Of(w, "c3", OutcomeType.Conversion, "", "u1", at: t0.AddDays(9), order: "C", value: 5));
        var noImpression = w.Outcomes.Record(5, Of(w, "c4", OutcomeType.Conversion, "", "u-none", order: "D", value: 5));

        Assert.Equal((Attribution.LastImpression, older.DecisionId), (between.Attribution, between.DecisionId));
        Assert.Equal((Attribution.LastImpression, newer.DecisionId), (after.Attribution, after.DecisionId));
        Assert.Equal(Attribution.Rejected, inFuture.Attribution); // in the future for this clock
        Assert.Equal(Attribution.Unattributed, noImpression.Attribution);
    }

    [Fact]
    public void A_conversion_without_a_decision_id_finds_the_last_impression_through_identity_links()
    {
        using var w = World();
        w.Track("anon-7", "page_view");
        var before = w.Decide("anon-7");
        w.Outcomes.Record(0, Of(w, "i1", OutcomeType.Impression, before.DecisionId, "anon-7"));
        w.Ingestion.Identify("anon-7", "u7"); // the visitor signs in, then buys

        var signedIn = w.Outcomes.Record(1, Of(w, "c1", OutcomeType.Conversion, "", "u7", order: "A", value: 5));
        Assert.Equal((Attribution.LastImpression, before.DecisionId), (signedIn.Attribution, signedIn.DecisionId));

        w.Clock.Now = w.Clock.Now.AddMinutes(1);
        var after = w.Decide("u7");
        w.Outcomes.Record(2, Of(w, "i2", OutcomeType.Impression, after.DecisionId, "u7"));
        var byOldId = w.Outcomes.Record(3, Of(w, "c2", OutcomeType.Conversion, "", "anon-7", order: "B", value: 5)); // a tag still sending the old id
        Assert.Equal((Attribution.LastImpression, after.DecisionId), (byOldId.Attribution, byOldId.DecisionId));
    }

    [Fact]
    public void Last_touch_counts_the_window_from_the_impression_not_from_its_decision()
    {
        using var w = World();
        Vip(w, "u1");
        var t0 = w.Clock.Now;
        var d = w.Decide("u1");
        w.Clock.Now = t0.AddDays(6);
        Assert.Equal(Attribution.Decision, w.Outcomes.Record(0, Of(w, "i1", OutcomeType.Impression, d.DecisionId, "u1")).Attribution);
        w.Clock.Now = t0.AddDays(8); // two days after the impression, eight after the decision

        var conversion = w.Outcomes.Record(1, Of(w, "c1", OutcomeType.Conversion, "", "u1", order: "A", value: 5));

        Assert.Equal((Attribution.LastImpression, d.DecisionId), (conversion.Attribution, conversion.DecisionId));
    }

    [Fact]
    public async Task Erasing_a_user_forgets_their_remembered_decisions_and_impressions()
    {
        using var w = World();
        Vip(w, "u1");
        var d = w.Decide("u1");
        var other = w.Decide("u2");
        w.Outcomes.Record(0, Of(w, "i1", OutcomeType.Impression, d.DecisionId, "u1"));

        await w.Rights.ForgetAsync("u1");

        Assert.False(w.Measurement.Ledger.TryFind(d.DecisionId, out _)); // no copy of the id is left with the decision
        Assert.True(w.Measurement.Ledger.TryFind(other.DecisionId, out _));
        Assert.Equal(Attribution.Unattributed, w.Outcomes.Record(1, Of(w, "c1", OutcomeType.Conversion, "", "u1", order: "A", value: 5)).Attribution);
    }

    [Fact]
    public void A_decision_the_ledger_has_forgotten_is_unattributed()
    {
        using var w = World(new MeasurementOptions { RememberedDecisions = 16 });
        var first = w.Decide("u0");
        for (var i = 1; i <= 40; i++)
        {
            w.Decide($"u{i}");
        }

        var result = w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Impression, first.DecisionId, "u0"));
        w.Measurement.Drain();

        Assert.Equal(Attribution.Unattributed, result.Attribution);
        Assert.Equal(25, w.Measurement.Lost); // 41 decisions through a ring of 16, never drained in between
    }

    [Fact]
    public void Invalid_outcomes_are_rejected_with_field_violations_and_record_nothing()
    {
        using var w = World();

        var noDecision = w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Click, "", "u1"));
        var noOrder = w.Outcomes.Record(1, Of(w, "e2", OutcomeType.Conversion, "", "u1", value: 3));
        var negative = w.Outcomes.Record(2, Of(w, "e3", OutcomeType.Conversion, "", "u1", order: "A", value: -1));

        Assert.Equal("outcome.decision_id", Assert.Single(noDecision.Violations).Field);
        Assert.Equal("outcome.conversion.order_id", Assert.Single(noOrder.Violations).Field);
        Assert.Equal("outcome.conversion.value", Assert.Single(negative.Violations).Field);
        Assert.Null(w.Store.Get("u1"));
        Assert.Throws<ValidationException>(() => w.Outcomes.RecordMany([]));
    }

    [Fact]
    public void The_fallback_rate_is_the_share_of_decisions_won_by_the_fallback()
    {
        using var w = World();
        Vip(w, "u1");
        w.Decide("u1");
        w.Decide("u2"); // no segment: the fallback
        w.Decide("u3");
        w.Decide("u3", new RequestContext(Device: "tablet"));

        var report = Report(w);

        Assert.Equal(0.75, report.FallbackRate, 6);
        Assert.Equal(3, report.Rows.Single(r => r.SegmentId == "everyone").Kpis.Decisions);
    }

    [Fact]
    public void Decisions_asked_for_with_an_explanation_are_not_counted()
    {
        using var w = World();
        w.Decide("u1", explain: true);
        w.Decide("u1");

        Assert.Equal(1, Report(w).Total.Decisions);
    }

    [Fact]
    public void Kpis_group_by_channel_and_variant()
    {
        using var w = World();
        Vip(w, "u1");
        var web = w.Decide("u1");
        var email = w.Decide("u1", new RequestContext(Channel: "email"));
        w.Outcomes.Record(0, Of(w, "e1", OutcomeType.Impression, web.DecisionId, "u1", VariantKind.Offer));
        w.Outcomes.Record(1, Of(w, "e2", OutcomeType.EmailOpen, email.DecisionId, "u1", null));
        w.Measurement.Drain();

        var byChannel = w.Measurement.Kpis.Query(new KpiQuery(w.Clock.Now.AddDays(-1), w.Clock.Now.AddHours(1), [KpiDimension.Channel]));
        var byVariant = w.Measurement.Kpis.Query(new KpiQuery(w.Clock.Now.AddDays(-1), w.Clock.Now.AddHours(1), [KpiDimension.Variant], Series: true));

        Assert.Equal(["email", "web"], byChannel.Rows.Select(r => r.Channel).Order());
        Assert.All(byChannel.Rows, r => Assert.Equal(1, r.Kpis.Decisions));
        var offer = Assert.Single(byVariant.Rows, r => r.Variant == VariantKind.Offer);
        Assert.Equal(("vip.offer", 2L, 1L), (offer.VariantId, offer.Kpis.Decisions, offer.Kpis.Impressions));
        var whole = Assert.Single(byVariant.Rows, r => r.Variant is null);
        Assert.Equal(1, whole.Kpis.EmailOpens);
        Assert.Equal(6, byVariant.Rows.Count); // five variants and the outcomes that named none
        Assert.Single(offer.Series);
    }

    [Fact]
    public void A_bad_range_or_a_repeated_dimension_is_invalid()
    {
        using var w = World();
        var now = w.Clock.Now;

        Assert.Equal("end", Assert.Single(Assert.Throws<ValidationException>(() => w.Measurement.Kpis.Query(new KpiQuery(now, now.AddHours(-1), []))).Violations).Field);
        Assert.Equal("start", Assert.Single(Assert.Throws<ValidationException>(() => w.Measurement.Kpis.Query(new KpiQuery(now.AddDays(-91), now, []))).Violations).Field);
        Assert.Equal("group_by", Assert.Single(Assert.Throws<ValidationException>(() => w.Measurement.Kpis.Query(new KpiQuery(now.AddDays(-1), now, [KpiDimension.Channel, KpiDimension.Channel]))).Violations).Field);
    }

    [Fact]
    public void Reach_is_estimated_within_two_percent_and_sketches_merge_as_a_union()
    {
        var a = new ReachSketch();
        var b = new ReachSketch();
        for (var i = 0; i < 60_000; i++)
        {
            a.Add($"user-{i}");
        }

        for (var i = 40_000; i < 100_000; i++)
        {
            b.Add($"user-{i}");
        }

        a.Merge(b);

        Assert.InRange(a.Estimate(), 100_000 * 0.96, 100_000 * 1.04); // about 1.6 % standard error: 4 % is 2.5 sigma
        var small = new ReachSketch();
        foreach (var i in Enumerable.Range(0, 300))
        {
            small.Add($"u{i % 150}");
        }

        Assert.InRange(small.Estimate(), 147, 153); // small sets are counted by linear counting, nearly exactly
    }

    [Fact]
    public void Impressions_of_decisions_the_ledger_forgot_are_pruned()
    {
        using var w = World(new MeasurementOptions { RememberedDecisions = 16 });
        var first = w.Decide("early");
        Assert.Equal(Attribution.Decision, w.Outcomes.Record(0, Of(w, "early-imp", OutcomeType.Impression, first.DecisionId, "early")).Attribution);
        Assert.Contains(w.Outcomes.Impressions(), i => i.UserId == "early");

        // Enough later decisions (with impressions) for the ring to forget the first one, and a quarter ring more.
        for (var i = 0; i < 40; i++)
        {
            var d = w.Decide($"later-{i}");
            w.Outcomes.Record(0, Of(w, $"later-{i}-imp", OutcomeType.Impression, d.DecisionId, $"later-{i}"));
        }

        Assert.DoesNotContain(w.Outcomes.Impressions(), i => i.UserId == "early"); // it could never be credited again
        Assert.True(w.Outcomes.Impressions().Count() <= 16 + 4 + 1, "only users with impressions of decisions the ledger still remembers are kept");
    }
}
