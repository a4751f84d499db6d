using Segmentation.Core.Application.Import;
using Segmentation.Core.Application.Products;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Scoring;
using Segmentation.Core.Tests.Support;
using Xunit.Abstractions;

namespace Segmentation.Core.Tests.Application.Products;

/// <summary>Data-to-action content: templates name products from the profile and from related products learned as events arrive.</summary>
public sealed class ProductContentTests(ITestOutputHelper output)
{
    private static InMemoryCatalogSource Catalog(string template) => new(
    [
        new CatalogFile("catalog.yaml", TestCatalogs.Schema),
        new CatalogFile("fallback.yaml", TestCatalogs.Fallback),
        new CatalogFile("segments.yaml", "segments:\n" + TestCatalogs.Segment("shopper", "behavioural", "{ field: profile.events, gte: 1 }").Replace("content for shopper", template, StringComparison.Ordinal)),
    ]);

    private static string Content(TestWorld w, string user) => w.Decide(user).Variant(VariantKind.Content).Text;

    [Fact]
    public void Templates_read_recent_views_the_cart_the_last_purchase_and_affinities()
    {
        const string Template = "viewed {{ profile.recently_viewed | array.join ',' }}; cart {{ profile.cart_products | array.join ',' }}; last {{ profile.last_purchase.product }} {{ profile.last_purchase.days_ago }}d; cats {{ profile.top_categories | array.join ',' }}; top {{ profile.top_products[0] }}";
        using var w = new TestWorld(Catalog(Template));
        var t0 = w.Clock.Now;
        w.Track("u", EventTypes.Purchase, at: t0.AddDays(-3), value: 30, category: "lamps", orderId: "o1", quantity: 1, product: "lamp-1");
        w.Track("u", EventTypes.ProductView, at: t0.AddHours(-5), category: "candles", product: "candle-1");
        w.Track("u", EventTypes.ProductView, at: t0.AddHours(-4), category: "candles", product: "candle-2");
        w.Track("u", EventTypes.ProductView, at: t0.AddHours(-3), category: "candles", product: "candle-1");
        w.Track("u", EventTypes.AddToCart, at: t0.AddHours(-2), category: "candles", quantity: 1, value: 5, product: "candle-1");
        w.Track("u", EventTypes.AddToCart, at: t0.AddHours(-1), category: "mugs", quantity: 1, value: 8, product: "mug-1");
        w.Track("u", EventTypes.RemoveFromCart, at: t0.AddMinutes(-30), category: "mugs", quantity: 1, product: "mug-1");

        var text = Content(w, "u");

        Assert.Equal("viewed candle-1,candle-2; cart candle-1; last lamp-1 3d; cats candles,lamps,mugs; top candle-1", text);
    }

    [Fact]
    public void Top_categories_read_the_interactions_affinity_reads_so_their_first_is_the_rules_top_category()
    {
        // Regression: the template's list walked every event the profile keeps (up to a million per render) while
        // affinity.top_category reads the newest 1,024: 300 old purchases of books ranked books first in the
        // template and shoes for the rules.
        using var w = new TestWorld(Catalog("cats {{ profile.top_categories | array.join ',' }}"));
        var t0 = w.Clock.Now;
        for (var i = 0; i < 300; i++)
        {
            w.Track("u", EventTypes.Purchase, at: t0.AddDays(-2), value: 10, category: "books", orderId: $"o{i}", quantity: 1, product: "novel");
        }

        for (var i = 0; i < DerivedScores.ScanHorizon; i++)
        {
            w.Track("u", EventTypes.ProductView, at: t0.AddHours(-1), category: "shoes", product: "boot");
        }

        var profile = w.Store.Get("u");
        Assert.Equal("shoes", DerivedScores.Affinity(profile, t0.UtcTicks, ProductSignals.AffinityHalfLife).Top);
        Assert.Equal("cats shoes", Content(w, "u"));
    }

