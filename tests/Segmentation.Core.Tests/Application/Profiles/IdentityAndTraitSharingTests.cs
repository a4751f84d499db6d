using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Profiles;

/// <summary>Counting people once, derived values that agree with the declared ones, and traits held once for everyone.</summary>
public class IdentityAndTraitSharingTests
{
    private static BehaviourEvent Event(string id, string user, string anonymous, DateTimeOffset at) => new()
    {
        EventId = id,
        Type = EventTypes.PageView,
        UserId = user,
        AnonymousId = anonymous,
        Timestamp = at,
        Context = new EventContext("web", "mobile", "s-" + id, "product"),
    };

    [Fact]
    public void Identifying_an_anonymous_customer_marks_the_rfm_model_stale_even_when_the_users_totals_do_not_change()
    {
        // Regression (review): the merge was taken as changing purchases only when the user's orders or revenue did; an
        // anonymous id whose purchases were all the user's own (sent twice) left the population a customer short of
        // what the model held, and every score stayed skewed until an unrelated purchase.
        using var w = new TestWorld();
        w.Ingestion.Track(TestEvents.Make("p1", "user-1", EventTypes.Purchase, w.Clock.Now.AddMinutes(-5), value: 50));
        w.Ingestion.Track(TestEvents.Make("p1", "", EventTypes.Purchase, w.Clock.Now.AddMinutes(-5), value: 50, anonymous: "anon-1"));
        w.Ingestion.RecomputeRfm();
        Assert.False(w.Rfm.IsDirty);

        var merged = w.Ingestion.Identify("anon-1", "user-1");

        Assert.Equal((0, 1), (merged.MergedEvents, merged.DuplicateEvents)); // the user's totals are unchanged
        Assert.True(w.Rfm.IsDirty);
    }

