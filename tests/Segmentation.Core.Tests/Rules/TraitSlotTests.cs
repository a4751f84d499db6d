using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Tests.Support;
using Segmentation.Workloads;

namespace Segmentation.Core.Tests.Rules;

/// <summary>
/// Conditions on declared traits, compiled to reads of the trait values a profile keeps for its catalog,
/// against the same conditions' own delegates, which look each trait up by name.
/// </summary>
public class TraitSlotTests
{
    private static readonly DateTimeOffset At = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_compiled_flat_profile_catalog_agrees_with_every_rule_on_every_generated_profile()
    {
        using var workload = new TraitHeavyWorkload(profiles: 2_000);
        var catalog = workload.Catalogs.Current;
        Assert.Equal(TraitHeavyWorkload.DeclaredTraits, catalog.Features.TraitCount);
        var matched = new bool[catalog.Segments.Count];
        var winners = new HashSet<string>(StringComparer.Ordinal);
        var matchCounts = new int[catalog.Segments.Count];
        foreach (var profile in workload.Profiles)
        {
            var compiled = new EvalContext(profile, RequestContext.Empty, workload.Now.UtcTicks, workload.Rfm, catalog.Features);
            catalog.EvaluateAll(compiled, matched);
            var plain = new EvalContext(profile, RequestContext.Empty, workload.Now.UtcTicks, workload.Rfm);
            Assert.Equal(catalog.Segments.Select(s => s.Rule?.Evaluate(plain) ?? false), matched);
            for (var i = 0; i < matched.Length; i++)
            {
                matchCounts[i] += matched[i] ? 1 : 0;
            }

            var winner = Decider.EvaluateWinner(catalog, profile, RequestContext.Empty, workload.Now, workload.Rfm, matched).Winner;
            Assert.Same(Decider.Evaluate(catalog, profile, RequestContext.Empty, workload.Now, workload.Rfm).Winner, winner);
            winners.Add(winner.Id);
        }

        // The data exercises the rules both ways: most segments match some profiles and miss others.
        var decisive = catalog.Segments.Count(s => s.Rule is not null && matchCounts[s.Rank] > 0 && matchCounts[s.Rank] < workload.Profiles.Count);
        Assert.True(decisive >= 40, $"only {decisive} of the 50 segments both match and miss; winners: {winners.Count}");
        Assert.True(winners.Count >= 5, $"only {winners.Count} distinct winners");
    }

