using System.Globalization;
using Scriban.Runtime;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;

namespace Segmentation.Core.Rendering;

/// <summary>
/// The model templates see: <c>profile</c> (id, traits, orders, revenue, aov, cart_items,
/// days_since_last_order, rfm, and for products recently_viewed, cart_products, last_purchase, top_categories,
/// top_products, related), <c>segment</c> (id, name, type), <c>context</c> (the request context fields),
/// <c>persona</c> (id, name, tone, messaging, triggers, objections) and <c>now</c>. It holds only script
/// objects and plain values, never .NET objects, and templates cannot change it.
/// </summary>
/// <remarks>
/// Every value is read from the decision's inputs when a template reads it, so a decision whose templates
/// read two traits costs two lookups, not a copy of the profile: one model (with its nested objects) per
/// thread is bound to a decision's inputs by <see cref="Rent"/> and cleared by <see cref="Return"/>, which
/// also drops the references to personal data. A render that reads the day count since the last order
/// narrows the decision's validity to the next day boundary; one that does not leaves it alone.
/// </remarks>
public sealed class RenderModel : ComputedScriptObject
{
    private static readonly string[] Roots = ["profile", "segment", "context", "persona", "now"];

    /// <summary>What a template may read under each model root (besides <c>profile.traits.*</c> and <c>context.*</c>), for checks at load.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Members = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
    {
        ["profile"] = ProfileObject.Names,
        ["segment"] = SubjectObject.Names,
        ["persona"] = PersonaObject.Names,
        ["profile.rfm"] = RfmObject.Names,
    };

    [ThreadStatic]
    private static RenderModel? t_free;

    private readonly ProfileObject _profile = new();
    private readonly SubjectObject _segment = new();
    private readonly ContextObject _context = new();
    private readonly PersonaObject _persona = new();
    private EvalContext? _inputs;
    private RenderSubject? _subject;

    private RenderModel()
    {
    }

    /// <summary>
    /// A model of <paramref name="inputs"/> (profile, request context, time, population model) rendering
    /// <paramref name="subject"/>; give it back with <see cref="Return"/> when the decision's variants are rendered.
    /// <paramref name="scoring"/> is the catalog's: with its <c>affinity_half_life</c> the first of
    /// <c>profile.top_categories</c> is the rules' <c>affinity.top_category</c>, and the derived traits
    /// (<c>profile.traits.lead_score</c>, <c>lifecycle_stage</c>, ...) are computed at the decision's time as rules
    /// compute them, unless a declared or observed value of the name wins.
    /// </summary>
    public static RenderModel Rent(EvalContext inputs, RenderSubject subject, IRelatedProducts? related = null, ScoringSettings? scoring = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(subject);
        var model = t_free ?? new RenderModel();
        t_free = null; // a nested rent on this thread gets a model of its own
        model.Bind(inputs, subject);
        model._profile.Related = related;
        model._profile.Scoring = scoring ?? ScoringSettings.Default;
        return model;
    }

    /// <summary>Unbinds the model from the decision's inputs and keeps it for this thread's next decision.</summary>
    public void Return()
    {
        Bind(null, null);
        t_free = this;
    }

    /// <inheritdoc />
    public override IEnumerable<string> GetMembers() => _inputs is null ? [] : Roots;

    /// <inheritdoc />
    public override bool TryGet(string member, out object? value)
    {
        if (_inputs is not { } inputs || _subject is not { } subject)
        {
            value = null;
            return false; // returned: nothing to read
        }

        switch (member)
        {
            case "profile":
                value = _profile;
                return true;
            case "segment":
                value = _segment;
                return true;
            case "context":
                value = _context;
                return true;
            case "persona":
                value = subject.Persona is null ? null : _persona;
                return true;
            case "now":
                value = new DateTime(inputs.NowTicks, DateTimeKind.Utc).ToString("O", CultureInfo.InvariantCulture);
                return true;
            default:
                value = null;
                return false;
        }
    }

    private void Bind(EvalContext? inputs, RenderSubject? subject)
    {
        _inputs = inputs;
        _subject = subject;
        _profile.Bind(inputs);
        _segment.Subject = subject;
        _context.Request = inputs?.Request;
        _persona.Persona = subject?.Persona;
    }

    // Strings of a catalog list as a fresh script array: templates may change their copy, never the catalog.
    private static ScriptArray Copy(IReadOnlyList<string> items) => new(items);

