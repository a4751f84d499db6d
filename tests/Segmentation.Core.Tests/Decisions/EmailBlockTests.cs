using Segmentation.Core.Catalog;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Decisions;

/// <summary>Named email blocks: declared per segment beyond the five outcomes, validated at load, rendered in email batches.</summary>
public sealed class EmailBlockTests
{
    private static InMemoryCatalogSource Catalog(string blocks) => new(
    [
        new CatalogFile("catalog.yaml", TestCatalogs.Schema),
        new CatalogFile("fallback.yaml", TestCatalogs.Fallback),
        new CatalogFile("segments.yaml", "segments:\n" + TestCatalogs.Segment("scored", "value", "{ field: traits.score, gte: 1 }", blocks)),
    ]);

    private const string Blocks = """
            email_blocks:
              hero: "Hello {{ profile.traits.first_name ?? 'there' }}"
              footer: { id: scored.footer.v2, template: "{{ segment.name }} footer", fallback: "footer" }
              broken: { template: "{{ for i in 1..100000 }}x{{ end }}", fallback: "safe text" }
        """;

    [Fact]
    public void An_email_batch_renders_the_winners_blocks_in_order_and_a_web_batch_none()
    {
        using var w = new TestWorld(Catalog(Blocks));
        w.Ingestion.SetTraits("ada", new Dictionary<string, object?> { ["score"] = 5.0, ["first_name"] = "Ada" }, "crm", AttributeLayer.ZeroParty, null);

        var email = Assert.Single(w.Engine.DecideBatch(["ada"], new RequestContext(Channel: "email"), w.Clock.Now, explain: false));
        var web = Assert.Single(w.Engine.DecideBatch(["ada"], new RequestContext(), w.Clock.Now, explain: false));

        Assert.Equal(
            [("hero", "scored.block.hero", "Hello Ada", false), ("footer", "scored.footer.v2", "scored footer", false), ("broken", "scored.block.broken", "safe text", true)],
            email.EmailBlocks.Select(b => (b.Name, b.Block.VariantId, b.Block.Text, b.Block.FallbackUsed)));
        Assert.Empty(web.EmailBlocks);
    }

    [Theory]
    [InlineData("    email_blocks: [hero]\n", "'email_blocks' maps a block name")]
    [InlineData("    email_blocks:\n      Hero: \"x\"\n", "block name 'Hero' must be lower-case")]
    [InlineData("    email_blocks:\n      hero: \"{{ if }}\"\n", "template error")]
    public void Mistakes_in_email_blocks_are_catalog_errors(string blocks, string message)
    {
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(Catalog(blocks)));
        Assert.Contains(ex.Errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.File == "segments.yaml" && e.Line > 0);
    }
}
