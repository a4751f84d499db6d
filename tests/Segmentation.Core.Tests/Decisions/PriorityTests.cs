using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Decisions;

public class PriorityTests
{
    private static TestWorld World(params string[] segments) => new(TestCatalogs.Source(segments));

    private static void Traits(TestWorld w, string user, params (string Name, object Value)[] traits) =>
        w.Ingestion.SetTraits(user, traits.ToDictionary(t => t.Name, t => (object?)t.Value), "test", AttributeLayer.ZeroParty, null);

    private const string ScoreAbove1 = "{ field: traits.score, gt: 1 }";

    [Fact]
    public void Decide_returns_intent_segment_over_value_segment_by_family_default()
    {
        using var w = World(
            TestCatalogs.Segment("big_spender", "value", ScoreAbove1),
            TestCatalogs.Segment("psycho", "psychographic", ScoreAbove1),
            TestCatalogs.Segment("ready", "intent", ScoreAbove1),
            TestCatalogs.Segment("browsing", "behavioural", ScoreAbove1));
        Traits(w, "u1", ("score", 5d));

        var d = w.Decide("u1");

        Assert.Equal("ready", d.Winner.Id);
        Assert.Equal(["ready", "browsing", "big_spender", "psycho"], d.Matched.Select(m => m.Segment.Id));
        Assert.Equal([MatchStatus.Winner, MatchStatus.Outranked, MatchStatus.Outranked, MatchStatus.Outranked], d.Matched.Select(m => m.Status));
    }

    [Fact]
    public void Family_order_is_intent_behaviour_value_need_context_psychographic()
    {
        using var w = World(
            TestCatalogs.Segment("p", "psychographic", ScoreAbove1),
            TestCatalogs.Segment("c", "contextual", ScoreAbove1),
            TestCatalogs.Segment("n", "need", ScoreAbove1),
            TestCatalogs.Segment("v", "value", ScoreAbove1),
            TestCatalogs.Segment("b", "behavioural", ScoreAbove1),
            TestCatalogs.Segment("i", "intent", ScoreAbove1));

        Assert.Equal(["i", "b", "v", "n", "c", "p", "everyone"], w.Catalogs.Current.Segments.Select(s => s.Id));
    }

    [Fact]
    public void Explicit_priority_overrides_the_family_default()
    {
        using var w = World(
            TestCatalogs.Segment("ready", "intent", ScoreAbove1),
            TestCatalogs.Segment("eco", "psychographic", ScoreAbove1, "    priority: 700"));
        Traits(w, "u1", ("score", 5d));

        Assert.Equal("eco", w.Decide("u1").Winner.Id);
    }

    [Fact]
    public void Vip_overrides_churned_when_both_match()
    {
        using var w = World(
            TestCatalogs.Segment("churned", "lifecycle", "{ field: traits.score, lt: 10 }", "    priority: 450"),
            TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }", "    priority: 300\n    overrides: [churned]"));
        Traits(w, "both", ("score", 5d), ("vip", true));
        Traits(w, "churned_only", ("score", 5d), ("vip", false));

        var both = w.Decide("both");
        Assert.Equal("vip", both.Winner.Id);
        var churned = Assert.Single(both.Matched, m => m.Segment.Id == "churned");
        Assert.Equal(MatchStatus.Overridden, churned.Status);
        Assert.Equal("vip", churned.SuppressedBy);

        Assert.Equal("churned", w.Decide("churned_only").Winner.Id);
    }

    [Fact]
    public void Exclusions_remove_members_of_the_excluded_segment()
    {
        using var w = World(
            TestCatalogs.Segment("new_visitor", "behavioural", "{ field: traits.score, gte: 0 }", "    exclusions: [customer]"),
            TestCatalogs.Segment("customer", "value", "{ field: traits.tier, exists: true }"));
        Traits(w, "visitor", ("score", 1d));
        Traits(w, "buyer", ("score", 1d), ("tier", "gold"));

        Assert.Equal("new_visitor", w.Decide("visitor").Winner.Id);
        var buyer = w.Decide("buyer");
        Assert.Equal("customer", buyer.Winner.Id);
        var excluded = Assert.Single(buyer.Matched, m => m.Segment.Id == "new_visitor");
        Assert.Equal(MatchStatus.Excluded, excluded.Status);
        Assert.Equal("customer", excluded.SuppressedBy);
    }

    [Fact]
    public void Unknown_users_get_the_fallback_segment_not_an_error()
    {
        using var w = World(TestCatalogs.Segment("buyers", "value", "{ field: orders.count, gte: 1 }"));

        var d = w.Decide("never-seen");

        Assert.Equal("everyone", d.Winner.Id);
        Assert.True(d.FallbackUsed);
        Assert.Empty(d.Matched);
        Assert.Equal("Welcome", d.Variant(Core.Rendering.VariantKind.Content).Text);
    }

    [Fact]
    public void Users_with_thin_data_get_the_fallback_segment()
    {
        using var w = World(TestCatalogs.Segment("explorer", "behavioural", "{ field: events.product_view.count, window: 7d, gte: 5 }"));
        w.Track("thin", "product_view");

        var d = w.Decide("thin");

        Assert.True(d.FallbackUsed);
        Assert.Equal("everyone", d.Winner.Id);
    }

    [Fact]
    public void When_every_match_is_suppressed_the_fallback_is_used()
    {
        using var w = World(
            TestCatalogs.Segment("a", "value", ScoreAbove1, "    exclusions: [b]"),
            TestCatalogs.Segment("b", "contextual", "{ field: traits.score, gte: 2 }", "    exclusions: [a]"));
        Traits(w, "u1", ("score", 5d));

        var d = w.Decide("u1");

        Assert.True(d.FallbackUsed);
        Assert.Equal(2, d.Matched.Count);
        Assert.All(d.Matched, m => Assert.Equal(MatchStatus.Excluded, m.Status));
    }
}
