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

    [Fact]
    public void An_email_batch_reads_each_profile_once_for_its_decision_send_time_and_blocks()
    {
        // One read per user: the decision, its send time and its blocks (and a consent check) see one version of the
        // profile (three reads could see three, if the user was written in between).
        using var w = new TestWorld(Catalog(Blocks));
        var users = new[] { "ada", "bob", "cy" };
        foreach (var user in users)
        {
            w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["score"] = 5.0, ["first_name"] = user }, "crm", AttributeLayer.ZeroParty, null);
        }

        var counting = new CountingStore(w.Store);
        var engine = new Core.Application.Decisions.DecisionEngine(
            w.Catalogs, counting, w.Get<RfmModelProvider>(), new Core.Application.Decisions.DecisionCache(new Core.Application.Decisions.DecisionCacheOptions()),
            w.Get<Core.Decisions.Decider>(), w.Clock, w.Get<Core.Privacy.ConsentPolicy>(), w.Measurement, w.Get<Core.Application.Decisions.SendTimePriorProvider>());

        var items = engine.DecideBatch(users, new RequestContext(Channel: "email"), w.Clock.Now, explain: false).ToList();

        Assert.All(items, item => Assert.NotEmpty(item.EmailBlocks));
        Assert.Equal(users.Length, counting.Gets);
    }

    private sealed class CountingStore(IProfileStore inner) : DelegatingProfileStore(inner)
    {
        public int Gets { get; private set; }

        public override Profile? Get(string key)
        {
            Gets++;
            return Inner.Get(key);
        }
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