    [Fact]
    public void Top_categories_leave_out_interactions_older_than_eight_half_lives_and_the_decision_is_valid_until_one_leaves()
    {
        // Regression: the template's list kept an interaction of any age (its weight tiny but ranked), and a decision
        // showing it stayed valid when affinity.top_category would have changed.
        using var w = new TestWorld(Catalog("cats {{ profile.top_categories | array.join ',' }}"));
        var t0 = w.Clock.Now;
        var old = t0.AddDays(-239);
        w.Track("u", EventTypes.ProductView, at: old, category: "lamps", product: "lamp-1");
        w.Track("u", EventTypes.ProductView, at: t0.AddHours(-1), category: "candles", product: "candle-1");

        var now = w.Decide("u");
        Assert.Equal("cats candles,lamps", now.Variant(VariantKind.Content).Text);
        Assert.Equal(old.Add(8 * ProductSignals.AffinityHalfLife).UtcTicks, now.ValidUntilTicks);

        w.Clock.Now = old.Add(8 * ProductSignals.AffinityHalfLife);
        Assert.Equal("cats candles", Content(w, "u"));
    }

    [Fact]
    public void Top_categories_decay_with_the_catalogs_affinity_half_life()
    {
        // A view today against a purchase (five times the weight) 14 days ago: with a 30-day half-life the purchase
        // ranks first; with the catalog's 7 days it weighs 5/4 and still does; 21 days ago (5/8) the view wins.
        var source = new InMemoryCatalogSource(
        [
            new CatalogFile("catalog.yaml", TestCatalogs.Schema + "\nscoring:\n  affinity_half_life: 7d\n"),
            new CatalogFile("fallback.yaml", TestCatalogs.Fallback),
            new CatalogFile("segments.yaml", "segments:\n" + TestCatalogs.Segment("shopper", "behavioural", "{ field: profile.events, gte: 1 }").Replace("content for shopper", "cats {{ profile.top_categories | array.join ',' }}", StringComparison.Ordinal)),
        ]);
        using var w = new TestWorld(source);
        var t0 = w.Clock.Now;
        w.Track("u", EventTypes.Purchase, at: t0.AddDays(-21), value: 10, category: "lamps", orderId: "o1", quantity: 1, product: "lamp-1");
        w.Track("u", EventTypes.ProductView, at: t0.AddMinutes(-1), category: "candles", product: "candle-1");

        Assert.Equal("cats candles,lamps", Content(w, "u"));
        Assert.Equal("lamps", DerivedScores.Affinity(w.Store.Get("u"), t0.UtcTicks, ProductSignals.AffinityHalfLife).Top); // the 30-day default ranks the other way
    }

    [Fact]
    public void Related_products_come_from_co_purchases_exclude_what_was_bought_and_keep_the_decision_valid_only_until_the_next_refresh()
    {
        using var w = new TestWorld(Catalog("related {{ profile.related | array.join ',' }}"));
        var t0 = w.Clock.Now;
        for (var i = 0; i < 5; i++)
        {
            w.Ingestion.Track(Order($"o{i}", $"buyer{i}", t0.AddDays(-10), "tea", "teapot", "cups"));
        }

        w.Ingestion.Track(Order("o-x", "buyer9", t0.AddDays(-9), "tea", "honey"));
        w.Ingestion.Track(Order("o-me", "me", t0.AddDays(-1), "tea"));

        var decision = w.Decide("me");

        Assert.Equal("related cups,teapot,honey", decision.Variant(VariantKind.Content).Text); // most co-bought first (ties by id); "tea" itself never: already bought
        var refresh = t0.UtcTicks - (t0.UtcTicks % ProductRelations.Refresh.Ticks) + ProductRelations.Refresh.Ticks;
        Assert.True(decision.ValidUntilTicks <= refresh, "a decision showing related products is cached only until the relations are refreshed");
    }

