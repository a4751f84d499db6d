using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Catalog;

public class CatalogValidationTests
{
    private static CatalogException Fails(params string[] segments) =>
        Assert.Throws<CatalogException>(() => CatalogLoader.Load(TestCatalogs.Source(segments)));

    [Fact]
    public void Segment_without_all_five_outcomes_is_rejected()
    {
        var yaml = TestCatalogs.Segment("no_offer", "value", "{ field: orders.count, gte: 1 }").Replace("      offer: \"offer for no_offer\"\n", "");

        var error = Assert.Single(Fails(yaml).Errors);

        Assert.Equal(("segments.yaml", "no_offer", "personalization.offer"), (error.File, error.Segment, error.Clause));
        Assert.Contains("every segment needs content, offer, cta, journey and messaging", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ field: traits.tier, eq: }", "needs a value")]
    [InlineData("{ field: traits.tier, eq: \"\" }", "needs a value")]
    [InlineData("{ field: traits.tier, ne: '' }", "needs a value")]
    [InlineData("{ field: traits.tier, contains: \"\" }", "needs a value")]
    [InlineData("{ field: traits.tier, starts_with: \"\" }", "needs a value")]
    [InlineData("{ field: traits.tier, regex: \"\" }", "needs a value")]
    [InlineData("{ field: traits.interests, contains: \"\" }", "needs a value")]
    [InlineData("{ field: traits.tier, eq: null }", "use exists: false")]
    [InlineData("{ field: traits.tier, ne: ~ }", "use exists: false")]
    public void A_comparison_with_no_value_is_an_error_at_its_line_pointing_to_exists(string rule, string message)
    {
        var error = Assert.Single(Fails(TestCatalogs.Segment("s", "value", rule)).Errors);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.True(error.Line > 0, error.ToString());
    }

    [Theory]
    [InlineData("number")]
    [InlineData("list")]
    public void A_trait_observed_by_a_text_field_must_be_a_string(string type)
    {
        var schema = TestCatalogs.Schema.Replace("score: { type: number }", $"score: {{ type: {type}, observed_by: affinity.top_category }}");
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback)]);

        var error = Assert.Single(Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors);

        Assert.Contains("is a string", error.Message, StringComparison.Ordinal);
        Assert.Equal(("catalog.yaml", true), (error.File, error.Line > 0));
    }

    [Fact]
    public void Between_on_a_string_says_it_does_not_apply_not_that_it_takes_one_value()
    {
        var error = Assert.Single(Fails(TestCatalogs.Segment("s", "value", "{ field: traits.tier, between: [a, c] }")).Errors);

        Assert.Contains("operator 'between' does not apply to string field", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_quoted_null_is_the_text_null()
    {
        var catalog = CatalogLoader.Load(TestCatalogs.Source(TestCatalogs.Segment("s", "value", "{ field: traits.tier, eq: \"null\" }")));

        Assert.Contains(catalog.Segments, s => s.Id == "s");
    }

    [Fact]
    public void An_alias_inside_the_node_it_names_is_an_error_not_an_endless_tree()
    {
        var yaml = TestCatalogs.Segment("s", "value", "&loop { all: [ *loop ] }");

        var error = Assert.Single(Fails(yaml).Errors);

        Assert.Contains("refers to the node that contains it", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Templates_repeated_through_aliases_are_counted_expanded_and_bounded_before_anything_is_compiled()
    {
        // One 50,000-character template, used five times per segment through an alias and the personalization map
        // through another, in 20 segments: 5 million characters to compile from a file of 50 KB.
        var big = new string('A', 50_000);
        var yaml = new System.Text.StringBuilder("segments:\n");
        for (var i = 0; i < 20; i++)
        {
            yaml.Append(System.Globalization.CultureInfo.InvariantCulture, $"  - id: s{i}\n    name: s{i}\n    type: value\n    rule: {{ field: orders.count, gte: {i + 1} }}\n");
            yaml.Append(i == 0
                ? $"    personalization: &p\n      content: &t \"{big}\"\n      offer: *t\n      cta: *t\n      journey: *t\n      messaging: *t\n"
                : "    personalization: *p\n");
        }

        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", TestCatalogs.Schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback), new CatalogFile("segments.yaml", yaml.ToString())]);
        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors;

        Assert.Contains(errors, e => e.Message.Contains("characters of templates once aliases are expanded (at most 4,000,000)", StringComparison.Ordinal));
    }

    [Fact]
    public void A_long_scalar_repeated_through_aliases_is_bounded_before_it_is_read_and_quoted_in_errors()
    {
        // Regression: the node limit counts an alias as one node whatever it names: 5,000 uses of a 10,000-character
        // scalar as segment ids gave 5,000 errors quoting it whole (50 MB of messages; a 1 MiB file sent to
        // ValidateCatalog with a read-only key could ask for hundreds of gigabytes).
        var id = new string('z', 10_000);
        var yaml = TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }", $"    overrides: [&a \"{id}\", {string.Join(", ", Enumerable.Repeat("*a", 5_000))}]");

        var errors = Fails(yaml).Errors;

        Assert.Contains(errors, e => e.Message.Contains("characters of text once its aliases (*name) are expanded", StringComparison.Ordinal));
        Assert.True(errors.Sum(e => e.Message.Length) < 100_000, $"{errors.Count} errors, {errors.Sum(e => (long)e.Message.Length):N0} characters");

        // Within the text limit (3,000 uses: 30 million characters), each error quotes it bounded and the list is cut.
        var within = TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }", $"    overrides: [&a \"{id}\", {string.Join(", ", Enumerable.Repeat("*a", 3_000))}]");
        var listed = Fails(within).Errors;
        Assert.Equal(CatalogException.MaxErrors + 1, listed.Count);
        Assert.Contains("more errors not listed", listed[^1].Message, StringComparison.Ordinal);
        Assert.All(listed, e => Assert.True(e.Message.Length <= CatalogError.MaxMessageLength));
    }

    [Fact]
    public void A_template_longer_than_the_limit_is_an_error()
    {
        var yaml = TestCatalogs.Segment("long", "value", "{ field: orders.count, gte: 1 }").Replace("\"offer for long\"", "\"" + new string('x', 70_000) + "\"", StringComparison.Ordinal);

        var error = Assert.Single(Fails(yaml).Errors);

        Assert.Equal(("long", "personalization.offer.template"), (error.Segment, error.Clause));
        Assert.Contains("70,000 characters (at most 65,536)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void More_segments_than_the_limit_is_an_error()
    {
        // With the fallback, one past the limit.
        var segments = Enumerable.Range(0, CatalogValidator.MaxSegments).Select(i => TestCatalogs.Segment($"s{i}", "value", $"{{ field: orders.count, gte: {i} }}")).ToArray();

        var errors = Fails(segments).Errors;

        Assert.Contains(errors, e => e.Message.Contains($"{CatalogValidator.MaxSegments + 1:N0} segments (at most {CatalogValidator.MaxSegments:N0})", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("first_name: { type: string, pii: true }", "first_name: { type: string, pii: yes }", "'pii' is true or false (got 'yes')")]
    [InlineData("first_name: { type: string, pii: true }", "first_name: { type: string, PII: true }", "unknown key 'PII'; did you mean 'pii'?")]
    [InlineData("fallback: everyone", "fallback: everyone\n  holdout: nan", "'holdout' is the share of users")]
    [InlineData("    tone: warm", "    tone: warm\n    tagline: Be kind", "unknown key 'tagline'")]
    [InlineData("    messaging: Be kind", "    messaging: Be kind\n  - id: friendly\n    name: Again", "persona declared twice")]
    [InlineData("vip: { type: bool }", "vip: { type: bool }\n    lead_score: { type: string }", "'lead_score' is derived by the service as a number; declare it with that type (declared: string)")]
    public void A_setting_that_would_be_read_as_something_else_is_an_error(string find, string replace, string message)
    {
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", TestCatalogs.Schema.Replace(find, replace, StringComparison.Ordinal)), new CatalogFile("fallback.yaml", TestCatalogs.Fallback)]);

        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors;

        Assert.Contains(errors, e => e.Message.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void A_derived_trait_declared_with_another_type_is_refused_at_its_line()
    {
        // Regression: the error came from the compiler with line 0, so an editor could not point at the declaration.
        var schema = TestCatalogs.Schema.Replace("vip: { type: bool }", "vip: { type: bool }\n    lead_score: { type: string }", StringComparison.Ordinal);
        var line = Array.FindIndex(schema.Split('\n'), l => l.Contains("lead_score", StringComparison.Ordinal)) + 1;
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback)]);

        var error = Assert.Single(Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors);

        Assert.Equal(("catalog.yaml", line, "schema.traits.lead_score"), (error.File, error.Line, error.Clause));
        Assert.Contains("'lead_score' is derived by the service as a number", error.Message, StringComparison.Ordinal);

        // A version that was active before the check keeps loading at start-up.
        Assert.NotNull(CatalogLoader.LoadKept(source));
    }

    [Fact]
    public void More_lead_score_signals_than_the_limit_is_an_error()
    {
        var signals = string.Join("\n", Enumerable.Range(0, CatalogCompiler.MaxLeadSignals + 1).Select(i => $"          - {{ name: s{i}, event: page_view, points: 1, cap: 5, window: 7d }}"));
        var schema = TestCatalogs.Schema + "\n\nscoring:\n  lead:\n    signals:\n" + signals.Replace("          - ", "      - ", StringComparison.Ordinal) + "\n";
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback)]);

        var errors = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors;

        Assert.Contains(errors, e => e.Message.Contains($"{CatalogCompiler.MaxLeadSignals + 1:N0} signals (at most {CatalogCompiler.MaxLeadSignals:N0})", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_field_error_names_file_line_segment_and_clause()
    {
        var error = Assert.Single(Fails(TestCatalogs.Segment("s", "value", """
            all:
              - { field: orders.count, gte: 1 }
              - { field: orders.colour, eq: red }
            """)).Errors);

        Assert.Equal(("segments.yaml", "s", "rule.all[1]"), (error.File, error.Segment, error.Clause));
        Assert.True(error.Line > 1);
        Assert.Contains("unknown field 'orders.colour'", error.Message, StringComparison.Ordinal);
        Assert.StartsWith("segments.yaml:", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ field: traits.tier, gt: 5 }", "does not apply to string")]
    [InlineData("{ field: traits.score, eq: high }", "takes a number")]
    [InlineData("{ field: traits.score, within: 30d }", "does not apply to number")]
    [InlineData("{ field: orders.last_at, within: soon }", "duration")]
    [InlineData("{ field: traits.tier, regex: '(' }", "invalid regex")]
    [InlineData("{ field: traits.score, gt: 1, lt: 5 }", "exactly one operator")]
    [InlineData("{ field: traits.score }", "no operator")]
    [InlineData("{ field: traits.unknown, eq: 1 }", "unknown trait")]
    [InlineData("{ field: events.teleport.count, gte: 1 }", "unknown event type")]
    [InlineData("{ field: orders.count, window: 30d, gte: 1 }", "'window' applies only")]
    [InlineData("{ field: context.weather, eq: sunny }", "unknown context field")]
    [InlineData("{ field: traits.score, between: [5, 1] }", "low <= high")]
    [InlineData("{ all: [] }", "non-empty list")]
    [InlineData("{ field: traits.score, approx: 5 }", "unknown key 'approx'")]
    public void Rules_are_type_checked_at_load(string rule, string expected)
    {
        var error = Assert.Single(Fails(TestCatalogs.Segment("s", "value", rule)).Errors);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Equal("s", error.Segment);
    }

    [Fact]
    public void Unknown_override_and_exclusion_targets_are_errors()
    {
        var errors = Fails(TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }", "    overrides: [ghost]\n    exclusions: [phantom]")).Errors;

        Assert.Contains(errors, e => e.Clause == "overrides" && e.Message.Contains("ghost", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Clause == "exclusions" && e.Message.Contains("phantom", StringComparison.Ordinal));
    }

    [Fact]
    public void Template_syntax_errors_and_unknown_model_variables_are_errors()
    {
        var broken = TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }")
            .Replace("\"cta for s\"", "\"{{ if profile.orders }}unclosed\"")
            .Replace("\"journey for s\"", "\"{{ customer.name }}\"");

        var errors = Fails(broken).Errors;

        Assert.Contains(errors, e => e.Clause == "personalization.cta.template");
        Assert.Contains(errors, e => e.Clause == "personalization.journey.template" && e.Message.Contains("unknown variable 'customer'", StringComparison.Ordinal));
    }

    [Fact]
    public void A_catalog_needs_exactly_one_fallback()
    {
        var noFallback = new InMemoryCatalogSource([
            new CatalogFile("catalog.yaml", TestCatalogs.Schema.Replace("  fallback: everyone\n", "")),
            new CatalogFile("s.yaml", "segments:\n" + TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }")),
        ]);
        Assert.Contains(Assert.Throws<CatalogException>(() => CatalogLoader.Load(noFallback)).Errors, e => e.Message.Contains("no fallback", StringComparison.Ordinal));

        var second = TestCatalogs.Fallback.Replace("id: everyone", "id: everyone_else").Replace("segments:\n", "");
        var errors = Fails(second).Errors;
        Assert.Contains(errors, e => e.Segment == "everyone_else" && e.Message.Contains("only one fallback", StringComparison.Ordinal));
    }

    [Fact]
    public void Duplicate_ids_unknown_types_and_unknown_keys_are_errors()
    {
        var rule = "{ field: orders.count, gte: 1 }";
        var errors = Fails(
            TestCatalogs.Segment("dup", "value", rule),
            TestCatalogs.Segment("dup", "value", rule),
            TestCatalogs.Segment("odd", "astrological", rule),
            TestCatalogs.Segment("typo", "value", rule, "    prioritty: 5")).Errors;

        Assert.Contains(errors, e => e.Segment == "dup" && e.Message.Contains("duplicate", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Segment == "odd" && e.Clause == "type");
        Assert.Contains(errors, e => e.Segment == "typo" && e.Message.Contains("unknown key 'prioritty'", StringComparison.Ordinal));
    }

    [Fact]
    public void Invalid_yaml_reports_the_file_and_line()
    {
        var source = new InMemoryCatalogSource([new CatalogFile("bad.yaml", "segments:\n  - id: x\n   name: [unclosed\n")]);
        var error = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source)).Errors[0];
        Assert.Equal("bad.yaml", error.File);
        Assert.Contains("YAML", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_load_keeps_the_previous_catalog_active()
    {
        var provider = new CatalogProvider();
        var good = provider.Load(TestCatalogs.Source());

        Assert.Throws<CatalogException>(() => provider.Load(TestCatalogs.Source(TestCatalogs.Segment("s", "value", "{ field: nope, eq: 1 }"))));

        Assert.Same(good, provider.Current);
        Assert.Equal(1, provider.Current.Version);
    }
}
