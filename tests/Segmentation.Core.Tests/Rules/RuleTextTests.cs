using System.Globalization;
using System.Text;
using CsCheck;
using Segmentation.Core.Catalog;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Rules;

/// <summary>
/// The text rule syntax: read into the mapping form's tree and compiled by the same compiler; errors at
/// file:line:column with suggestions; written back canonically; text → tree → text round-trips and a text
/// rule evaluates exactly as its mapping form does, missing values included.
/// </summary>
public sealed class RuleTextTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("orders.aov > 200", "{ field: orders.aov, gt: 200 }")]
    [InlineData("orders.aov gt 200", "{ field: orders.aov, gt: 200 }")]
    [InlineData("traits.tier == gold", "{ field: traits.tier, eq: gold }")]
    [InlineData("traits.tier != \"gold card\"", "{ field: traits.tier, ne: gold card }")]
    [InlineData("traits.score between 1 and 49", "{ field: traits.score, between: [1, 49] }")]
    [InlineData("traits.tier in [gold, 'platinum']", "{ field: traits.tier, in: [gold, platinum] }")]
    [InlineData("traits.tier not in [gold]", "{ field: traits.tier, not_in: [gold] }")]
    [InlineData("traits.score exists", "{ field: traits.score, exists: true }")]
    [InlineData("traits.score not exists", "{ field: traits.score, exists: false }")]
    [InlineData("orders.last_at within 30d", "{ field: orders.last_at, within: 30d }")]
    [InlineData("email.opens_of_last_sends(3) >= 3", "{ field: email.opens_of_last_sends, last: 3, gte: 3 }")]
    [InlineData("events.page_view.count window 7d >= 5", "{ field: events.page_view.count, window: 7d, gte: 5 }")]
    [InlineData("events.page_view.count(7d) >= 5", "{ field: events.page_view.count, window: 7d, gte: 5 }")]
    [InlineData("a.b > 1 and c.d < 2 or not e.f == x", "{ any: [ { all: [ { field: a.b, gt: 1 }, { field: c.d, lt: 2 } ] }, { not: { field: e.f, eq: x } } ] }")]
    [InlineData("a.b > 1 and (c.d < 2 or e.f == x)", "{ all: [ { field: a.b, gt: 1 }, { any: [ { field: c.d, lt: 2 }, { field: e.f, eq: x } ] } ] }")]
    [InlineData("fragment(engaged) and not segment(vip_club)", "{ all: [ { fragment: engaged }, { not: { segment: vip_club } } ] }")]
    public void Text_reads_into_the_tree_of_the_mapping_form(string text, string yaml)
    {
        var fromText = RuleText.Parse(text, out var error);
        Assert.Null(error);
        Assert.Equal(Shape(ReadYaml(yaml)), Shape(fromText!));
    }

    [Theory]
    [InlineData("traits.tier regex \"^\\d{3}-[a-z]+$\"", "^\\d{3}-[a-z]+$")]
    [InlineData("traits.tier == \"a\\\\b\"", "a\\b")]
    [InlineData("traits.tier == \"say \\\"hi\\\"\"", "say \"hi\"")]
    [InlineData("traits.tier == 'C:\\temp'", "C:\\temp")]
    public void Backslashes_are_kept_as_written_except_before_a_quote_or_a_backslash(string text, string value)
    {
        var tree = Assert.IsType<SyntaxMap>(RuleText.Parse(text, out var error));
        Assert.Null(error);
        Assert.Equal(value, tree.Entries[^1].Value.Text);
        Assert.Equal(value, ((SyntaxMap)RuleText.Parse(RuleText.Format(tree), out _)!).Entries[^1].Value.Text); // and written back so
    }

    [Fact]
    public void The_text_null_in_quotes_is_the_text_and_is_written_back_in_quotes()
    {
        // In the text syntax a quoted "null" was taken for no value (a catalog error), and the mapping form's quoted
        // "null" was written back bare: GetCatalog showed a rule that was a catalog error when pasted back.
        var written = CatalogLoader.Load(TestCatalogs.Source(TestCatalogs.Segment("s", "value", "{ field: traits.tier, eq: \"null\" }"))).ById["s"].Rule!.Text;
        Assert.Equal("traits.tier == \"null\"", written);

        using var world = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("quoted_text", "value", "'traits.tier == \"null\"'"),
            TestCatalogs.Segment("mapping", "value", "{ field: traits.tier, eq: \"null\" }"),
            TestCatalogs.Segment("written_back", "value", "'" + written + "'")), now: Now);
        world.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "null" }, "test", AttributeLayer.ZeroParty, null);
        Assert.Equal(["mapping", "quoted_text", "written_back"], world.Decide("u1").Matched.Select(m => m.Segment.Id).Order(StringComparer.Ordinal));

        // Bare, it is still no value: a catalog error that points to exists.
        var bare = Assert.Throws<CatalogException>(() => CatalogLoader.Load(TestCatalogs.Source(TestCatalogs.Segment("s", "value", "'traits.tier == null'"))));
        Assert.Contains("exists: false", Assert.Single(bare.Errors).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ field: traits.tier, in: [gold, ~] }")]
    [InlineData("{ field: traits.tier, not_in: [null] }")]
    [InlineData("'traits.tier in [gold, null]'")]
    [InlineData("{ field: traits.interests, in: [gold, ~] }")]
    public void A_list_item_that_stands_for_no_value_is_a_catalog_error_as_a_single_value_is(string rule)
    {
        // "gold or unset" never matched an unset value: the list item was the text "" (or "null"). A quoted "" is the
        // empty text, which the default catalog's not_in lists leave out on purpose.
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(TestCatalogs.Source(TestCatalogs.Segment("s", "value", rule))));
        Assert.Contains("exists", Assert.Single(ex.Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_mistake_in_a_literal_block_rule_is_reported_at_its_own_line()
    {
        var segments = "segments:\n" + TestCatalogs.Segment("block", "value", "|\n  orders.count >= 1\n  and orders.aov gretaer 3");
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", TestCatalogs.Schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback), new CatalogFile("segments.yaml", segments)]);
        var error = Assert.Single(Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors);
        Assert.Contains("gretaer", segments.Split('\n')[error.Line - 1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ field: traits.score, exists: True }", "traits.score exists")]
    [InlineData("{ field: email.opens_of_last_sends, last: \"3.0\", gte: 1 }", "email.opens_of_last_sends last 3.0 >= 1")]
    public void Unusual_mapping_values_are_written_so_they_read_back_the_same(string yaml, string text)
    {
        Assert.Equal(text, RuleText.Format(ReadYaml(yaml)));
        Assert.Equal(text, RuleText.Format(RuleText.Parse(text, out _)!));
    }

    [Theory]
    [InlineData("events.page_view.count window 1d window 30d >= 5")]
    [InlineData("events.page_view.count(1d) window 30d >= 5")]
    [InlineData("email.opens_of_last_sends(3) last 5 >= 1")]
    public void A_qualifier_given_twice_is_an_error(string text)
    {
        Assert.Null(RuleText.Parse(text, out var error));
        Assert.Contains("is given twice", error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_rules_repeated_through_yaml_aliases_are_bounded_in_characters()
    {
        var big = "orders.count in [" + string.Join(", ", Enumerable.Repeat("1", 5_000)) + "]"; // about 15,000 characters
        var uses = string.Join(", ", Enumerable.Repeat("*big", 100));
        var catalog = $"fragments:\n  big: &big \"{big}\"\nsegments:\n" + TestCatalogs.Segment("repeated", "value", $"{{ any: [{uses}] }}");
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", TestCatalogs.Schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback), new CatalogFile("segments.yaml", catalog)]);
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source));
        Assert.Contains(ex.Errors, e => e.Message.Contains("text rules amount to more than", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("orders.aov > 200 and orders.last_at within 30d and email.opens_of_last_sends(3) >= 3")]
    [InlineData("traits.tier in [gold, platinum] or (traits.score between 1 and 49 and not traits.vip == true)")]
    [InlineData("not (traits.tier == gold or traits.tier == silver)")]
    [InlineData("traits.first_name == \"and\" and traits.tier == \"two words\"")]
    [InlineData("events.page_view.count window 7d >= 5 and traits.tier resolve recent == gold")]
    public void Canonical_text_reads_back_to_itself(string text)
    {
        var tree = RuleText.Parse(text, out var error);
        Assert.Null(error);
        Assert.Equal(text, RuleText.Format(tree!));
    }

    [Fact]
    public void A_text_rule_in_a_catalog_decides_as_its_mapping_form()
    {
        using var world = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("as_text", "value", "\"orders.count >= 2 and traits.tier in [gold, platinum]\""),
            TestCatalogs.Segment("as_tree", "value", "{ all: [ { field: orders.count, gte: 2 }, { field: traits.tier, in: [gold, platinum] } ] }")), now: Now);
        world.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["tier"] = "Gold" }, "test", AttributeLayer.ZeroParty, null);
        Assert.DoesNotContain(world.Decide("u1").Matched, m => m.Segment.Id is "as_text" or "as_tree");
        world.Track("u1", "purchase", Now.AddDays(-2), value: 20, orderId: "o1");
        world.Track("u1", "purchase", Now.AddDays(-1), value: 30, orderId: "o2");
        var matched = world.Decide("u1").Matched.Select(m => m.Segment.Id).ToList();
        Assert.Contains("as_text", matched);
        Assert.Contains("as_tree", matched);

        // Explanations and the catalog print rules in the text syntax.
        var segment = world.Catalogs.Current.Segments.Single(s => s.Id == "as_tree");
        Assert.Equal("orders.count >= 2 and traits.tier in [gold, platinum]", segment.Rule!.Text);
    }

    [Fact]
    public void A_text_clause_may_sit_inside_the_mapping_form()
    {
        using var world = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("mixed", "value", "{ any: [ \"traits.score > 10\", { field: traits.tier, eq: gold } ] }")), now: Now);
        world.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 11.0 }, "test", AttributeLayer.ZeroParty, null);
        Assert.Equal("mixed", world.Decide("u1").Winner.Id);
    }

    [Theory]
    [InlineData("orders.aov gretaer 200", "gretaer 200", "unknown operator 'gretaer'", null)]
    [InlineData("orders.aov > 200 and orders.last_at withn 30d", "withn 30d", "unknown operator 'withn'", "within")]
    [InlineData("orders.aov > 200 and orders.avo > 3", "orders.avo > 3", "unknown field 'orders.avo'", "orders.aov")]
    [InlineData("orders.aov > 200 and (orders.count > 1", "\"", "the rule ends where ')' was expected", null)]
    [InlineData("orders.aov > 200 orders.count > 1", "orders.count > 1", "unexpected orders.count after a complete rule", null)]
    [InlineData("traits.tier == 'gold", "'gold", "no closing '", null)]
    [InlineData("traits.score between 1 or 5", "or 5", "'between' is written 'between LOW and HIGH'", null)]
    public void Mistakes_are_reported_at_file_line_and_column_with_a_suggestion(string rule, string at, string message, string? suggestion)
    {
        var segments = "segments:\n" + TestCatalogs.Segment("typo", "value", $"\"{rule}\"");
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", TestCatalogs.Schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback), new CatalogFile("segments.yaml", segments)]);
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source));
        var error = Assert.Single(ex.Errors);
        Assert.Equal("segments.yaml", error.File);
        Assert.Contains(message, error.Message);
        if (suggestion is not null)
        {
            Assert.Contains($"did you mean '{suggestion}'", error.Message);
        }

        // The line and column point at the offending word in the file.
        var line = segments.Split('\n')[error.Line - 1];
        Assert.True(error.Column > 0 && line[(error.Column - 1)..].StartsWith(at, StringComparison.Ordinal), $"{error.Line}:{error.Column} in '{line}'");
        Assert.StartsWith($"segments.yaml:{error.Line}:{error.Column} ", error.ToString(), StringComparison.Ordinal);
    }

    // Fields of every type, each with the operators that apply to it and a generator of operands.
    private static readonly (string Field, string[] Ops, Gen<string> Value)[] Fields =
    [
        ("traits.score", ["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between", "exists"], Gen.Int[-3, 12].Select(i => i.ToString(CultureInfo.InvariantCulture))),
        ("orders.count", ["eq", "ne", "lt", "lte", "gt", "gte", "in", "between"], Gen.Int[0, 4].Select(i => i.ToString(CultureInfo.InvariantCulture))),
        ("traits.tier", ["eq", "ne", "in", "not_in", "contains", "starts_with", "exists"], Gen.OneOf("gold", "silver", "go", "Gold card", "and", "AND", "Not", "x\"y", "a\\b", "\\")),
        ("traits.interests", ["contains", "in", "not_in", "exists"], Gen.OneOf("garden", "kitchen", "toys")),
        ("traits.vip", ["eq", "ne", "exists"], Gen.OneOf("true", "false")),
        ("orders.last_at", ["within", "older_than", "exists"], Gen.OneOf("1d", "3d", "30d")),
        ("context.device", ["eq", "ne", "in"], Gen.OneOf("mobile", "desktop")),
        ("events.page_view.count", ["gte", "lt", "eq"], Gen.Int[0, 3].Select(i => i.ToString(CultureInfo.InvariantCulture))),
        ("email.opens_of_last_sends", ["gte", "lt"], Gen.Int[0, 3].Select(i => i.ToString(CultureInfo.InvariantCulture))),
    ];

    // The qualifier a field may take: a window for event counts, a number of sends for the email fields.
    private static Gen<(string Key, string Value)?> Qualifier(string field) => field switch
    {
        "events.page_view.count" => Gen.OneOf<(string, string)?>(((string, string)?)null, ("window", "7d"), ("window", "30d")),
        "email.opens_of_last_sends" => Gen.OneOf<(string, string)?>(((string, string)?)null, ("last", "3"), ("last", "5")),
        _ => Gen.Bool.Select(_ => ((string, string)?)null),
    };

    private static readonly Gen<SyntaxNode> Condition =
        Gen.Int[0, Fields.Length - 1].SelectMany(i =>
        {
            var (field, ops, value) = Fields[i];
            return Gen.Select(Gen.OneOf(ops), value, value, Gen.Bool, Qualifier(field)).Select((op, a, b, yes, qualifier) =>
            {
                var at = new SourcePosition("t", 1, 1);
                SyntaxNode operand = op switch
                {
                    "in" or "not_in" => new SyntaxList([new SyntaxScalar(a, at), new SyntaxScalar(b, at)], at),
                    "between" => new SyntaxList([new SyntaxScalar(Min(a, b), at), new SyntaxScalar(Max(a, b), at)], at),
                    "exists" => new SyntaxScalar(yes ? "true" : "false", at),
                    _ => new SyntaxScalar(a, at),
                };
                List<SyntaxEntry> entries = [new SyntaxEntry(new SyntaxScalar("field", at), new SyntaxScalar(field, at))];
                if (qualifier is { } q)
                {
                    entries.Add(new SyntaxEntry(new SyntaxScalar(q.Key, at), new SyntaxScalar(q.Value, at)));
                }

                entries.Add(new SyntaxEntry(new SyntaxScalar(op, at), operand));
                return (SyntaxNode)new SyntaxMap(entries, at);
            });
        });

    private static string Min(string a, string b) => double.Parse(a, CultureInfo.InvariantCulture) <= double.Parse(b, CultureInfo.InvariantCulture) ? a : b;

    private static string Max(string a, string b) => Min(a, b) == a ? b : a;

    private static readonly Gen<SyntaxNode> Rule = Gen.Recursive<SyntaxNode>((depth, tree) =>
    {
        var at = new SourcePosition("t", 1, 1);
        if (depth >= 3)
        {
            return Condition;
        }

        var group = Gen.Select(Gen.OneOf("all", "any"), tree.Array[1, 4]).Select((kind, items) =>
            (SyntaxNode)new SyntaxMap([new SyntaxEntry(new SyntaxScalar(kind, at), new SyntaxList(items, at))], at));
        var not = tree.Select(inner => (SyntaxNode)new SyntaxMap([new SyntaxEntry(new SyntaxScalar("not", at), inner)], at));
        return Gen.Frequency((3, Condition), (2, group), (1, not));
    });

    [Fact]
    public void Text_to_tree_to_text_round_trips() =>
        Rule.Sample(tree =>
        {
            var text = RuleText.Format(tree);
            var parsed = RuleText.Parse(text, out var error);
            Assert.True(error is null, $"{text}: {error}");
            Assert.Equal(text, RuleText.Format(parsed!));

            // The text form has no one-item groups; apart from those, the trees are the same.
            Assert.Equal(Shape(Collapse(tree)), Shape(parsed!));
        }, iter: Tests.Fuzz.Fuzz.Iter(2000));

    private static readonly Gen<Dictionary<string, object?>> Traits = Gen.Select(
        OrMissing(Gen.Int[-3, 12].Select(i => (object?)(double)i)),
        OrMissing(Gen.OneOf<object?>("gold", "Gold card", "silver", "and", "x\"y", "")),
        OrMissing(Gen.OneOf<object?>(new[] { "garden" }, new[] { "kitchen", "toys" }, Array.Empty<string>())),
        OrMissing(Gen.Bool.Select(b => (object?)b))).Select((score, tier, interests, vip) =>
        {
            var traits = new Dictionary<string, object?>();
            foreach (var (name, value) in new[] { ("score", score), ("tier", tier), ("interests", interests), ("vip", vip) })
            {
                if (value is not null)
                {
                    traits[name] = value;
                }
            }

            return traits;
        });

    private static Gen<object?> OrMissing(Gen<object?> value) => Gen.Frequency((1, Gen.Const((object?)null)), (2, value));

    private static readonly Gen<(Dictionary<string, object?> Traits, int[] OrderDaysAgo, string Device)> Profile =
        Gen.Select(Traits, Gen.Int[0, 40].Array[0, 3], Gen.OneOf("mobile", "desktop", ""));

    [Fact]
    public void A_text_rule_evaluates_as_its_mapping_form_on_random_profiles() =>
        Gen.Select(Rule, Profile.Array[8]).Sample((tree, profiles) =>
        {
            var text = RuleText.Format(tree);
            using var world = new TestWorld(TestCatalogs.Source(
                TestCatalogs.Segment("as_tree", "value", Yaml(tree)),
                TestCatalogs.Segment("as_text", "value", Quote(text))), now: Now);
            for (var i = 0; i < profiles.Length; i++)
            {
                var (traits, orders, device) = profiles[i];
                var user = $"u{i}";
                if (traits.Count > 0)
                {
                    world.Ingestion.SetTraits(user, traits, "test", AttributeLayer.ZeroParty, null);
                }

                for (var o = 0; o < orders.Length; o++)
                {
                    world.Track(user, "purchase", Now.AddDays(-orders[o]).AddMinutes(-o), value: 10, orderId: $"o{o}");
                }

                var matched = world.Decide(user, new RequestContext { Device = device }).Matched.Select(m => m.Segment.Id).ToHashSet();
                Assert.True(matched.Contains("as_tree") == matched.Contains("as_text"), $"{text} on {user}: tree {matched.Contains("as_tree")}, text {matched.Contains("as_text")}");
            }
        }, iter: Tests.Fuzz.Fuzz.Iter(60), threads: 1);

    // A one-item all/any is its item.
    private static SyntaxNode Collapse(SyntaxNode node) => node switch
    {
        SyntaxMap { Entries: [{ Name: "all" or "any", Value: SyntaxList { Items: [var only] } }] } => Collapse(only),
        SyntaxMap m => new SyntaxMap([.. m.Entries.Select(e => new SyntaxEntry(e.Key, Collapse(e.Value)))], m.At),
        SyntaxList l => new SyntaxList([.. l.Items.Select(Collapse)], l.At),
        _ => node,
    };

    // The tree with positions dropped: what both forms must agree on.
    private static string Shape(SyntaxNode node) => node switch
    {
        SyntaxScalar s => "'" + s.Value + "'",
        SyntaxList l => "[" + string.Join(",", l.Items.Select(Shape)) + "]",
        SyntaxMap m => "{" + string.Join(",", m.Entries.Select(e => Shape(e.Key) + ":" + Shape(e.Value))) + "}",
        _ => "?",
    };

    private static SyntaxNode ReadYaml(string yaml)
    {
        var errors = new List<CatalogError>();
        var docs = YamlCatalogReader.Read(new CatalogFile("t.yaml", yaml), errors);
        Assert.Empty(errors);
        return Assert.Single(docs);
    }

    // The tree in YAML flow form (every scalar double-quoted so nothing is re-typed by YAML).
    private static string Yaml(SyntaxNode node) => node switch
    {
        SyntaxScalar s => Quote(s.Value ?? ""),
        SyntaxList l => "[" + string.Join(", ", l.Items.Select(Yaml)) + "]",
        SyntaxMap m => "{ " + string.Join(", ", m.Entries.Select(e => Yaml(e.Key) + ": " + Yaml(e.Value))) + " }",
        _ => "null",
    };

    private static string Quote(string value)
    {
        var sb = new StringBuilder("\"");
        foreach (var ch in value)
        {
            sb.Append(ch is '"' or '\\' ? "\\" + ch : ch.ToString());
        }

        return sb.Append('"').ToString();
    }
}