    [Fact]
    public void An_identified_anonymous_id_is_never_counted_as_a_second_member()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("visitors", "behavioural", "{ field: events.page_view.count, gte: 1 }")));
        w.Ingestion.Track(Event("a1", "", "anon-1", w.Clock.Now.AddMinutes(-5)));
        w.Ingestion.Track(Event("u1", "user-1", "", w.Clock.Now.AddMinutes(-4)));
        Assert.Equal(2, w.Memberships.Count("visitors"));

        w.Ingestion.Identify("anon-1", "user-1");
        Assert.Equal(["user-1"], w.Memberships.Members("visitors", "", 10));

        // A new RFM model makes every membership stale: the periodic refresh re-evaluates them all.
        w.Track("buyer", EventTypes.Purchase, value: 10);
        w.Ingestion.RecomputeRfm();
        Assert.True(w.Ingestion.RefreshMemberships() > 0);
        Assert.Equal(["user-1"], w.Memberships.Members("visitors", "", 10));
        Assert.Equal(1, w.Memberships.Count("visitors"));
        Assert.Empty(w.Memberships.SegmentsOf("anon-1"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Of_a_grant_and_a_withdrawal_at_the_same_time_on_two_merged_profiles_the_withdrawal_counts(bool anonymousGranted)
    {
        using var w = new TestWorld();
        var at = w.Clock.Now.AddMinutes(-1); // clocks with whole seconds: two records of one second are likely
        w.Ingestion.RecordConsent("anon-7", ConsentPurpose.Personalization, granted: anonymousGranted, "banner", at);
        w.Ingestion.RecordConsent("user-7", ConsentPurpose.Personalization, granted: !anonymousGranted, "preference-center", at);

        w.Ingestion.Identify("anon-7", "user-7");

        Assert.False(Core.Privacy.ConsentPolicy.Default.Status(w.Store.Get("user-7"), ConsentPurpose.Personalization).Granted);
    }

    [Fact]
    public void An_anonymous_id_already_linked_to_one_user_is_never_merged_into_another()
    {
        // A shared device: one browser id, two people signing in one after the other.
        using var w = new TestWorld();
        w.Ingestion.Track(Event("a1", "", "kiosk", w.Clock.Now.AddMinutes(-9)));
        w.Track("user-b", EventTypes.Purchase, value: 40);
        w.Track("user-c", EventTypes.PageView);
        w.Ingestion.Identify("kiosk", "user-b");

        var refused = Assert.Throws<Core.Validation.PreconditionFailedException>(() => w.Ingestion.Identify("kiosk", "user-c"));

        Assert.Contains("already linked to another user", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("user-b", refused.Message, StringComparison.Ordinal); // the other person is not named
        Assert.Equal("user-b", w.Store.Get("user-b")!.UserId); // B is still B, with B's purchase
        Assert.Equal(1, w.Store.Get("user-b")!.Aggregates.Orders);
        Assert.Equal(0, w.Store.Get("user-c")!.Aggregates.Orders);
        Assert.Equal("user-b", w.Store.Get("kiosk")!.UserId);
        Assert.Equal(0, w.Ingestion.Identify("kiosk", "user-b").MergedEvents); // the same link again is a no-op, not a refusal
    }

    [Fact]
    public void A_merge_that_would_pass_the_event_limit_is_refused_and_nothing_is_linked()
    {
        using var w = new TestWorld(eventLimit: 10);
        for (var i = 0; i < 6; i++)
        {
            w.Ingestion.Track(Event($"a{i}", "", "anon-9", w.Clock.Now.AddMinutes(-20 + i)));
            w.Track("user-9", EventTypes.PageView, w.Clock.Now.AddMinutes(-10 + i));
        }

        Assert.Throws<Core.Validation.LimitExceededException>(() => w.Ingestion.Identify("anon-9", "user-9"));

        Assert.Equal("anon-9", w.Store.Get("anon-9")!.UserId); // not linked
        Assert.Equal((6, 6), (w.Store.Get("anon-9")!.Events.Count, w.Store.Get("user-9")!.Events.Count));
    }

    [Fact]
    public void A_declared_lead_score_is_graded_as_declared()
    {
        using var w = new TestWorld();
        w.Track("lead-1", EventTypes.PageView);
        Assert.Equal("cold", w.Store.Get("lead-1")!.Trait("lead_grade"));

        w.Ingestion.SetTraits("lead-1", new Dictionary<string, object?> { ["lead_score"] = 99d }, "crm", AttributeLayer.ZeroParty, null);

        var profile = w.Store.Get("lead-1")!;
        Assert.Equal(99d, profile.Trait("lead_score"));
        Assert.Equal("sales_ready", profile.Trait("lead_grade"));
        Assert.Equal("sales_ready", w.Catalogs.Current.Field("traits.lead_grade").Describe(new Core.Rules.EvalContext(profile, Requests.RequestContext.Empty, w.Clock.Now.UtcTicks, w.Rfm.Current)));
    }

    [Fact]
    public void Declared_trait_names_and_values_are_shared_between_profiles_but_personal_values_are_not()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        foreach (var user in new[] { "u1", "u2" })
        {
            w.Ingestion.SetTraits(
                user,
                new Dictionary<string, object?>
                {
                    [new string("tier".AsSpan())] = new string("gold".AsSpan()),
                    ["vip"] = true,
                    ["interests"] = new List<string> { new("baking".AsSpan()), new("crafts".AsSpan()) },
                    ["first_name"] = new string("Alice".AsSpan()),
                },
                new string("crm".AsSpan()),
                AttributeLayer.ZeroParty,
                null);
        }

        var a = w.Store.Get("u1")!.Attributes;
        var b = w.Store.Get("u2")!.Attributes;
        Assert.Same(a["tier"].Name, b["tier"].Name);
        Assert.Same(a["tier"].Value, b["tier"].Value);
        Assert.Same(a["tier"].Source, b["tier"].Source);
        Assert.Same(a["vip"].Value, b["vip"].Value);
        Assert.Same(a["interests"].Value, b["interests"].Value);
        Assert.NotSame(a["first_name"].Value, b["first_name"].Value); // personal data is never pooled: it must go with its profile
        Assert.Equal("Alice", b["first_name"].Value);
    }
}

/// <summary>Times at the edge of what can be represented never turn a decision into an error.</summary>
public class ExtremeTimeTests
{
    [Fact]
    public void A_trait_timestamp_outside_1800_to_2199_is_rejected()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var ex = Assert.Throws<Validation.ValidationException>(() => w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["birthday"] = DateTimeOffset.MaxValue.AddDays(-1) }, "crm", AttributeLayer.ZeroParty, null));
        Assert.Equal("traits[birthday]", ex.Violations[0].Field);
    }

    [Fact]
    public void A_stored_timestamp_near_the_end_of_time_still_decides_and_caches()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("birthday_soon", "need", "{ field: traits.birthday, within: 30d }")));

        // Written before the range was enforced: replayed from an old change log as it was stored.
        w.Ingestion.Replay(new Core.Application.Changes.TraitsChange("u1", [new Core.Application.Changes.LoggedAttribute("birthday", AttributeLayer.ZeroParty, "crm", w.Clock.Now, Time: new DateTimeOffset(9999, 12, 31, 0, 0, 0, TimeSpan.Zero))]));

        var first = w.Decide("u1");
        w.Decide("u1");
        var second = w.Decide("u1");
        Assert.Equal("everyone", first.Winner.Id); // a time still ahead is not "within" (the fallback wins), and no error
        Assert.True(second.FromCache);
    }
}
