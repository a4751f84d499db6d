using Segmentation.Core.Decisions;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Tests;

/// <summary>
/// The whole-catalog compiled evaluator (<see cref="Catalog.CatalogSnapshot.EvaluateAll"/>, with features
/// remembered per evaluation) against each segment's own rule delegate on a fresh context without remembering.
/// </summary>
public class CatalogCompilationTests
{
    private static readonly RequestContext[] Requests =
    [
        RequestContext.Empty,
        new(Channel: "web", Device: "mobile", Country: "GB", PageType: "product", SearchQuery: "christmas gift"),
        new(Channel: "email", Device: "desktop", Country: "FR", Source: "newsletter", PageType: "home"),
    ];

    [Fact]
    public void Compiled_catalog_agrees_with_every_rule_on_every_demo_customer_at_several_times()
    {
        using var w = new TestWorld();
        w.ImportDemo();
        w.Rfm.Recompute(w.Store);
        var catalog = w.Catalogs.Current;
        var users = w.Store.Snapshot().Take(1500).Select(p => p.UserId).ToList();
        var checkedDecisions = 0;
        foreach (var days in new[] { 0, 45, 400 })
        {
            var now = w.Clock.Now.AddDays(days).UtcTicks;
            foreach (var user in users)
            {
                var profile = w.Store.Get(user);
                foreach (var request in Requests)
                {
                    var compiled = new EvalContext(profile, request, now, w.Rfm.Current, catalog.Features);
                    var matched = new bool[catalog.Segments.Count];
                    catalog.EvaluateAll(compiled, matched);

                    var plain = new EvalContext(profile, request, now, w.Rfm.Current);
                    var expected = catalog.Segments.Select(s => s.Rule?.Evaluate(plain) ?? false).ToArray();

                    Assert.Equal(expected, matched);
                    Assert.Equal(plain.ValidUntilTicks, compiled.ValidUntilTicks);

                    // The membership path's winner search agrees with full resolution (statuses, suppressions).
                    var resolved = Decider.Resolve(catalog.Segments, matched).Winner ?? catalog.Fallback;
                    Assert.Same(resolved, Decider.Evaluate(catalog, profile, request, new DateTimeOffset(now, TimeSpan.Zero), w.Rfm.Current).Winner);
                    checkedDecisions++;
                }
            }
        }

        Assert.Equal(3 * 3 * users.Count, checkedDecisions);
        Assert.True(users.Count > 1000);
    }

    [Fact]
    public void A_reset_context_computes_every_feature_again()
    {
        using var w = new TestWorld(Catalogs.Source(Catalogs.Segment("buyer", "transactional", "{ field: orders.count, gte: 1 }")));
        var catalog = w.Catalogs.Current;
        var context = new EvalContext(null, RequestContext.Empty, w.Clock.Now.UtcTicks, w.Rfm.Current, catalog.Features);
        var matched = new bool[catalog.Segments.Count];

        catalog.EvaluateAll(context, matched);
        Assert.False(matched[0]);

        w.Track("u1", "purchase", value: 10, orderId: "o1");
        var withOrder = new EvalContext(w.Store.Get("u1"), RequestContext.Empty, w.Clock.Now.UtcTicks, w.Rfm.Current, catalog.Features);
        catalog.EvaluateAll(withOrder, matched);
        Assert.True(matched[0]);
        withOrder.Reset();
        catalog.EvaluateAll(withOrder, matched);
        Assert.True(matched[0]);
        Assert.Equal(1, catalog.Features.Count);
    }
}