    private sealed class ProfileObject : ComputedScriptObject
    {
        internal static readonly string[] Names =
        [
            "id", "traits", "orders", "revenue", "aov", "cart_items", "days_since_last_order", "rfm",
            "recently_viewed", "cart_products", "last_purchase", "top_categories", "top_products", "related",
        ];

        /// <summary>Where <c>related</c> comes from (none: only popular products are unknown, the list is empty).</summary>
        public IRelatedProducts? Related { get; set; }

        /// <summary>The catalog's scoring: the half-life of the affinities <c>top_categories</c> and <c>top_products</c> rank by, and how derived traits are computed.</summary>
        public ScoringSettings Scoring
        {
            get => _traits.Scoring;
            set => _traits.Scoring = value;
        }

        private TimeSpan AffinityHalfLife => Scoring.AffinityHalfLife;

        private readonly TraitsObject _traits = new();
        private readonly RfmObject _rfm = new();
        private EvalContext? _inputs;

        public void Bind(EvalContext? inputs)
        {
            _inputs = inputs;
            _traits.Inputs = inputs;
            _rfm.Inputs = inputs;
        }

        public override IEnumerable<string> GetMembers() => _inputs is null ? [] : Names;

        public override bool TryGet(string member, out object? value)
        {
            var p = _inputs?.Profile;
            value = member switch
            {
                "id" => p?.UserId,
                "traits" => _traits,
                "orders" => p?.Orders ?? 0,
                "revenue" => Math.Round(p?.Revenue ?? 0, 2),
                "aov" => Math.Round(p?.AverageOrderValue ?? 0, 2),
                "cart_items" => p?.CartItems ?? 0,
                "days_since_last_order" => _inputs is { } c ? DaysSinceLastOrder(c) : null,
                "rfm" => _rfm,
                "recently_viewed" => new ScriptArray(ProductSignals.RecentlyViewed(p)),
                "cart_products" => new ScriptArray(ProductSignals.CartProducts(p)),
                "last_purchase" => _inputs is { } lc ? LastPurchase(lc) : null,
                "top_categories" => _inputs is { } tc ? Top(tc, byProduct: false) : null,
                "top_products" => _inputs is { } tp ? Top(tp, byProduct: true) : null,
                "related" => _inputs is { } rc ? RelatedTo(rc) : null,
                _ => null,
            };
            return _inputs is not null && Array.IndexOf(Names, member) >= 0;
        }

        // { product, category, value, days_ago } of the last order; its day count narrows the validity to the next day boundary.
        private static ScriptObject? LastPurchase(EvalContext c)
        {
            if (ProductSignals.Last(c.Profile) is not { } last || last.Ticks > c.NowTicks)
            {
                return null;
            }

            var days = (c.NowTicks - last.Ticks) / TimeSpan.TicksPerDay;
            c.Until(last.Ticks + ((days + 1) * TimeSpan.TicksPerDay));
            return new ScriptObject { ["product"] = last.ProductId, ["category"] = last.Category, ["value"] = Math.Round(last.Value, 2), ["days_ago"] = days };
        }

        // Up to five products related to what the user has in the cart, viewed lately and bought last, never one they bought.
        private ScriptArray RelatedTo(EvalContext c)
        {
            if (Related is null)
            {
                return [];
            }

            var seeds = ProductSignals.CartProducts(c.Profile);
            seeds.AddRange(ProductSignals.RecentlyViewed(c.Profile, 5).Where(p => !seeds.Contains(p)));
            if (ProductSignals.Last(c.Profile)?.ProductId is { } bought && !seeds.Contains(bought))
            {
                seeds.Add(bought);
            }

            var related = Related.Related(seeds, ProductSignals.Purchased(c.Profile), 5, c.NowTicks, out var validUntil);
            c.Until(validUntil); // the relations are refreshed then
            return new ScriptArray(related);
        }

        // The five of highest affinity: the list changes when the oldest interaction read leaves the window, which narrows the validity.
        private ScriptArray Top(EvalContext c, bool byProduct)
        {
            var top = DerivedScores.TopAffinities(c.Profile, c.NowTicks, AffinityHalfLife, byProduct, max: 5, out var changesAt);
            c.Until(changesAt);
            return new ScriptArray(top);
        }

