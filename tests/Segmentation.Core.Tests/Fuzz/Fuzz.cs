using CsCheck;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Tests.Fuzz;

/// <summary>
/// Settings and generators shared by the fuzz and property tests. Iteration counts are small so the
/// suite stays fast in CI; set <c>CsCheck_Iter</c> to run more, and <c>CsCheck_Seed</c> to replay the
/// seed a failing run printed (CsCheck reads both itself).
/// </summary>
public static class Fuzz
{
    /// <summary>The iteration count: <paramref name="ci"/> unless <c>CsCheck_Iter</c> is set.</summary>
    public static long Iter(long ci) =>
        Environment.GetEnvironmentVariable("CsCheck_Iter") is { Length: > 0 } ? Check.Iter : ci;

    public static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Short, long, empty, whitespace, control, unicode and surrogate-broken strings.</summary>
    public static readonly Gen<string> WeirdString = Gen.Frequency(
        (4, Gen.String[Gen.Char.AlphaNumeric, 1, 12]),
        (1, Gen.OneOf("", " ", "\t\n", "\0", "null", "~", "'", "\"", "{{", "}}", "{{ x }}", "../..", "%s%n", "\u202e", "😀", "\ud800", "ß", "İ", "ﬃ")),
        (2, Gen.String[Gen.Char, 0, 40]),
        (1, Gen.Int[60, 3000].Select(n => new string('x', n))),
        (1, Gen.String[Gen.Char['\u0000', '\u001f'], 1, 8]));

    /// <summary>A weird string that is null a quarter of the time.</summary>
    public static readonly Gen<string?> WeirdOptional = Gen.Frequency((1, Gen.Const((string?)null)), (3, WeirdString.Select(s => (string?)s)));

    /// <summary>Amounts: ordinary, zero, negative, huge, tiny, NaN and infinities.</summary>
    public static readonly Gen<double> WeirdAmount = Gen.Frequency(
        (4, Gen.Double[0, 10_000]),
        (1, Gen.OneOf(0d, -0d, -1d, double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.MaxValue, double.MinValue, double.Epsilon, 1e308, 1e-308)),
        (1, Gen.Double));

    /// <summary>Quantities: ordinary, zero, negative and extreme.</summary>
    public static readonly Gen<int> WeirdQuantity = Gen.Frequency((4, Gen.Int[1, 20]), (1, Gen.OneOf(0, -1, int.MaxValue, int.MinValue, 1_000_000_000)), (1, Gen.Int));

