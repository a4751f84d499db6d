using System.Globalization;
using System.Text.Json.Nodes;
using Json.Schema;
using Segmentation.Core.Catalog;
using Segmentation.Core.Rules;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Segmentation.Core.Tests.Catalog;

/// <summary>
/// The JSON Schema for catalog files (docs/schema/catalog.schema.json), which editors use through the
/// yaml-language-server comment: it accepts every file of the default catalog, flags the mistakes the loader
/// flags (a misspelt key, an unknown operator, an unknown outcome), and names the same keys as the loader, so
/// the two cannot drift apart unnoticed.
/// </summary>
public sealed class CatalogJsonSchemaTests
{
    private static readonly JsonSchema Schema = JsonSchema.FromText(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Schema", "catalog.schema.json")));

    private static readonly EvaluationOptions Options = new() { OutputFormat = OutputFormat.List };

    public static TheoryData<string> DefaultCatalogFiles()
    {
        var root = Path.Combine(AppContext.BaseDirectory, "DefaultCatalogFiles");
        var data = new TheoryData<string>();
        foreach (var file in Directory.EnumerateFiles(root, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(root, file));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(DefaultCatalogFiles))]
    public void Every_default_catalog_file_is_valid_and_names_the_schema(string file)
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "DefaultCatalogFiles", file));
        Assert.StartsWith("# yaml-language-server: $schema=", text, StringComparison.Ordinal);
        var schemaPath = text[(text.IndexOf('=', StringComparison.Ordinal) + 1)..text.IndexOf('\n', StringComparison.Ordinal)].Trim();
        Assert.EndsWith("docs/schema/catalog.schema.json", schemaPath, StringComparison.Ordinal);
        Assert.Equal(file.Count(c => c is '/' or '\\') + 3, schemaPath.Split('/').Count(p => p == ".."));

        var result = Schema.Evaluate(Element(text), Options);
        Assert.True(result.IsValid, Describe(result));
    }

    [Theory]
    [InlineData("segments:\n  - { id: a, name: A, type: value, priorty: 5, rule: 'orders.count > 1' }", "priorty")]
    [InlineData("segments:\n  - { id: a, name: A, type: value, rule: { field: orders.count, gretaer: 1 } }", "gretaer")]
    [InlineData("segments:\n  - { id: a, name: A, type: valu, rule: 'orders.count > 1' }", "type")]
    [InlineData("segments:\n  - id: a\n    name: A\n    type: value\n    rule: 'orders.count > 1'\n    personalization: { banner: x }", "banner")]
    [InlineData("segmnets: []", "segmnets")]
    public void Mistakes_the_loader_rejects_are_flagged_in_the_editor(string yaml, string about)
    {
        var result = Schema.Evaluate(Element(yaml), Options);
        Assert.False(result.IsValid);
        Assert.Contains(about, Describe(result), StringComparison.Ordinal);
    }

    [Fact]
    public void The_schema_names_the_keys_and_operators_the_loader_accepts()
    {
        var schema = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Schema", "catalog.schema.json")))!;
        Assert.Equal(CatalogValidator.TopLevelKeys.Order(StringComparer.Ordinal), Keys(schema["properties"]));
        Assert.Equal(CatalogValidator.SegmentKeys.Order(StringComparer.Ordinal), Keys(schema["$defs"]!["segment"]!["properties"]));
        var condition = Keys(schema["$defs"]!["condition"]!["properties"]);
        Assert.Empty(RuleCompiler.Operators.Except(condition));
    }

    private static List<string> Keys(JsonNode? properties) => [.. properties!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal)];

    private static string Describe(EvaluationResults result) =>
        string.Join("; ", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 }).Select(d => $"{d.InstanceLocation}: {string.Join(", ", d.Errors!.Values)}"));

    // YAML to JSON as an editor's language server reads it: plain scalars typed (numbers, booleans, null), quoted ones strings.
    private static System.Text.Json.JsonElement Element(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return System.Text.Json.JsonSerializer.SerializeToElement(ToJson(stream.Documents[0].RootNode));
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(e => KeyValuePair.Create(((YamlScalarNode)e.Key).Value!, ToJson(e.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode { Style: ScalarStyle.Plain } s => Plain(s.Value),
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => null,
    };

    private static JsonValue? Plain(string? value) => value switch
    {
        null or "" or "~" or "null" => null,
        "true" or "True" => JsonValue.Create(true),
        "false" or "False" => JsonValue.Create(false),
        _ when long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => JsonValue.Create(n),
        _ when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) => JsonValue.Create(d),
        _ => JsonValue.Create(value),
    };
}
