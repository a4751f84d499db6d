using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Composition;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;

namespace Segmentation.Benchmarks;

/// <summary>A clock that stands still, so every benchmark invocation sees the same instant.</summary>
public sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>
/// The one place benchmarks build domain objects: the domain wired by AddSegmentationCore as in the server
/// (and in tests/Segmentation.Core.Tests/TestWorld.cs), over a synthetic 50-segment catalog, with a
/// small RFM population and one realistic shopper. Constructor changes in Segmentation.Core need a
/// fix here only.
/// </summary>
public sealed class BenchWorld : IDisposable
{
    /// <summary>Number of segments with a rule in <see cref="SyntheticCatalog"/> (plus one fallback).</summary>
    public const int RuleSegments = 50;

    /// <summary>Email contact policies of the benchmarks: caps by engagement, suppression, quiet hours in Europe/London.</summary>
    public const string EmailPolicies = """
        contact_policies:
          time_zone: Europe/London
          channels:
            email:
              caps: { high: 5/7d, active: 2/7d, declining: 1/7d, inactive: 0/7d, default: 2/7d }
              quiet_hours: "21:00-08:00"
          suppression:
            - { after: 3, outcomes: [dismiss, email_unsubscribe], within: 7d, pause: 14d }
        """;

    /// <summary>The realistic shopper every decision benchmark decides for.</summary>
    public const string ShopperId = "bench-shopper";

