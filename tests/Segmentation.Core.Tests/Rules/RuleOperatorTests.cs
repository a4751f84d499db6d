using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Rules;

public class RuleOperatorTests
{
    private static bool Matches(string rule, Action<TestWorld>? arrange = null, RequestContext? context = null)
    {
        using var world = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("target", "behavioural", rule)));
        arrange?.Invoke(world);
        var decision = world.Decide("u1", context);
        return decision.Winner.Id == "target";
    }

    private static void Traits(TestWorld w, params (string Name, object Value)[] traits) =>
        w.Ingestion.SetTraits("u1", traits.ToDictionary(t => t.Name, t => (object?)t.Value), "test", AttributeLayer.ZeroParty, null);

    [Theory]
    [InlineData("eq: 5", 5, true)]
    [InlineData("eq: 5", 4, false)]
    [InlineData("ne: 5", 4, true)]
    [InlineData("ne: 5", 5, false)]
    [InlineData("lt: 5", 4, true)]
    [InlineData("lt: 5", 5, false)]
    [InlineData("lte: 5", 5, true)]
    [InlineData("lte: 5", 6, false)]
    [InlineData("gt: 5", 6, true)]
    [InlineData("gt: 5", 5, false)]
    [InlineData("gte: 5", 5, true)]
    [InlineData("gte: 5", 4, false)]
    [InlineData("in: [1, 5, 9]", 5, true)]
    [InlineData("in: [1, 9]", 5, false)]
    [InlineData("not_in: [1, 9]", 5, true)]
    [InlineData("not_in: [1, 5]", 5, false)]
    [InlineData("between: [5, 10]", 5, true)]
    [InlineData("between: [5, 10]", 10, true)]
    [InlineData("between: [5, 10]", 10.5, false)]
    [InlineData("exists: true", 1, true)]
    public void Number_operators(string op, double value, bool expected) =>
        Assert.Equal(expected, Matches($"{{ field: traits.score, {op} }}", w => Traits(w, ("score", value))));

    [Theory]
    [InlineData("eq: 5")]
    [InlineData("ne: 5")]
    [InlineData("lt: 5")]
    [InlineData("gte: 0")]
    [InlineData("not_in: [1]")]
    [InlineData("between: [0, 10]")]
    [InlineData("exists: true")]
    public void Missing_number_never_satisfies_a_comparison(string op) =>
        Assert.False(Matches($"{{ field: traits.score, {op} }}", w => Traits(w, ("tier", "gold"))));

    [Fact]
    public void Exists_false_matches_a_missing_value() =>
        Assert.True(Matches("{ field: traits.score, exists: false }", w => Traits(w, ("tier", "gold"))));

    [Theory]
    [InlineData("eq: gold", "Gold", true)]
    [InlineData("eq: gold", "silver", false)]
    [InlineData("ne: gold", "silver", true)]
    [InlineData("in: [gold, platinum]", "platinum", true)]
    [InlineData("in: [gold, platinum]", "bronze", false)]
    [InlineData("not_in: [gold]", "bronze", true)]
    [InlineData("not_in: [gold]", "gold", false)]
    [InlineData("contains: ol", "gold", true)]
    [InlineData("contains: xx", "gold", false)]
    [InlineData("starts_with: go", "gold", true)]
    [InlineData("starts_with: ol", "gold", false)]
    [InlineData("regex: '^g.l?d$'", "gold", true)]
    [InlineData("regex: '^s'", "gold", false)]
    [InlineData("regex: 'home|decor'", "Home & garden", true)] // plain alternatives: the substring fast path
    [InlineData("regex: 'home|decor'", "kitchen", false)]
    [InlineData("regex: 'interior design|xmas-2'", "Top INTERIOR DESIGN picks", true)]
    public void String_operators(string op, string value, bool expected) =>
        Assert.Equal(expected, Matches($"{{ field: traits.tier, {op} }}", w => Traits(w, ("tier", value))));

    [Fact]
    public void Plain_alternatives_match_exactly_as_the_regex_does()
    {
        string[] patterns = ["gift|present|xmas", "k|s", "home decor|diy", "a-b|c_d"];
        string[] values = ["Gift card", "presents", "XMAS", "no", "\u212A", "ſ", "K", "Home Decor", "homedecor", "A-B", "c_D", "\u00C5 gift", "", "k"];
        foreach (var pattern in patterns)
        {
            var regex = new System.Text.RegularExpressions.Regex(pattern, System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant);
            foreach (var raw in values)
            {
                var value = System.Text.RegularExpressions.Regex.Unescape(raw);
                var expected = value.Length > 0 && regex.IsMatch(value);
                Assert.True(expected == Matches($"{{ field: traits.tier, regex: '{pattern}' }}", w => Traits(w, ("tier", value))), $"'{pattern}' on '{value}'");
            }
        }
    }

    [Theory]
    [InlineData("contains: Eco", true)]
    [InlineData("contains: luxury", false)]
    [InlineData("in: [luxury, eco]", true)]
    [InlineData("not_in: [luxury]", true)]
    [InlineData("not_in: [eco]", false)]
    [InlineData("exists: true", true)]
    public void List_operators(string op, bool expected) =>
        Assert.Equal(expected, Matches($"{{ field: traits.interests, {op} }}", w => Traits(w, ("interests", new[] { "eco", "handmade" }))));

    [Theory]
    [InlineData("eq: true", true, true)]
    [InlineData("eq: true", false, false)]
    [InlineData("ne: true", false, true)]
    public void Bool_operators(string op, bool value, bool expected) =>
        Assert.Equal(expected, Matches($"{{ field: traits.vip, {op} }}", w => Traits(w, ("vip", value))));

    [Fact]
    public void Context_fields_are_read_from_the_request()
    {
        Assert.True(Matches("{ field: context.device, eq: mobile }", context: new RequestContext(Device: "mobile")));
        Assert.False(Matches("{ field: context.device, eq: mobile }", context: new RequestContext(Device: "desktop")));
        Assert.True(Matches("{ field: context.channel, eq: email }", context: new RequestContext(Channel: "email")));
    }

    [Fact]
    public void Nested_all_any_not()
    {
        const string Rule = """
            all:
              - { field: traits.score, gte: 10 }
              - any:
                  - { field: traits.tier, eq: gold }
                  - not: { field: traits.vip, eq: false }
            """;
        Assert.True(Matches(Rule, w => Traits(w, ("score", 12d), ("tier", "gold"), ("vip", false))));
        Assert.True(Matches(Rule, w => Traits(w, ("score", 12d), ("tier", "silver"), ("vip", true))));
        Assert.False(Matches(Rule, w => Traits(w, ("score", 12d), ("tier", "silver"), ("vip", false))));
        Assert.False(Matches(Rule, w => Traits(w, ("score", 9d), ("tier", "gold"), ("vip", true))));
    }

    [Fact]
    public void Within_and_older_than_compare_timestamps_with_now()
    {
        var recent = "{ field: events.page_view.last_at, within: 24h }";
        var old = "{ field: events.page_view.last_at, older_than: 24h }";
        Assert.True(Matches(recent, w => w.Track("u1", "page_view", w.Clock.Now.AddHours(-23))));
        Assert.False(Matches(recent, w => w.Track("u1", "page_view", w.Clock.Now.AddHours(-25))));
        Assert.True(Matches(old, w => w.Track("u1", "page_view", w.Clock.Now.AddHours(-25))));
        Assert.False(Matches(old, w => w.Track("u1", "page_view", w.Clock.Now.AddHours(-23))));
        Assert.False(Matches(old)); // a missing timestamp is never "older than"
    }

    [Fact]
    public void Within_is_false_for_a_time_still_ahead_until_it_comes()
    {
        var rule = "{ field: traits.birthday, within: 7d }";
        Assert.False(Matches(rule, w => Traits(w, ("birthday", w.Clock.Now.AddDays(400))))); // was true: now < t + 7d
        Assert.False(Matches(rule, w => Traits(w, ("birthday", w.Clock.Now.AddDays(3)))));
        Assert.True(Matches(rule, w => Traits(w, ("birthday", w.Clock.Now.AddDays(-3)))));

        using var world = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("target", "behavioural", rule)));
        Traits(world, ("birthday", world.Clock.Now.AddDays(3)));
        Assert.NotEqual("target", world.Decide("u1").Winner.Id);
        world.Clock.Now = world.Clock.Now.AddDays(4); // the day came: the cached answer was valid only until then
        Assert.Equal("target", world.Decide("u1").Winner.Id);
    }

    [Theory]
    [InlineData("{ field: events.custom.quiz_completed.count, window: 30d, gte: 1 }")]
    [InlineData("{ field: events.custom.quiz_completed.last_at, within: 30d }")]
    [InlineData("events.custom.quiz_completed.count(30d) >= 1")]
    public void Rules_read_custom_event_types(string rule)
    {
        Assert.True(Matches(rule, w => w.Track("u1", "custom.quiz_completed", w.Clock.Now.AddDays(-1))));
        Assert.False(Matches(rule, w => w.Track("u1", "custom.quiz_started", w.Clock.Now.AddDays(-1))));
    }

    [Fact]
    public void Event_counts_and_sums_in_a_window()
    {
        var rule = """
            all:
              - { field: events.purchase.count, window: 90d, gte: 3 }
              - { field: events.purchase.sum, window: 90d, gt: 100 }
            """;
        void Three(TestWorld w, int daysAgoOfOldest)
        {
            w.Track("u1", "purchase", w.Clock.Now.AddDays(-daysAgoOfOldest), value: 50);
            w.Track("u1", "purchase", w.Clock.Now.AddDays(-10), value: 30);
            w.Track("u1", "purchase", w.Clock.Now.AddDays(-1), value: 30);
        }

        Assert.True(Matches(rule, w => Three(w, 89)));
        Assert.False(Matches(rule, w => Three(w, 91)));
    }

    [Fact]
    public void Email_opens_of_the_last_sends()
    {
        var rule = "{ field: email.opens_of_last_sends, last: 3, eq: 3 }";
        void Sends(TestWorld w, bool openAll)
        {
            for (var i = 0; i < 4; i++)
            {
                w.Track("u1", "email_send", w.Clock.Now.AddDays(-10 + i), campaign: $"c{i}");
            }

            w.Track("u1", "email_open", w.Clock.Now.AddDays(-2), campaign: "c3");
            w.Track("u1", "email_open", w.Clock.Now.AddDays(-2), campaign: "c2");
            if (openAll)
            {
                w.Track("u1", "email_click", w.Clock.Now.AddDays(-2), campaign: "c1");
            }
        }

        Assert.True(Matches(rule, w => Sends(w, openAll: true)));
        Assert.False(Matches(rule, w => Sends(w, openAll: false)));
    }
}