    /// <summary>Timestamps around <see cref="Now"/>, in the future, before 2000, and the extremes.</summary>
    public static readonly Gen<DateTimeOffset> WeirdTime = Gen.Frequency(
        (6, Gen.Long[-TimeSpan.TicksPerDay * 800, TimeSpan.TicksPerMinute * 4].Select(t => Now.AddTicks(t))),
        (1, Gen.OneOf(default, DateTimeOffset.MinValue, DateTimeOffset.MaxValue, DateTimeOffset.UnixEpoch, new DateTimeOffset(1999, 12, 31, 23, 59, 59, TimeSpan.Zero), new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero), Now.AddMinutes(6), Now.AddYears(100))),
        (1, Gen.Long[DateTimeOffset.MinValue.UtcTicks, DateTimeOffset.MaxValue.UtcTicks].Select(t => new DateTimeOffset(t, TimeSpan.Zero))),
        (1, Gen.Select(Gen.Long[-TimeSpan.TicksPerDay * 800, TimeSpan.TicksPerMinute * 4], Gen.Int[-14 * 60, 14 * 60]).Select((t, m) => Now.AddTicks(t).ToOffset(TimeSpan.FromMinutes(m)))));

    public static readonly Gen<string> EventType = Gen.Frequency(
        (8, Gen.OneOf([.. EventTypes.BuiltIn])),
        (1, Gen.OneOf("custom.quiz_completed", "custom.a", "custom.x1_y2")),
        (1, WeirdString));

    private static readonly Gen<OrderLine> ValidLine = Gen.Select(Gen.OneOf("sku-1", "sku-2", "sku-3"), Gen.OneOf<string?>(null, "kitchen", "party", "christmas"), Gen.Int[1, 20], Gen.Double[0, 200])
        .Select((p, c, q, u) => new OrderLine(p, null, c, q, Math.Round(u, 2)));

    private static readonly Gen<OrderLine> WeirdLine = Gen.Select(WeirdString, WeirdOptional, WeirdOptional, WeirdQuantity, WeirdAmount)
        .Select((p, n, c, q, u) => new OrderLine(p, n, c, q, u));

    /// <summary>
    /// A well-formed event for profile key "U" (or anonymous "A"), which must never be rejected.
    /// The placeholders are replaced by ids unique to the test case.
    /// </summary>
    public static readonly Gen<BehaviourEvent> ValidEvent =
        Gen.Select(
            Gen.Select(Gen.Int[0, 11].Select(i => $"e{i}"), Gen.OneOf([.. EventTypes.BuiltIn, "custom.quiz_completed"]), Gen.Int[0, 2], Gen.Long[-TimeSpan.TicksPerDay * 700, TimeSpan.TicksPerMinute * 4]),
            Gen.Select(Gen.OneOf("web", "app", "pos"), Gen.OneOf("mobile", "desktop", "tablet"), Gen.Int[0, 3], Gen.OneOf("home", "product", "category", "cart")),
            Gen.Select(Gen.Double[0, 500].Select(v => Math.Round(v, 2)), ValidLine.Array[0, 3], Gen.OneOf<string?>(null, "kitchen", "party", "garden"), Gen.OneOf<string?>(null, "c1", "c2", "c3"), Gen.OneOf<string?>(null, "GB", "FR", "")),
            (ids, ctx, payload) =>
            {
                var (id, type, who, offset) = ids;
                var (source, device, session, page) = ctx;
                var (value, lines, category, campaign, country) = payload;
                return new BehaviourEvent
                {
                    EventId = id,
                    Type = type,
                    UserId = who is 0 or 2 ? "U" : "",
                    AnonymousId = who is 1 or 2 ? "A" : "",
                    Timestamp = Now.AddTicks(offset),
                    Context = new EventContext(source, device, $"s{session}", page, Country: country?.Length > 0 ? country : null),
                    Value = value,
                    OrderId = type is EventTypes.Purchase or EventTypes.Refund ? "o-" + id : null,
                    Lines = lines,
                    Category = category,
                    CampaignId = campaign,
                    ProductId = type is EventTypes.ProductView or EventTypes.AddToCart or EventTypes.RemoveFromCart ? "sku-1" : null,
                };
            });

    /// <summary>One field of an event replaced by a random, often invalid, value.</summary>
    private static readonly Gen<Func<BehaviourEvent, BehaviourEvent>> Mutation = Gen.OneOf<Func<BehaviourEvent, BehaviourEvent>>(
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { EventId = s }),
        EventType.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Type = s }),
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { UserId = s }),
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { AnonymousId = s }),
        Gen.Const<Func<BehaviourEvent, BehaviourEvent>>(e => e with { UserId = "", AnonymousId = "" }),
        WeirdTime.Select<DateTimeOffset, Func<BehaviourEvent, BehaviourEvent>>(t => e => e with { Timestamp = t }),
        WeirdAmount.Select<double, Func<BehaviourEvent, BehaviourEvent>>(v => e => e with { Value = v }),
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Context = e.Context with { Source = s } }),
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Context = e.Context with { Device = s } }),
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Context = e.Context with { SessionId = s } }),
        WeirdString.Select<string, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Context = e.Context with { PageType = s } }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Context = e.Context with { PagePath = s } }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Context = e.Context with { Country = s } }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { OrderId = s }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Category = s }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { CampaignId = s }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { ProductId = s }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { Currency = s }),
        WeirdOptional.Select<string?, Func<BehaviourEvent, BehaviourEvent>>(s => e => e with { SearchQuery = s }),
        WeirdLine.Array[1, 4].Select<OrderLine[], Func<BehaviourEvent, BehaviourEvent>>(l => e => e with { Lines = [.. e.Lines, .. l] }),
        Gen.Int[499, 502].Select<int, Func<BehaviourEvent, BehaviourEvent>>(n => e => e with { Lines = [.. Enumerable.Repeat(new OrderLine("sku", null, null, 1, 1), n)] }),
        Gen.Dictionary(WeirdString, Gen.OneOf<object>(WeirdString.Select(s => (object)s), WeirdAmount.Select(d => (object)d), Gen.Bool.Select(b => (object)b)))[0, 55]
            .Select<Dictionary<string, object>, Func<BehaviourEvent, BehaviourEvent>>(p => e => e with { Properties = p }));

    /// <summary>An event and whether it was mutated (an unmutated event is well-formed).</summary>
    public static readonly Gen<(BehaviourEvent Event, bool Mutated)> Event =
        Gen.Select(ValidEvent, Gen.Frequency((3, Gen.Const(0)), (2, Gen.Int[1, 3])), Mutation.Array[3])
            .Select((e, n, mutations) =>
            {
                for (var i = 0; i < n; i++)
                {
                    e = mutations[i](e);
                }

                return (e, n > 0);
            });

    private static readonly string[] KnownTraits = ["preferred_category", "interests", "values", "shopping_for", "first_name", "email", "vip", "marketing_opt_in", "country", "company_size", "lead_score", "lifecycle_stage", "last_viewed_category"];

    private static readonly Gen<object?> TraitValue = Gen.Frequency(
        (3, WeirdString.Select(s => (object?)s)),
        (2, WeirdAmount.Select(d => (object?)d)),
        (2, Gen.Bool.Select(b => (object?)b)),
        (1, WeirdTime.Select(t => (object?)t)),
        (2, WeirdString.Array[0, 4].Select(a => (object?)a)),
        (1, Gen.Int[99, 102].Select(n => (object?)Enumerable.Repeat("x", n).ToArray())),
        (1, Gen.Const((object?)null)));

    /// <summary>A traits write: names from the default schema (and unknown ones), values of any type, any layer and time.</summary>
    public static readonly Gen<(Dictionary<string, object?> Traits, AttributeLayer Layer, DateTimeOffset? At, string Source)> Traits =
        Gen.Select(
            Gen.Dictionary(Gen.Frequency((6, Gen.OneOf(KnownTraits)), (1, WeirdString)), TraitValue)[0, 5],
            Gen.Frequency((6, Gen.OneOf(AttributeLayer.Derived, AttributeLayer.FirstParty, AttributeLayer.ZeroParty)), (1, Gen.Int.Select(i => (AttributeLayer)i))),
            Gen.Frequency((2, Gen.Const((DateTimeOffset?)null)), (3, WeirdTime.Select(t => (DateTimeOffset?)t))),
            Gen.Frequency((5, Gen.OneOf("crm", "quiz", "enrichment")), (1, WeirdString)));

    /// <summary>A request context with ordinary, unknown and oversized values.</summary>
    public static readonly Gen<RequestContext> Context =
        Gen.Select(
            Gen.Select(Gen.OneOf("web", "email", "ads", "app"), Gen.Frequency((3, Gen.OneOf("mobile", "desktop", "tablet", "")), (1, WeirdString)), Gen.Frequency((3, Gen.OneOf("GB", "FR", "US", "")), (1, WeirdString)), Gen.Frequency((3, Gen.OneOf("en-GB", "")), (1, WeirdString))),
            Gen.Select(WeirdString, Gen.Frequency((3, Gen.OneOf("google", "newsletter", "")), (1, WeirdString)), Gen.Frequency((3, Gen.OneOf("home", "product", "category", "cart", "checkout", "search", "")), (1, WeirdString))),
            Gen.Select(Gen.Frequency((3, Gen.OneOf("/", "/sale", "")), (1, WeirdString)), Gen.Frequency((3, Gen.OneOf("mug", "")), (1, WeirdString))),
            (a, b, c) => new RequestContext(a.Item1, a.Item2, a.Item3, a.Item4, b.Item1, b.Item2, b.Item3, c.Item1, c.Item2));
}
