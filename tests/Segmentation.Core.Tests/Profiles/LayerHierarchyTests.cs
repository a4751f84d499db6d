using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Profiles;

public class LayerHierarchyTests
{
    private static SetTraitsResult Set(TestWorld w, string value, AttributeLayer layer, DateTimeOffset? at = null) =>
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = value }, layer.ToString(), layer, at);

    [Fact]
    public void Declared_value_is_not_overwritten_by_observed_or_derived_data()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        Set(w, "declared", AttributeLayer.ZeroParty);

        var observed = Set(w, "observed", AttributeLayer.FirstParty);
        var derived = Set(w, "derived", AttributeLayer.Derived);

        Assert.Equal(["tier"], observed.Ignored);
        Assert.Equal(["tier"], derived.Ignored);
        var attribute = w.Store.Get("u1")!.Attributes["tier"];
        Assert.Equal("declared", attribute.Value);
        Assert.Equal(AttributeLayer.ZeroParty, attribute.Layer);
        Assert.Equal("ZeroParty", attribute.Source);
    }

    [Fact]
    public void Higher_layer_replaces_lower_layer_and_keeps_provenance()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        Set(w, "derived", AttributeLayer.Derived);
        Set(w, "observed", AttributeLayer.FirstParty);
        var result = Set(w, "declared", AttributeLayer.ZeroParty);

        Assert.Equal(["tier"], result.Applied);
        var attribute = w.Store.Get("u1")!.Attributes["tier"];
        Assert.Equal(("declared", AttributeLayer.ZeroParty, w.Clock.Now), (attribute.Value, attribute.Layer, attribute.UpdatedAt));
    }

    [Fact]
    public void Within_a_layer_the_newer_value_wins_and_an_older_one_is_ignored()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        Set(w, "new", AttributeLayer.ZeroParty, w.Clock.Now.AddHours(-1));
        var stale = Set(w, "old", AttributeLayer.ZeroParty, w.Clock.Now.AddHours(-2));
        Set(w, "newest", AttributeLayer.ZeroParty);

        Assert.Equal(["tier"], stale.Ignored);
        Assert.Equal("newest", w.Store.Get("u1")!.Trait("tier"));
    }

    [Fact]
    public void A_trait_the_service_derives_is_ignored_in_the_derived_layer_where_it_would_be_replaced_at_once()
    {
        // Regression (review): the write was reported applied, and the same write's derivation replaced it. The rest of
        // the write is stored.
        using var w = new TestWorld(TestCatalogs.Source());
        var enriched = w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["lifecycle_stage"] = "vip", ["tier"] = "gold" }, "enricher", AttributeLayer.Derived, null);
        Assert.Equal(["tier"], enriched.Applied);
        Assert.Equal(["lifecycle_stage"], enriched.Ignored);
        Assert.Equal("gold", w.Store.Get("u1")!.Trait("tier"));

        var declared = w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["lifecycle_stage"] = "vip" }, "crm", AttributeLayer.FirstParty, null);
        Assert.Equal(["lifecycle_stage"], declared.Applied);
        Assert.Equal("vip", w.Store.Get("u1")!.Trait("lifecycle_stage"));
    }

    [Fact]
    public void A_value_dated_a_little_ahead_does_not_outrank_a_write_made_after_it()
    {
        // Regression (review): a trait dated within the accepted 5 minutes ahead was stored at that time, so a write one
        // minute later (stamped now) was the older one and was ignored until the clock caught up.
        using var w = new TestWorld(TestCatalogs.Source());
        Set(w, "gold", AttributeLayer.ZeroParty, w.Clock.Now.AddMinutes(4));
        w.Clock.Now = w.Clock.Now.AddMinutes(1);

        var later = Set(w, "silver", AttributeLayer.ZeroParty);

        Assert.Equal(["tier"], later.Applied);
        Assert.Equal("silver", w.Store.Get("u1")!.Trait("tier"));
    }

    [Fact]
    public void Observed_country_from_events_does_not_replace_a_declared_country()
    {
        var schema = TestCatalogs.Schema.Replace("first_name: { type: string, pii: true }", "first_name: { type: string, pii: true }\n    country: { type: string }");
        using var w = new TestWorld(new Core.Catalog.InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]));
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["country"] = "FR" }, "account", AttributeLayer.ZeroParty, null);

        w.Ingestion.Track(new Events.BehaviourEvent
        {
            EventId = "e1",
            Type = "page_view",
            UserId = "u1",
            Timestamp = w.Clock.Now,
            Context = new Events.EventContext("web", "mobile", "s1", "home", Country: "GB"),
        });

        Assert.Equal("FR", w.Store.Get("u1")!.Trait("country"));
    }

    [Fact]
    public void An_event_observes_its_category_and_country_and_a_late_event_does_not_replace_newer_values()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        Events.BehaviourEvent View(string id, string category, string country, DateTimeOffset at) => new()
        {
            EventId = id,
            Type = Events.EventTypes.ProductView,
            UserId = "u1",
            Timestamp = at,
            Context = new Events.EventContext("web", "mobile", "s1", "product", Country: country),
            ProductId = "p1",
            Category = category,
        };

        w.Ingestion.Track(View("e1", "kitchen", "GB", w.Clock.Now.AddMinutes(-10)));
        var first = w.Store.Get("u1")!;
        Assert.Equal(("kitchen", "GB"), (first.Attributes[ObservedAttributes.LastViewedCategory].Value, first.Attributes[ObservedAttributes.Country].Value));
        Assert.All(first.Attributes.Values.Where(a => ObservedAttributes.All.Contains(a.Name)), a => Assert.Equal((AttributeLayer.FirstParty, "web", w.Clock.Now.AddMinutes(-10)), (a.Layer, a.Source, a.UpdatedAt)));

        w.Ingestion.Track(View("e2", "garden", "IE", w.Clock.Now));
        w.Ingestion.Track(View("e3", "toys", "FR", w.Clock.Now.AddMinutes(-5))); // arrives late: older than e2's values
        var last = w.Store.Get("u1")!;
        Assert.Equal(("garden", "IE", w.Clock.Now), (last.Attributes[ObservedAttributes.LastViewedCategory].Value, last.Attributes[ObservedAttributes.Country].Value, last.Attributes[ObservedAttributes.Country].UpdatedAt));
        Assert.Equal(3, last.TotalEvents);
    }

    private static Events.BehaviourEvent Visit(string id, string country, DateTimeOffset at, string user = "u1", string anonymous = "") => new()
    {
        EventId = id,
        Type = Events.EventTypes.PageView,
        UserId = user,
        AnonymousId = anonymous,
        Timestamp = at,
        Context = new Events.EventContext("web", "mobile", "s1", "home", Country: country),
    };

    private static ProfileAttribute CountryAsObserved(Profile p) => p.AttributesAsObserved().Single(a => a.Name == ObservedAttributes.Country);

    [Fact]
    public void An_event_observing_the_country_already_held_copies_no_attributes_and_readers_see_its_time()
    {
        // Most events of a visit carry the country the profile holds: such a write keeps the attributes (and what a
        // decision laid out from them) instead of copying them for a new time; readers get the time from the events.
        using var w = new TestWorld(TestCatalogs.Source());
        w.Ingestion.Track(Visit("e1", "GB", w.Clock.Now.AddMinutes(-10)));
        var before = w.Store.Get("u1")!;
        w.Ingestion.Track(Visit("e2", "GB", w.Clock.Now.AddMinutes(-1)));
        var after = w.Store.Get("u1")!;

        Assert.Equal(2, after.TotalEvents);
        Assert.True(after.Attributes.SameAs(before.Attributes));
        var country = CountryAsObserved(after);
        Assert.Equal(("GB", AttributeLayer.FirstParty, "web", w.Clock.Now.AddMinutes(-1)), (country.Value, country.Layer, country.Source, country.UpdatedAt));
    }

    [Fact]
    public void A_late_event_between_two_observations_of_the_held_country_changes_nothing()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        w.Ingestion.Track(Visit("e1", "GB", w.Clock.Now.AddMinutes(-10)));
        w.Ingestion.Track(Visit("e2", "GB", w.Clock.Now));
        w.Ingestion.Track(Visit("e3", "FR", w.Clock.Now.AddMinutes(-5))); // late: GB was seen after it

        var p = w.Store.Get("u1")!;
        Assert.Equal(("GB", w.Clock.Now), (CountryAsObserved(p).Value, CountryAsObserved(p).UpdatedAt));

        w.Ingestion.Track(Visit("e4", "DE", w.Clock.Now.AddMinutes(1)));
        w.Ingestion.Track(Visit("e5", "IE", w.Clock.Now.AddMinutes(-2))); // late, but no later event observed GB: DE stays
        Assert.Equal("DE", w.Store.Get("u1")!.Trait("country"));
    }

    [Fact]
    public void Removing_the_events_that_observed_a_country_keeps_its_last_observation_whatever_the_arrival_order()
    {
        var day0 = new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero);
        StoredEvent View(string id, int day) => new(id, Events.EventTypes.PageView, day0.AddDays(day).UtcTicks, 0, 1, "s1", "web", "home", null, null, null, "GB");

        var inOrder = new Profile("u1").Apply(View("e1", 0), 1).Apply(View("e2", 20), 2);
        var outOfOrder = new Profile("u1").Apply(View("e2", 20), 1).Apply(View("e1", 0), 2); // e1 late, same value: the stored time stays day 20
        foreach (var p in new[] { inOrder, outOfOrder })
        {
            Assert.Equal(day0.AddDays(20), CountryAsObserved(p).UpdatedAt);
            var swept = p.WithoutEvents(e => true, 3, out var removed); // retention removes every event
            Assert.Equal(2, removed);
            Assert.Equal(("GB", day0.AddDays(20)), (CountryAsObserved(swept).Value, CountryAsObserved(swept).UpdatedAt));

            // An older first-party write still loses to the last observation.
            Assert.False(swept.TrySetAttribute(new ProfileAttribute(ObservedAttributes.Country, "FR", AttributeLayer.FirstParty, "crm", day0.AddDays(10)), 4, out _));
        }
    }

    [Fact]
    public void Merged_profiles_keep_the_country_observed_last_and_a_declared_write_competes_with_the_last_observation()
    {
        var schema = TestCatalogs.Schema.Replace("first_name: { type: string, pii: true }", "first_name: { type: string, pii: true }\n    country: { type: string }");
        using var w = new TestWorld(new Core.Catalog.InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]));
        w.Ingestion.Track(Visit("e1", "GB", w.Clock.Now.AddMinutes(-60)));
        w.Ingestion.Track(Visit("e2", "GB", w.Clock.Now.AddMinutes(-1)));       // stored time stays -60; last observation -1
        w.Ingestion.Track(Visit("a1", "FR", w.Clock.Now.AddMinutes(-30), user: "", anonymous: "anon-1"));
        w.Ingestion.Identify("anon-1", "u1");

        var merged = w.Store.Get("u1")!;
        Assert.Equal(3, merged.TotalEvents);
        Assert.Equal(("GB", w.Clock.Now.AddMinutes(-1)), (CountryAsObserved(merged).Value, CountryAsObserved(merged).UpdatedAt));

        // A first-party write older than the last observation is ignored, as it was before observations kept their first time.
        var older = w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["country"] = "ES" }, "crm", AttributeLayer.FirstParty, w.Clock.Now.AddMinutes(-30));
        Assert.Equal(["country"], older.Ignored);
        Assert.Equal("GB", w.Store.Get("u1")!.Trait("country"));
    }

    [Fact]
    public void Traits_must_be_declared_and_of_the_declared_type()
    {
        using var w = new TestWorld(TestCatalogs.Source());
        var ex = Assert.Throws<Validation.ValidationException>(() =>
            w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["nope"] = "x", ["score"] = "high" }, "quiz", AttributeLayer.ZeroParty, null));

        Assert.Contains(ex.Violations, v => v.Field == "traits[nope]" && v.Description.Contains("unknown trait", StringComparison.Ordinal));
        Assert.Contains(ex.Violations, v => v.Field == "traits[score]" && v.Description.Contains("number", StringComparison.Ordinal));
        Assert.Null(w.Store.Get("u1")); // nothing stored
    }
}