        // Rendered text that shows a day count changes at the next day boundary: narrow the validity.
        private static long? DaysSinceLastOrder(EvalContext c)
        {
            if (c.Profile is not { Orders: > 0 } p || p.LastPurchaseTicks > c.NowTicks)
            {
                return null;
            }

            var days = (c.NowTicks - p.LastPurchaseTicks) / TimeSpan.TicksPerDay;
            c.Until(p.LastPurchaseTicks + ((days + 1) * TimeSpan.TicksPerDay));
            return days;
        }
    }

    private sealed class TraitsObject : ComputedScriptObject
    {
        public EvalContext? Inputs { get; set; }

        public ScoringSettings Scoring { get; set; } = ScoringSettings.Default;

        public override IEnumerable<string> GetMembers() => Inputs?.Profile is { } p ? p.Attributes.Keys : [];

        public override bool TryGet(string member, out object? value)
        {
            if (Inputs is not { Profile: { } p } c)
            {
                value = null;
                return false;
            }

            var stored = p.Attributes.TryGetValue(member, out var attribute);
            if (DerivedScores.Traits.ContainsKey(member) && (!stored || attribute!.Layer <= AttributeLayer.Derived))
            {
                // As rules read it: computed at the decision's time (the stored copy is as of the profile's last write:
                // a lead score whose signals left their window since, a buyer who has lapsed since), narrowing validity.
                value = DerivedScores.Compute(member, c, Scoring);
                return value is not null || stored;
            }

            if (stored)
            {
                value = attribute!.Value switch
                {
                    DateTimeOffset t => t.UtcDateTime,
                    IReadOnlyList<string> l => Copy(l),
                    var v => v,
                };
                return true;
            }

            value = null;
            return false;
        }
    }

    private sealed class RfmObject : ComputedScriptObject
    {
        internal static readonly string[] Names = ["recency", "frequency", "monetary"];

        public EvalContext? Inputs { get; set; }

        public override IEnumerable<string> GetMembers() => Inputs is null ? [] : Names;

        public override bool TryGet(string member, out object? value)
        {
            value = null;
            if (Inputs is not { } c)
            {
                return false;
            }

            switch (member)
            {
                case "recency":
                    value = c.Rfm.Recency(c.Profile);
                    return true;
                case "frequency":
                    value = c.Rfm.Frequency(c.Profile);
                    return true;
                case "monetary":
                    value = c.Rfm.Monetary(c.Profile);
                    return true;
                default:
                    return false;
            }
        }
    }

    private sealed class ContextObject : ComputedScriptObject
    {
        public RequestContext? Request { get; set; }

        public override IEnumerable<string> GetMembers() => Request is null ? [] : RequestContext.Fields.Select(f => f.Name);

        public override bool TryGet(string member, out object? value)
        {
            value = null;
            if (Request is not { } request)
            {
                return false;
            }

            foreach (var (field, name) in RequestContext.Fields)
            {
                if (name == member)
                {
                    var text = request.Get(field);
                    value = text.Length == 0 ? null : text;
                    return true;
                }
            }

            return false;
        }
    }

    private sealed class SubjectObject : ComputedScriptObject
    {
        internal static readonly string[] Names = ["id", "name", "type"];

        public RenderSubject? Subject { get; set; }

        public override IEnumerable<string> GetMembers() => Subject is null ? [] : Names;

        public override bool TryGet(string member, out object? value)
        {
            value = Subject is not { } s
                ? null
                : member switch
                {
                    "id" => s.Id,
                    "name" => s.Name,
                    "type" => s.Type,
                    _ => null,
                };
            return value is not null;
        }
    }

    private sealed class PersonaObject : ComputedScriptObject
    {
        internal static readonly string[] Names = ["id", "name", "tone", "messaging", "triggers", "objections"];

        public Persona? Persona { get; set; }

        public override IEnumerable<string> GetMembers() => Persona is null ? [] : Names;

        public override bool TryGet(string member, out object? value)
        {
            value = Persona is not { } p
                ? null
                : member switch
                {
                    "id" => p.Id,
                    "name" => p.Name,
                    "tone" => p.Tone,
                    "messaging" => p.Messaging,
                    "triggers" => Copy(p.Triggers),
                    "objections" => Copy(p.Objections),
                    _ => null,
                };
            return value is not null;
        }
    }
}
