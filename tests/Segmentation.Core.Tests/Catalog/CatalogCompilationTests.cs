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
    public void A_feature_many_rules_read_is_computed_once_per_evaluation_whichever_rule_reads_it_first()
    {
        // probe.count read: behind a condition that short-circuits (not read there), by an inlined comparison (the
        // first read), by more inlined ones, and by a test the method calls rather than inlines (between).
        string[] texts =
        [
            "context.device == \"tv\" and probe.count >= 1",
            "probe.count >= 2",
            "probe.count >= 5 or context.device == \"mobile\"",
            "probe.count between 1 and 4",
            "not probe.count < 3",
        ];
        ComputesTheProbeOncePerEvaluation(texts, (request, matched) => Assert.Equal([false, true, request.Device == "mobile", true, true], matched));
    }

    [Theory]
    [InlineData(5, false)]     // one method: computed straight into its local, not remembered in the context
    [InlineData(150, true)]    // three methods (64 rules each) reading it: through the context, which the first one fills
    public void A_feature_inlined_clauses_read_is_computed_once_per_evaluation_in_one_method_or_many(int ruleCount, bool throughTheContext)
    {
        var texts = Enumerable.Range(0, ruleCount).Select(i => (i % 3) switch
        {
            0 => $"probe.count >= {i % 5}",
            1 => $"context.device == \"tv\" and probe.count >= {i % 4}",
            _ => $"not probe.count < {i % 6} or context.device == \"mobile\"",
        }).ToArray();
        ComputesTheProbeOncePerEvaluation(texts, rememberedInTheContext: throughTheContext);
    }

    // Compiles the rules into whole-catalog methods and evaluates them for each request, twice (the context reset
    // between): probe.count is computed once each time, and every rule agrees with its own delegate.
    private static void ComputesTheProbeOncePerEvaluation(string[] texts, Action<RequestContext, bool[]>? check = null, bool? rememberedInTheContext = null)
    {
        var reads = 0;
        var compiler = new RuleCompiler(new FieldRegistry(new Dictionary<string, TraitDefinition>(), new CountingFields(() => reads++)));
        var rules = texts.Select((text, i) => compiler.Compile(RuleText.Parse(text, out var error) ?? throw new InvalidOperationException(error!.Message), $"rule{i}", (_, _, message) => throw new InvalidOperationException(message))).ToList();
        var evaluateAll = RuleNode.CompileAll(rules, compiler.Features);
        Assert.Equal(1, compiler.Features.Count);

        foreach (var request in Requests)
        {
            var context = new EvalContext(null, request, 0, RfmModel.Empty, compiler.Features);
            var matched = new bool[texts.Length];
            reads = 0;
            evaluateAll(context, matched);
            Assert.Equal(1, reads);
            var plain = new EvalContext(null, request, 0, RfmModel.Empty);
            Assert.Equal(rules.Select(r => r!.Evaluate(plain)), matched);
            check?.Invoke(request, matched);
            if (rememberedInTheContext is { } remembered)
            {
                // Read afterwards through the context, as a reader outside the catalog's evaluation does.
                var probe = compiler.Features.Remember(FieldAccessor.ForNumber("probe.count", _ => double.NaN));
                reads = 0;
                Assert.Equal(3, probe.Number!(context));
                Assert.Equal(remembered ? 0 : 1, reads);
            }

            context.Reset(); // a new evaluation computes it again, once
            reads = 0;
            evaluateAll(context, matched);
            Assert.Equal(1, reads);
        }
    }

    // A scoring layer that knows one field, probe.count (always 3), and counts its computations.
    private sealed class CountingFields(Action read) : IDerivedFields
    {
        public IReadOnlyDictionary<string, FieldType> Traits { get; } = new Dictionary<string, FieldType>();

        public IReadOnlySet<string> ObservableFields { get; } = new HashSet<string>();

        public object? Compute(string trait, EvalContext c) => null;

        public FieldAccessor? Field(string name) => name == "probe.count" ? FieldAccessor.ForNumber(name, _ =>
        {
            read();
            return 3;
        }) : null;

        public (string? Value, long LastTicks) Observed(string observedBy, EvalContext c) => (null, long.MinValue);
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
