using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Catalog;

/// <summary>
/// The whole-catalog compiled evaluator (<see cref="Core.Catalog.CatalogSnapshot.EvaluateAll"/>, with features
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

                    // The membership path's winner search agrees with full resolution (statuses, suppressions),
                    // and its context, reused from the previous user's evaluation, remembers nothing of them.
                    var resolved = Decider.Resolve(catalog.Segments, matched).Winner ?? catalog.Fallback;
                    var membership = Decider.Evaluate(catalog, profile, request, new DateTimeOffset(now, TimeSpan.Zero), w.Rfm.Current);
                    Assert.Same(resolved, membership.Winner);
                    Assert.Equal(expected, membership.Matched);
                    Assert.Equal(plain.ValidUntilTicks, membership.ValidUntilTicks);
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
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("buyer", "transactional", "{ field: orders.count, gte: 1 }")));
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

    [Fact]
    public void A_returned_context_is_reused_by_its_thread_and_keeps_nothing_of_the_profile_it_read()
    {
        using var w = new TestWorld(TestCatalogs.Source(
            TestCatalogs.Segment("buyer", "transactional", "{ field: orders.count, gte: 1 }"),
            TestCatalogs.Segment("shopper", "behavioural", "{ field: events.purchase.count, window: 30d, gte: 1 }")));
        w.Track("u1", "purchase", value: 10, orderId: "o1");
        var catalog = w.Catalogs.Current;
        var now = w.Clock.Now.UtcTicks;
        var matched = new bool[catalog.Segments.Count];

        var first = EvalContext.Rent(w.Store.Get("u1"), RequestContext.Empty, now, w.Rfm.Current, catalog.Features);
        catalog.EvaluateAll(first, matched);
        Assert.Equal(2, matched.Count(m => m)); // buyer and shopper
        first.Return();
        Assert.Null(first.Profile);
        Assert.Same(RfmModel.Empty, first.Rfm);

        var second = EvalContext.Rent(null, RequestContext.Empty, now, w.Rfm.Current, catalog.Features);
        Assert.Same(first, second);
        catalog.EvaluateAll(second, matched);
        Assert.DoesNotContain(true, matched); // the first user's remembered features are not read back
        Assert.NotSame(second, EvalContext.Rent(null, RequestContext.Empty, now, w.Rfm.Current, catalog.Features)); // rented out: a new one
        second.Return();
        Assert.NotSame(second, EvalContext.Rent(null, RequestContext.Empty, now, w.Rfm.Current, new FeatureLayout())); // another catalog's layout
    }

    [Fact]
    public void A_catalog_larger_than_one_compiled_method_is_evaluated_in_chunks_with_the_same_results()
    {
        var segments = Enumerable.Range(0, 150).Select(k => TestCatalogs.Segment(
            $"s{k}",
            k % 2 == 0 ? "value" : "behavioural",
            k % 3 == 0 ? $"{{ field: orders.count, gte: {k % 7} }}" : $"{{ any: [{{ field: events.page_view.count, window: {1 + (k % 30)}d, gte: {k % 4} }}, {{ field: context.device, eq: mobile }}] }}"));
        using var w = new TestWorld(TestCatalogs.Source([.. segments]));
        var catalog = w.Catalogs.Current;
        Assert.True(catalog.Segments.Count(s => s.Rule is not null) > 2 * RuleNode.SegmentsPerMethod);
        for (var i = 0; i < 5; i++)
        {
            w.Track("u1", "page_view", at: w.Clock.Now.AddDays(-3 * i));
        }

        w.Track("u1", "purchase", value: 20, orderId: "o1");
        foreach (var request in Requests)
        {
            var compiled = new EvalContext(w.Store.Get("u1"), request, w.Clock.Now.UtcTicks, w.Rfm.Current, catalog.Features);
            var matched = new bool[catalog.Segments.Count];
            catalog.EvaluateAll(compiled, matched);
            var plain = new EvalContext(w.Store.Get("u1"), request, w.Clock.Now.UtcTicks, w.Rfm.Current);

            Assert.Equal(catalog.Segments.Select(s => s.Rule?.Evaluate(plain) ?? false), matched);
            Assert.Contains(true, matched);
            Assert.Contains(false, matched);
            Assert.Equal(plain.ValidUntilTicks, compiled.ValidUntilTicks);
        }
    }
}
