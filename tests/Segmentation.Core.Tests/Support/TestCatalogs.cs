using Segmentation.Core.Catalog;

namespace Segmentation.Core.Tests.Support;

/// <summary>Builds small in-memory catalogs for tests.</summary>
public static class TestCatalogs
{
    public const string Schema = """
        catalog:
          name: test
          fallback: everyone
        schema:
          traits:
            vip: { type: bool }
            tier: { type: string }
            score: { type: number }
            interests: { type: list }
            birthday: { type: timestamp }
            first_name: { type: string, pii: true }
        personas:
          - id: friendly
            name: Friendly
            tone: warm
            messaging: Be kind
        """;

    public const string Fallback = """
        segments:
          - id: everyone
            name: Everyone
            type: contextual
            fallback: true
            personalization:
              content: "Welcome"
              offer: "Free delivery over £50"
              cta: "Shop now"
              journey: "browse"
              messaging: "Hello"
        """;

    /// <summary>Five simple outcomes for a segment, as YAML at the given indentation.</summary>
    public static string Outcomes(string id) => $$"""
            personalization:
              content: { id: {{id}}.content, template: "content for {{id}}", fallback: "fallback content" }
              offer: "offer for {{id}}"
              cta: "cta for {{id}}"
              journey: "journey for {{id}}"
              messaging: "messaging for {{id}}"
        """;

    /// <summary>A segment with the given rule (YAML, flow or block at 6 spaces) and extra keys.</summary>
    public static string Segment(string id, string type, string rule, string extra = "") => $"""
          - id: {id}
            name: {id}
            type: {type}
        {extra}
            rule:
        {Indent(rule, 6)}
        {Outcomes(id)}
        """;

    public static ICatalogSource Source(params string[] segments)
    {
        List<CatalogFile> files = [new CatalogFile("catalog.yaml", Schema), new CatalogFile("fallback.yaml", Fallback)];
        if (segments.Length > 0)
        {
            files.Add(new CatalogFile("segments.yaml", "segments:\n" + string.Join("\n", segments)));
        }

        return new InMemoryCatalogSource(files);
    }

    public static string Indent(string text, int spaces) =>
        string.Join("\n", text.Trim('\n').Split('\n').Select(l => new string(' ', spaces) + l));
}