    [Fact]
    public void A_request_dated_ahead_of_the_server_does_not_freeze_the_related_products_until_its_time()
    {
        // Regression: a preview Decide dated next year built the copy of its refresh boundary, which every later
        // request (all earlier) was then served, so relations stopped refreshing for a year.
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var relations = new ProductRelations(clock);
        relations.ObserveView("lamp", ["shade"]);

        var preview = relations.Related(["lamp"], new HashSet<string>(), 1, clock.Now.AddYears(1).UtcTicks, out var previewValid);
        Assert.Equal(["shade"], preview);
        Assert.Equal(clock.Now.AddYears(1).UtcTicks + 1, previewValid); // answered from the current copy, for that instant only

        relations.ObserveView("lamp", ["bulb"]);
        relations.ObserveView("lamp", ["bulb"]);
        clock.Now = clock.Now.Add(ProductRelations.Refresh);

        Assert.Equal(["bulb"], relations.Related(["lamp"], new HashSet<string>(), 1, clock.Now.UtcTicks, out _)); // refreshed on time
    }

    [Fact]
    public async Task While_one_request_rebuilds_the_related_products_the_others_get_the_previous_copy_uncacheable()
    {
        // Regression: every request after a refresh boundary waited for one request's rebuild (up to 20,000 products'
        // neighbours sorted under a lock), so renders showing related products stalled together every 10 minutes.
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var relations = new ProductRelations(clock);
        relations.ObserveView("lamp", ["shade"]);
        Assert.Equal(["shade"], relations.Related(["lamp"], new HashSet<string>(), 1, clock.Now.UtcTicks, out _));
        relations.ObserveView("lamp", ["bulb"]);
        relations.ObserveView("lamp", ["bulb"]);
        clock.Now = clock.Now.Add(ProductRelations.Refresh);

        using var rebuilding = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        relations.Rebuilding = () =>
        {
            rebuilding.Set();
            release.Wait(TimeSpan.FromSeconds(30));
        };
        var rebuilder = Task.Run(() => relations.Related(["lamp"], new HashSet<string>(), 1, clock.Now.UtcTicks, out _));
        Assert.True(rebuilding.Wait(TimeSpan.FromSeconds(30)));

        var meanwhile = relations.Related(["lamp"], new HashSet<string>(), 1, clock.Now.UtcTicks, out var meanwhileValid); // returns while the rebuild is held
        release.Set();

        Assert.Equal(["shade"], meanwhile);
        Assert.Equal(clock.Now.UtcTicks + 1, meanwhileValid); // for this instant only: a decision on it is never cached
        Assert.Equal(["bulb"], await rebuilder);
    }

    [Fact]
    public void Past_the_related_products_counted_per_product_the_most_counted_survives_the_replacements()
    {
        var relations = new ProductRelations();
        for (var i = 0; i < 500; i++)
        {
            relations.ObservePurchase(["hub", $"p{i}"], []);
        }

        relations.ObservePurchase(["hub", "p7"], []);
        relations.ObservePurchase(["hub", "p7"], []);
        var related = relations.Related(["hub"], new HashSet<string>(), 3, 0, out _);

        Assert.Equal("p7", related[0]); // counted three times: it survives the replacements
    }

    [Fact]
    public void A_view_looks_back_over_a_bounded_number_of_events_live_and_when_learned_again()
    {
        // Regression (review): a view looked back over the whole hour until it found five other products, so thousands of
        // views of one product (a bot, a polling client) made each view scan all the others: quadratic in the burst, on
        // the ingesting threads and again on the restart's learning pass.
        using var w = new TestWorld(Catalog("related {{ profile.related | array.join ',' }}"));
        var start = w.Clock.Now.AddMinutes(-59);
        w.Track("bot", EventTypes.ProductView, at: start, category: "kitchen", product: "first");
        for (var i = 1; i <= ProductRelations.MaxLookBack + 500; i++)
        {
            w.Track("bot", EventTypes.ProductView, at: start.AddSeconds(i * 0.5), category: "kitchen", product: "same");
        }

        w.Track("bot", EventTypes.ProductView, at: w.Clock.Now, category: "kitchen", product: "last");
        var none = new HashSet<string>();
        Assert.Equal(["same"], w.Get<ProductRelations>().Related(["last"], none, 1, w.Clock.Now.UtcTicks, out _)); // "first" is beyond the look-back

        var rebuilt = new ProductRelations();
        Assert.Equal(1, rebuilt.Learn(w.Store.Snapshot()));
        Assert.Equal(["same"], rebuilt.Related(["last"], none, 1, w.Clock.Now.UtcTicks, out _));
    }

