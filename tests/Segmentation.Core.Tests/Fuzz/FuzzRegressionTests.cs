using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Fuzz;

/// <summary>The smallest inputs the fuzz and property tests found bugs with, pinned so they stay fixed.</summary>
public sealed class FuzzRegressionTests : IDisposable
{
    private readonly TestWorld _world = new(now: Fuzz.Now);

    private static BehaviourEvent Purchase(string id, double value, params OrderLine[] lines) => new()
    {
        EventId = id,
        Type = EventTypes.Purchase,
        UserId = "regression-user",
        Timestamp = Fuzz.Now.AddDays(-1),
        Context = new EventContext("web", "desktop", "s1", "checkout"),
        OrderId = "o-" + id,
        Value = value,
        Lines = lines,
    };

    [Fact]
    public void A_nul_key_before_a_nested_mapping_is_a_catalog_error_not_a_crash()
    {
        // Found by CatalogFuzzTests (seed eOBaoVlYHJj1): YamlDotNet threw ArgumentException for it.
        var yaml = "\0: " + new string('x', 491) + ": -1005298062209138";
        var ex = Assert.Throws<Core.Catalog.CatalogException>(() => Core.Catalog.CatalogLoader.Load(new Core.Catalog.InMemoryCatalogSource([new Core.Catalog.CatalogFile("nul-key.yaml", yaml)], "test")));
        Assert.Contains(ex.Errors, e => e.File == "nul-key.yaml" && e.Message.StartsWith("YAML syntax error", StringComparison.Ordinal));
    }

    [Fact]
    public void Event_whose_lines_total_overflows_is_rejected_instead_of_storing_infinite_revenue()
    {
        var e = Purchase("e1", 0, new OrderLine("sku", null, null, 2, double.MaxValue / 1.5));
        var ex = Assert.Throws<ValidationException>(() => _world.Ingestion.Track(e));
        Assert.Contains(ex.Violations, v => v.Field.StartsWith("event.lines", StringComparison.Ordinal));
        Assert.Null(_world.Store.Get("regression-user"));
    }

    [Fact]
    public void Huge_values_are_rejected_so_revenue_stays_finite()
    {
        Assert.Throws<ValidationException>(() => _world.Ingestion.Track(Purchase("e1", 1e308)));
        Assert.Throws<ValidationException>(() => _world.Ingestion.Track(Purchase("e2", 0, new OrderLine("sku", null, null, int.MaxValue, 1))));
        _world.Ingestion.Track(Purchase("e3", EventValidator.MaxAmount));
        Assert.Equal(EventValidator.MaxAmount, _world.Store.Get("regression-user")!.Revenue);
    }

    [Fact]
    public void Traits_with_an_undefined_layer_are_rejected()
    {
        var ex = Assert.Throws<ValidationException>(() => _world.Ingestion.SetTraits("regression-user", new Dictionary<string, object?> { ["company_size"] = 5d }, "crm", (AttributeLayer)18295, null));
        Assert.Contains(ex.Violations, v => v.Field == "layer");
    }

    [Fact]
    public void Decide_before_1970_is_a_validation_error_not_a_crash()
    {
        var ex = Assert.Throws<ValidationException>(() => _world.Engine.Decide(new DecisionRequest("u", "", RequestContext.Empty, new DateTimeOffset(1, 1, 2, 0, 0, 0, TimeSpan.Zero))));
        Assert.Contains(ex.Violations, v => v.Field == "timestamp");
        Assert.Throws<ValidationException>(() => _world.Engine.DecideBatch(["u"], RequestContext.Empty, DateTimeOffset.UnixEpoch.AddTicks(-1), false).ToList());
    }

    [Fact]
    public void Yaml_the_parser_fails_on_without_a_position_is_a_catalog_error()
    {
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([new CatalogFile("bad.yaml", "x: { y: z, w: {{ }\nq: 1")])));
        Assert.Contains(ex.Errors, e => e.File == "bad.yaml" && e.Message.StartsWith("YAML syntax error", StringComparison.Ordinal));
    }

    public void Dispose() => _world.Dispose();
}