    /// <summary>A world over the synthetic catalog, or over <paramref name="catalog"/> (the shipped one: <see cref="EmbeddedCatalogSource"/>).</summary>
    public BenchWorld(int populationCustomers = 500, ICatalogSource? catalog = null)
    {
        Clock = new FixedClock(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(Clock);
        services.AddSingleton(catalog ?? new InMemoryCatalogSource([new CatalogFile("bench.yaml", SyntheticCatalog())], "bench"));
        services.AddSegmentationCore();
        _services = services.BuildServiceProvider();

        Catalogs = _services.GetRequiredService<CatalogStartup>().Load();
        if (catalog is null && Catalogs.Current.Segments.Count(s => s.Rule is not null) != RuleSegments)
        {
            throw new InvalidOperationException($"the synthetic catalog should have {RuleSegments} rule segments");
        }

        Store = _services.GetRequiredService<InMemoryProfileStore>();
        Rfm = _services.GetRequiredService<RfmModelProvider>();
        Memberships = _services.GetRequiredService<MembershipIndex>();
        Cache = _services.GetRequiredService<DecisionCache>();
        Renderer = _services.GetRequiredService<TemplateRenderer>();
        Decider = _services.GetRequiredService<Decider>();
        Engine = _services.GetRequiredService<DecisionEngine>();
        Ingestion = _services.GetRequiredService<ProfileIngestion>();
        Measurement = _services.GetRequiredService<DecisionMeasurement>();
        Outcomes = _services.GetRequiredService<OutcomeRecorder>();

        AddPopulation(populationCustomers);
        AddShopper();
        Rfm.Recompute(Store);
    }

    private readonly ServiceProvider _services;

    public FixedClock Clock { get; }

    public CatalogProvider Catalogs { get; }

    public InMemoryProfileStore Store { get; }

    public RfmModelProvider Rfm { get; }

    public MembershipIndex Memberships { get; }

    public DecisionCache Cache { get; }

    public TemplateRenderer Renderer { get; }

    public Decider Decider { get; }

    public DecisionEngine Engine { get; }

    public ProfileIngestion Ingestion { get; }

    public DecisionMeasurement Measurement { get; }

    public OutcomeRecorder Outcomes { get; }

    /// <summary>A service of the world.</summary>
    public T Get<T>()
        where T : notnull => _services.GetRequiredService<T>();

    public DateTimeOffset Now => Clock.Now;

    /// <summary>A storefront product page on a phone in the UK.</summary>
    public RequestContext Request { get; } = new(Channel: "web", Device: "mobile", Country: "GB", Locale: "en-GB", Source: "google", PageType: "product", PagePath: "/gifts/christmas/lanterns");

    public Profile Shopper => Store.Get(ShopperId) ?? throw new InvalidOperationException("the shopper was not ingested");

    /// <summary>What a compiled rule reads for the shopper now (remembering features as a decision does).</summary>
    public EvalContext ShopperContext() => new(Shopper, Request, Now.UtcTicks, Rfm.Current, Catalogs.Current.Features);

    /// <summary>A page view for <paramref name="userId"/> now; <paramref name="eventId"/> must be unique to count.</summary>
    public BehaviourEvent PageView(string userId, string eventId, string? country = null) => new()
    {
        EventId = eventId,
        Type = EventTypes.PageView,
        UserId = userId,
        Timestamp = Now,
        Context = new EventContext("web", "mobile", $"s-{userId}", "product", "/gifts/christmas", country),
    };

    /// <summary>Adds <paramref name="count"/> customers with 1 to 6 purchases each over the last two years.</summary>
    public void AddPopulation(int count, string prefix = "c")
    {
        var random = new Random(42);
        for (var c = 0; c < count; c++)
        {
            var user = $"{prefix}{c}";
            var orders = 1 + random.Next(6);
            for (var o = 0; o < orders; o++)
            {
                var value = Math.Round(5 + (random.NextDouble() * 400), 2);
                Track(user, EventTypes.Purchase, Now.AddDays(-random.Next(1, 730)), value, $"{user}-o{o}");
            }
        }
    }

    /// <summary>
    /// The synthetic catalog: 50 rule segments built from ten rule shapes (RFM scores, order totals,
    /// windowed event counts, cart timing, request context, regex over traits and search, email
    /// engagement, recency, declared lists, tenure) with five thresholds each, a few overrides and
    /// exclusions, five small templated variants per segment, and one fallback.
    /// </summary>
    public static string SyntheticCatalog()
    {
        string[] families =
        [
            "value", "transactional", "behavioural", "intent", "contextual",
            "need", "engagement", "lifecycle", "psychographic", "lifecycle",
        ];
        var yaml = new StringBuilder("""
            catalog: { name: bench, fallback: general_audience }
            schema:
              traits:
                first_name: { type: string, pii: true }
                preferred_category: { type: string }
                values: { type: list }
                interests: { type: list }
            segments:

            """);
        for (var k = 0; k < 5; k++)
        {
            for (var shape = 0; shape < families.Length; shape++)
            {
                var id = $"s{shape}_{k}";
                yaml.Append(CultureInfo.InvariantCulture, $"""
                      - id: {id}
                        name: Segment {shape}.{k}
                        type: {families[shape]}
                        rule: {Rule(shape, k)}

                    """);
                if (shape == 0)
                {
                    yaml.Append(CultureInfo.InvariantCulture, $"    overrides: [s7_{k}]\n");
                }

                if (shape == 3)
                {
                    yaml.Append(CultureInfo.InvariantCulture, $"    exclusions: [s4_{k}]\n");
                }

                yaml.Append(Personalization(id));
            }
        }

        yaml.Append("""
              - id: general_audience
                name: General audience
                type: contextual
                fallback: true

            """).Append(Personalization("general_audience"));
        return yaml.ToString();
    }

    private static string Rule(int shape, int k) => shape switch
    {
        0 => $"{{ all: [{{ field: rfm.recency, gte: {5 - k} }}, {{ field: rfm.monetary, gte: {Math.Max(1, 4 - k)} }}] }}",
        1 => $"{{ all: [{{ field: orders.count, gte: {k + 1} }}, {{ field: orders.revenue, gte: {100 * (k + 1)} }}] }}",
        2 => $"{{ all: [{{ field: events.product_view.count, window: {k + 1}d, gte: {k + 2} }}, {{ not: {{ field: events.add_to_cart.count, window: 7d, gte: 1 }} }}] }}",
        3 => $"{{ all: [{{ field: cart.items, gt: 0 }}, {{ field: cart.updated_at, older_than: 1h }}, {{ field: cart.updated_at, within: {k + 2}d }}] }}",
        4 => $"{{ all: [{{ field: context.device, eq: {(k % 2 == 0 ? "mobile" : "desktop")} }}, {{ field: context.country, in: [GB, IE, FR] }}] }}",
        5 => $"{{ any: [{{ field: traits.preferred_category, regex: 'home|decor|interior{k}' }}, {{ field: context.search_query, regex: 'gift|present|xmas{k}' }}] }}",
        6 => $"{{ all: [{{ field: email.opens_of_last_sends, last: 3, gte: {(k % 3) + 1} }}, {{ field: email.last_open_at, within: {10 * (k + 1)}d }}] }}",
        7 => $"{{ all: [{{ field: orders.count, gte: 1 }}, {{ field: orders.last_at, older_than: {30 * (k + 1)}d }}] }}",
        8 => $"{{ any: [{{ field: traits.values, contains: {(k % 2 == 0 ? "sustainability" : "handmade")} }}, {{ field: traits.interests, contains: baking }}] }}",
        _ => $"{{ all: [{{ field: profile.exists, eq: true }}, {{ field: profile.first_seen, within: {7 * (k + 1)}d }}, {{ not: {{ field: orders.count, gte: 1 }} }}] }}",
    };

    private static string Personalization(string id) => $$$"""
            personalization:
              content: { id: {{{id}}}.content.v1, template: "{{ if profile.traits.first_name }}Hello {{ profile.traits.first_name }}. {{ end }}New arrivals picked for you.", fallback: "New arrivals picked for you." }
              offer: { id: {{{id}}}.offer.v1, template: "{{ if profile.orders > 2 }}Free delivery on your next order{{ else }}10% off your first order{{ end }}", fallback: "Free delivery over £50" }
              cta: "Shop now"
              journey: "Browse, then a reminder email after 3 days"
              messaging: "Pretty things for the home"

        """;

    /// <summary>
    /// One realistic shopper: a year of history with six orders, product and page views over many
    /// sessions, a basket left two hours ago, emails sent and opened, and declared traits.
    /// </summary>
    private void AddShopper()
    {
        for (var o = 0; o < 6; o++)
        {
            Track(ShopperId, EventTypes.Purchase, Now.AddDays(-(10 + (55 * o))), 40 + (15 * o), $"so{o}", "home_decor");
        }

        for (var v = 0; v < 40; v++)
        {
            Track(ShopperId, EventTypes.ProductView, Now.AddHours(-(3 + (7 * v))), 0, null, v % 2 == 0 ? "home_decor" : "christmas");
        }

        for (var v = 0; v < 20; v++)
        {
            Track(ShopperId, EventTypes.PageView, Now.AddHours(-(1 + (11 * v))));
        }

        Track(ShopperId, EventTypes.AddToCart, Now.AddHours(-2), 12.5, null, "christmas", quantity: 2);
        for (var e = 0; e < 5; e++)
        {
            Track(ShopperId, EventTypes.EmailSend, Now.AddDays(-(3 + (7 * e))), campaign: $"camp-{e}");
        }

        for (var e = 0; e < 3; e++)
        {
            Track(ShopperId, EventTypes.EmailOpen, Now.AddDays(-(2 + (7 * e))), campaign: $"camp-{e}");
        }

        Ingestion.SetTraits(
            ShopperId,
            new Dictionary<string, object?>
            {
                ["first_name"] = "Alex",
                ["preferred_category"] = "home_decor",
                ["values"] = (IReadOnlyList<string>)["sustainability", "uk_made"],
            },
            "preference-center",
            AttributeLayer.ZeroParty,
            Now.AddDays(-30));
    }

    private int _seq;

    public void Track(string user, string type, DateTimeOffset at, double value = 0, string? orderId = null, string? category = null, string? campaign = null, int quantity = 0)
    {
        var id = ++_seq;
        Ingestion.Track(new BehaviourEvent
        {
            EventId = $"w-{id}",
            Type = type,
            UserId = user,
            Timestamp = at,
            Context = new EventContext("web", "desktop", $"s-{user}-{id / 4}", type == EventTypes.Purchase ? "checkout" : "product"),
            Value = value,
            OrderId = orderId,
            Category = category,
            CampaignId = campaign,
            ProductId = type is EventTypes.ProductView or EventTypes.AddToCart ? $"sku-{id % 50}" : null,
            Lines = quantity > 0 ? [new OrderLine($"sku-{id % 50}", null, category, quantity, value / quantity)] : [],
        });
    }

    public void Dispose() => _services.Dispose();
}