    [Fact]
    public void Past_the_product_ids_kept_a_new_product_joins_no_list_and_known_ones_still_count()
    {
        // Regression (review): past the ids kept, each new neighbour kept the caller's own copy of its id (the request's),
        // one per list it joined: up to five million strings beyond the documented bound.
        var relations = new ProductRelations();
        relations.ObservePurchase(["hub", "known"], []);
        for (var i = 0; i < ProductRelations.MaxProducts * 4; i++)
        {
            relations.ObserveView($"v{i}", []); // fills the ids kept
        }

        relations.ObservePurchase(["hub", new string("late".AsSpan())], []);
        relations.ObservePurchase(["hub", "known"], []);
        var related = relations.Related(["hub"], new HashSet<string>(), 5, 0, out _);

        Assert.DoesNotContain("late", related);
        Assert.Equal("known", related[0]);
    }

    [Fact]
    public void Relations_learned_again_from_the_profiles_give_the_related_products_learned_live()
    {
        // Orders of one product each (a profile keeps one product per order) bought one after the other, and views
        // within an hour of each other: what a restart learns again from the restored profiles.
        using var w = new TestWorld(Catalog("related {{ profile.related | array.join ',' }}"));
        var t0 = w.Clock.Now;
        var random = new Random(11);
        for (var u = 0; u < 60; u++)
        {
            var at = t0.AddDays(-30 + random.Next(10));
            for (var k = 0; k < 4; k++)
            {
                at = at.AddMinutes(10 + random.Next(60));
                var product = $"p{random.Next(12)}";
                if (k % 2 == 0)
                {
                    w.Ingestion.Track(Order($"o{u}-{k}", $"user{u}", at, product));
                }
                else
                {
                    w.Track($"user{u}", EventTypes.ProductView, at: at, category: "kitchen", product: product);
                }
            }
        }

        var live = w.Get<ProductRelations>();
        var rebuilt = new ProductRelations();
        Assert.Equal(60, rebuilt.Learn(w.Store.Snapshot()));

        Assert.Equal(live.Products, rebuilt.Products);
        var none = new HashSet<string>();
        for (var p = 0; p < 12; p++)
        {
            var seeds = new[] { $"p{p}" };
            var expected = live.Related(seeds, none, 5, t0.UtcTicks, out _);
            Assert.NotEmpty(expected);
            Assert.Equal(expected, rebuilt.Related(seeds, none, 5, t0.UtcTicks, out _));
        }

        Assert.Equal(live.Popular(12), rebuilt.Popular(12));
    }

    [Fact]
    public void On_a_hold_out_of_the_demo_purchases_related_products_beat_popularity()
    {
        using var reader = File.OpenText(TestWorld.DemoCsvPath);
        var events = OnlineRetailImport.ReadEvents(reader, endsAt: null, out _);

        var score = RelatedProductsEvaluation.Run(events, trainShare: 0.8, k: 5);

        output.WriteLine($"split {score.Split:yyyy-MM-dd}: {score.Customers} customers ordered before and after; top-5 related hit {score.RelatedHitRate:P1} ({score.RelatedHits}), top-5 popular {score.PopularHitRate:P1} ({score.PopularHits}); {score.Products} products tracked");
        Assert.True(score.Customers >= 100, "the hold-out should hold enough customers to compare");
        Assert.True(score.RelatedHitRate > score.PopularHitRate, $"related {score.RelatedHitRate:P1} vs popular {score.PopularHitRate:P1}");
    }

    private static BehaviourEvent Order(string id, string user, DateTimeOffset at, params string[] products) => new()
    {
        EventId = id,
        Type = EventTypes.Purchase,
        UserId = user,
        Timestamp = at,
        Context = new EventContext("web", "desktop", $"s-{id}", "checkout"),
        OrderId = id,
        Lines = [.. products.Select(p => new OrderLine(p, null, "kitchen", 1, 10))],
    };
}
