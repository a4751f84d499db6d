using Segmentation.Core.Catalog;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Catalog;

/// <summary>One indentation mistake in a catalog file is one error that says what to fix, never a cascade.</summary>
public sealed class IndentationMistakeTests
{
    private static CatalogError OnlyError(string segments)
    {
        var source = new InMemoryCatalogSource([new CatalogFile("catalog.yaml", TestCatalogs.Schema), new CatalogFile("fallback.yaml", TestCatalogs.Fallback), new CatalogFile("segments.yaml", segments)]);
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(source));
        return Assert.Single(ex.Errors);
    }

    private const string Outcomes = """
              content: "c"
              offer: "o"
              journey: "j"
              messaging: "m"
        """;

    [Fact]
    public void A_line_indented_out_of_its_mapping_is_a_syntax_error_at_its_line_and_column_with_a_hint()
    {
        var error = OnlyError($"""
            segments:
              - id: a
                name: A
                type: intent
                rule: "orders.count >= 1"
                personalization:
            {Outcomes}
                 cta: "x"
            """);
        Assert.Equal(11, error.Line); // the over-indented "cta" line
        Assert.Equal(6, error.Column);
        Assert.Contains("Check the indentation of this line", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_segment_key_indented_inside_personalization_is_one_error_not_also_a_missing_rule()
    {
        var error = OnlyError($"""
            segments:
              - id: a
                name: A
                type: intent
                personalization:
                  cta: "x"
            {Outcomes}
                  rule: "orders.count >= 1"
            """);
        Assert.Equal("personalization.rule", error.Clause);
        Assert.Contains("'rule' is a key of the segment, but it is indented inside 'personalization'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_outcome_indented_as_a_segment_key_is_one_error_not_also_a_missing_outcome()
    {
        var error = OnlyError($"""
            segments:
              - id: a
                name: A
                type: intent
                rule: "orders.count >= 1"
                personalization:
            {Outcomes}
                cta: "x"
            """);
        Assert.Equal("cta", error.Clause);
        Assert.Contains("'cta' is an outcome, but it is indented as a key of the segment", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("name: A")]
    [InlineData("type: intent")]
    public void Any_segment_key_indented_inside_personalization_is_one_error(string key)
    {
        var keys = new[] { "name: A", "type: intent" }.Where(k => k != key);
        var error = OnlyError($"""
            segments:
              - id: a
            {string.Join("\n", keys.Select(k => "    " + k))}
                rule: "orders.count >= 1"
                personalization:
                  cta: "x"
            {Outcomes}
                  {key}
            """);
        Assert.Contains("is a key of the segment, but it is indented inside 'personalization'", error.Message, StringComparison.Ordinal);
    }
}