    [Fact]
    public void Edge_values_compare_as_when_the_trait_is_read_by_name()
    {
        // Case, empty and missing values, values of another type than declared, sets of every size, text tests
        // beside equalities on one trait and more of them than its slot has bits, a list trait compared with more
        // words than its slot has bits, and a time condition beside them.
        var manyTiers = string.Join(", ", Enumerable.Range(0, 70).Select(i => $"t{i}"));
        var manyTierTests = string.Join(", ", Enumerable.Range(0, 33).Select(i => $"{{ field: traits.tier, contains: t{i}x }}").Append("{ field: traits.tier, contains: t42 }"));
        var manyInterests = Enumerable.Range(0, 70).Select(i => $"{{ field: traits.interests, contains: w{i} }}");
        var manyScores = string.Join(", ", Enumerable.Range(0, 12).Select(i => i * 5));
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("gold", "value", "{ field: traits.tier, eq: Gold }"),
            TestCatalogs.Segment("not_gold", "value", "{ field: traits.tier, ne: gold }"),
            TestCatalogs.Segment("few_tiers", "value", "{ field: traits.tier, in: [silver, GOLD] }"),
            TestCatalogs.Segment("not_few_tiers", "value", "{ field: traits.tier, not_in: [silver, gold] }"),
            TestCatalogs.Segment("ten_tiers", "value", "{ field: traits.tier, in: [a, b, c, d, e, f, g, h, i, gold] }"),
            TestCatalogs.Segment("many_tiers", "value", $"{{ field: traits.tier, not_in: [{manyTiers}] }}"),
            TestCatalogs.Segment("tier_known", "value", "{ field: traits.tier, exists: true }"),
            TestCatalogs.Segment("tier_starts", "value", "{ field: traits.tier, starts_with: go }"),
            TestCatalogs.Segment("tier_contains", "value", "{ all: [{ field: traits.tier, contains: OL }, { field: traits.tier, ne: gold }] }"),
            TestCatalogs.Segment("tier_pattern", "value", "{ any: [{ field: traits.tier, regex: '^(s|b)[a-z]+$' }, { field: traits.tier, regex: 'gold|t6' }] }"),
            TestCatalogs.Segment("tier_many_tests", "value", $"{{ any: [{manyTierTests}] }}"),
            TestCatalogs.Segment("vip", "value", "{ all: [{ field: traits.vip, eq: true }, { not: { field: traits.vip, ne: true } }] }"),
            TestCatalogs.Segment("vip_unknown", "value", "{ field: traits.vip, exists: false }"),
            TestCatalogs.Segment("score", "value", "{ any: [{ field: traits.score, between: [10, 20] }, { field: traits.score, ne: 50 }, { field: traits.score, lt: -1 }] }"),
            TestCatalogs.Segment("score_sets", "value", $"{{ all: [{{ field: traits.score, in: [{manyScores}] }}, {{ field: traits.score, not_in: [5, 15] }}] }}"),
            TestCatalogs.Segment("baker", "need", "{ field: traits.interests, contains: Baking }"),
            TestCatalogs.Segment("hobbies", "need", "{ any: [{ field: traits.interests, in: [crafts, garden] }, { field: traits.interests, not_in: [baking] }] }"),
            TestCatalogs.Segment("any_interest", "need", "{ field: traits.interests, exists: true }"),
            TestCatalogs.Segment("wide_interests", "need", $"{{ any: [{string.Join(", ", manyInterests)}] }}"),
            TestCatalogs.Segment("birthday_soon", "contextual", "{ all: [{ field: traits.score, gte: 0 }, { field: traits.birthday, within: 30d }] }")));
        var catalog = w.Catalogs.Current;

        object?[] tiers = [null, "", "Gold", "GOLD", "gold", "silver", "bronze", "Bronze age", "t42", "t69", "t3x", "t32x", "golden", 3.0];
        object?[] vips = [null, true, false, "true"];
        object?[] scores = [null, 0.0, 5.0, 10.0, 15.0, 20.0, 50.0, -3.0, double.NaN, "12"];
        object?[] interests = [null, (IReadOnlyList<string>)[], (IReadOnlyList<string>)["baking"], (IReadOnlyList<string>)["CRAFTS", "x"], (IReadOnlyList<string>)["w3", "w68"], (IReadOnlyList<string>)["w65"], "baking"];
        object?[] birthdays = [null, At.AddDays(-10), At.AddDays(-40), "2026-01-01"];
        var random = new Random(7);
        var matched = new bool[catalog.Segments.Count];
        string[] textTested = ["tier_starts", "tier_contains", "tier_pattern", "tier_many_tests"];
        var textMatches = textTested.ToDictionary(id => id, _ => 0);
        for (var i = 0; i < 2_000; i++)
        {
            var profile = ProfileWith(
                ("tier", Pick(tiers)), ("vip", Pick(vips)), ("score", Pick(scores)), ("interests", Pick(interests)), ("birthday", Pick(birthdays)));
            var compiled = new EvalContext(profile, RequestContext.Empty, At.UtcTicks, RfmModel.Empty, catalog.Features);
            catalog.EvaluateAll(compiled, matched);
            var plain = new EvalContext(profile, RequestContext.Empty, At.UtcTicks, RfmModel.Empty);
            Assert.Equal(catalog.Segments.Select(s => s.Rule?.Evaluate(plain) ?? false), matched);
            Assert.Equal(plain.ValidUntilTicks, compiled.ValidUntilTicks);
            foreach (var id in textTested)
            {
                textMatches[id] += matched[catalog.ById[id].Rank] ? 1 : 0;
            }
        }

        // The text tests decided from the slot match some profiles and miss others.
        Assert.All(textTested, id => Assert.InRange(textMatches[id], 1, 1_999));

        object? Pick(object?[] values) => values[random.Next(values.Length)];
    }

    [Fact]
    public void Only_traits_with_a_condition_decided_from_the_slot_get_one()
    {
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("go", "value", "{ field: traits.tier, starts_with: go }"),
            TestCatalogs.Segment("ada", "value", "{ field: traits.first_name, regex: '^ad' }"),
            TestCatalogs.Segment("baker", "need", "{ field: traits.interests, contains: baking }")));
        Assert.Equal(2, w.Catalogs.Current.Features.TraitCount); // interests, and tier's text test; first_name is pii, read as text
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "gold" }, "crm", AttributeLayer.ZeroParty, null);
        Assert.Equal("go", w.Decide("u1").Winner.Id);
    }

    [Fact]
    public void An_unknown_user_reads_every_declared_trait_as_missing()
    {
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("no_tier", "value", "{ field: traits.tier, exists: false }"),
            TestCatalogs.Segment("not_gold", "value", "{ field: traits.tier, ne: gold }")));
        var catalog = w.Catalogs.Current;
        var matched = new bool[catalog.Segments.Count];
        catalog.EvaluateAll(new EvalContext(null, RequestContext.Empty, At.UtcTicks, RfmModel.Empty, catalog.Features), matched);
        Assert.True(matched[catalog.ById["no_tier"].Rank]);
        Assert.False(matched[catalog.ById["not_gold"].Rank]);
    }

    [Fact]
    public void A_profile_keeps_its_trait_values_for_the_serving_catalog_and_a_new_snapshot_builds_its_own()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("gold", "value", "{ field: traits.tier, eq: gold }")));
        var layout = w.Catalogs.Current.Features;
        var first = w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "gold" }, "crm", AttributeLayer.ZeroParty, null).Profile;
        Assert.Same(first.TraitValues(layout), first.TraitValues(layout)); // kept: built once per snapshot
        Assert.Equal("gold", w.Decide("u1").Winner.Id);

        var second = w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "silver" }, "crm", AttributeLayer.ZeroParty, null).Profile;
        Assert.NotEqual(first.TraitValues(layout), second.TraitValues(layout));
        Assert.Equal("everyone", w.Decide("u1").Winner.Id);

        // A snapshot copied with other attributes does not carry the values built from the old ones.
        var copied = first with { Attributes = second.Attributes };
        Assert.Equal(second.TraitValues(layout), copied.TraitValues(layout));
    }

    [Fact]
    public void An_event_that_observes_no_attribute_keeps_the_trait_values_and_one_that_does_builds_them_again()
    {
        // A personal value (a PII trait): its layout is the profile's own array, never a shared one, so keeping is visible.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("named", "value", "{ field: traits.first_name, exists: true }")));
        var layout = w.Catalogs.Current.Features;
        var first = w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["first_name"] = "Ada" }, "crm", AttributeLayer.ZeroParty, null).Profile;
        var built = first.TraitValues(layout);
        Assert.NotSame(built, (first with { Attributes = first.Attributes.SetItem("first_name", first.Attributes["first_name"]) }).TraitValues(layout)); // other attributes: built again

        var view = first.Apply(new StoredEvent("v1", Core.Events.EventTypes.PageView, At.UtcTicks, 0, 1, "s1", "web", "home", null, null, null, null), first.Version + 1);
        Assert.Same(built, view.TraitValues(layout)); // the attributes did not change: nothing to build again

        var fromGb = view.Apply(new StoredEvent("v2", Core.Events.EventTypes.PageView, At.UtcTicks + 1, 0, 1, "s1", "web", "home", null, null, null, "GB"), view.Version + 1);
        Assert.Equal("GB", fromGb.Attributes[ObservedAttributes.Country].Value);
        Assert.NotSame(built, fromGb.TraitValues(layout));
        Assert.Equal(built, fromGb.TraitValues(layout)); // the same declared traits
    }

    [Fact]
    public void A_preview_does_not_displace_the_serving_catalogs_trait_values_and_a_publish_lays_them_out_again()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("gold", "value", "{ field: traits.tier, eq: gold }")));
        var serving = w.Catalogs.Current.Features;
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "gold", ["score"] = 80.0 }, "crm", AttributeLayer.ZeroParty, null);
        var kept = w.Store.Get("u1")!.TraitValues(serving);

        var candidate = "id: high\nname: High\ntype: value\nrule: { field: traits.score, gte: 50 }\n" + TestCatalogs.Outcomes("high").TrimStart().Replace("\n    ", "\n", StringComparison.Ordinal);
        var preview = CatalogAudit.Preview(w.Catalogs.Current, candidate, w.Store.Snapshot(), w.Rfm.Current, w.Clock.Now);
        Assert.Equal(1, preview.Members);
        Assert.Same(kept, w.Store.Get("u1")!.TraitValues(serving));

        var files = w.Catalogs.Current.Files.Where(f => f.Name != "segments.yaml")
            .Append(new CatalogFile("segments.yaml", "segments:\n" + TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")))
            .ToList();
        w.Governance.Publish(files, "score segment");
        Assert.NotSame(serving, w.Catalogs.Current.Features);
        Assert.Equal("high", w.Decide("u1").Winner.Id);
        Assert.Equal(w.Catalogs.Current.Features.Id, w.Store.Get("u1")!.TraitValues(w.Catalogs.Current.Features)[0]);
    }

    [Fact]
    public void Profiles_with_equal_catalog_words_share_one_array_and_a_users_own_values_are_never_shared()
    {
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("gold", "value", "{ all: [{ field: traits.tier, eq: gold }, { field: traits.vip, eq: true }] }"),
            TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }"),
            TestCatalogs.Segment("named", "value", "{ field: traits.first_name, exists: true }")));
        var layout = w.Catalogs.Current.Features;
        Profile Write(string user, Dictionary<string, object?> traits) => w.Ingestion.SetTraits(user, traits, "crm", AttributeLayer.ZeroParty, null).Profile;

        var a = Write("a", new() { ["tier"] = "gold", ["vip"] = true });
        var b = Write("b", new() { ["tier"] = "GOLD", ["vip"] = true });
        var c = Write("c", new() { ["tier"] = "silver", ["vip"] = true });
        Assert.Same(a.TraitValues(layout), b.TraitValues(layout));
        Assert.NotSame(a.TraitValues(layout), c.TraitValues(layout));

        var d = Write("d", new() { ["tier"] = "gold", ["score"] = 70.0 });
        var e = Write("e", new() { ["tier"] = "gold", ["score"] = 70.0 });
        Assert.Equal(d.TraitValues(layout), e.TraitValues(layout));
        Assert.NotSame(d.TraitValues(layout), e.TraitValues(layout)); // a number is the user's own value

        var f = Write("f", new() { ["first_name"] = "Ada" });
        var g = Write("g", new() { ["first_name"] = "Ada" });
        Assert.NotSame(f.TraitValues(layout), g.TraitValues(layout)); // so is anything of a pii trait
        Assert.Equal(["gold", "high", "named"], new[] { w.Decide("a"), w.Decide("d"), w.Decide("f") }.Select(x => x.Winner.Id));
    }

    private static Profile ProfileWith(params (string Name, object? Value)[] traits) => new("edge")
    {
        Attributes = AttributeDictionary.Of(traits.Where(t => t.Value is not null).Select(t => new ProfileAttribute(t.Name, t.Value!, AttributeLayer.ZeroParty, "test", At))),
    };
}
