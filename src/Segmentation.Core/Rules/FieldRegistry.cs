using System.Collections.Frozen;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Rules;

/// <summary>
/// Resolves field names used in rules to compiled, typed accessors. The catalog type-checks every
/// rule against these types at load.
/// </summary>
public sealed class FieldRegistry
{
    private const long Day = TimeSpan.TicksPerDay;

    private static readonly FrozenDictionary<string, FieldAccessor> Fixed = BuildFixed();

    private readonly IReadOnlyDictionary<string, TraitDefinition> _traits;
    private readonly IDerivedFields? _derived;

    /// <summary>Creates a registry for a catalog whose schema declares <paramref name="traits"/>, with the fields the scoring layer derives.</summary>
    public FieldRegistry(IReadOnlyDictionary<string, TraitDefinition> traits, IDerivedFields? derived = null)
    {
        _traits = traits;
        _derived = derived;
    }

    /// <summary>
    /// The data layer a field's value comes from: derived for what the service infers (derived traits, RFM,
    /// affinities, cart abandonment), first party for what it observes (events, orders, email engagement, and
    /// traits observed from events or declared with <c>observed_by</c>), zero party for other declared traits;
    /// null for request context fields, which are sent with each request and never stored.
    /// </summary>
    public AttributeLayer? LayerOf(string field)
    {
        ArgumentNullException.ThrowIfNull(field);
        var dot = field.IndexOf('.', StringComparison.Ordinal);
        var family = dot < 0 ? field : field[..dot];
        var name = dot < 0 ? "" : field[(dot + 1)..];
        return family switch
        {
            "context" => null,
            "traits" when _derived?.Traits.ContainsKey(name) == true => AttributeLayer.Derived,
            "traits" when ObservedAttributes.All.Contains(name) || (_traits.TryGetValue(name, out var t) && t.ObservedBy is not null) => AttributeLayer.FirstParty,
            "traits" => AttributeLayer.ZeroParty,
            "rfm" or "affinity" => AttributeLayer.Derived,
            _ when !Fixed.ContainsKey(field) && _derived?.Field(field) is not null => AttributeLayer.Derived,
            _ => AttributeLayer.FirstParty,
        };
    }

    /// <summary>Names of the fixed (non-parameterised) fields, for documentation and errors.</summary>
    public static IEnumerable<string> FixedNames => Fixed.Keys.Order(StringComparer.Ordinal);

    /// <summary>
    /// Resolves <paramref name="name"/> with its optional parameters. Returns null and sets
    /// <paramref name="error"/> when the name is unknown or a parameter does not apply.
    /// </summary>
    public FieldAccessor? Resolve(string name, TimeSpan? window, int? last, out string? error, out ContextField? contextField) =>
        Resolve(name, window, last, null, out error, out contextField);

    /// <summary>
    /// Resolves <paramref name="name"/>; <paramref name="resolve"/> <c>recent</c> asks that, when a declared trait
    /// and the behavioural field that answers the same question disagree, the more recent signal wins.
    /// </summary>
    public FieldAccessor? Resolve(string name, TimeSpan? window, int? last, string? resolve, out string? error, out ContextField? contextField)
    {
        error = null;
        contextField = null;
        var parts = name.Split('.');
        if (parts is ["events", "custom", var custom, var measure])
        {
            parts = ["events", EventTypes.CustomPrefix + custom, measure]; // a custom type's own dot: events.custom.quiz_completed.count
        }

        if (window is not null && !(parts.Length == 3 && parts[0] == "events" && parts[2] is "count" or "sum"))
        {
            error = $"'window' applies only to events.<type>.count and events.<type>.sum, not to '{name}'";
            return null;
        }

        if (last is not null && name is not ("email.opens_of_last_sends" or "email.clicks_of_last_sends"))
        {
            error = $"'last' applies only to email.opens_of_last_sends and email.clicks_of_last_sends, not to '{name}'";
            return null;
        }

        if (resolve is not null)
        {
            return RecentResolution(name, resolve, out error);
        }

        if (Fixed.TryGetValue(name, out var fixedField))
        {
            return fixedField;
        }

        if (_derived?.Field(name) is { } derivedField)
        {
            return derivedField;
        }

        switch (parts[0])
        {
            case "context" when parts.Length == 2:
                foreach (var (field, fieldName) in RequestContext.Fields)
                {
                    if (fieldName == parts[1])
                    {
                        contextField = field;
                        return FieldAccessor.ForContext(name, field);
                    }
                }

                error = $"unknown context field '{parts[1]}'{Suggestions.DidYouMean(parts[1], RequestContext.Fields.Select(x => x.Name))}; known: {string.Join(", ", RequestContext.Fields.Select(x => x.Name))}";
                return null;

            case "traits" when parts.Length == 2:
                if (!_traits.TryGetValue(parts[1], out var trait))
                {
                    error = $"unknown trait '{parts[1]}'{Suggestions.DidYouMean(parts[1], _traits.Keys)}; declare it under schema.traits";
                    return null;
                }

                return _derived is { } derived && derived.Traits.ContainsKey(trait.Name) ? DerivedTrait(name, trait, derived) : FieldAccessor.ForDeclaredTrait(name, trait);

            case "events" when parts.Length == 3:
                if (!EventTypes.IsKnown(parts[1]))
                {
                    error = $"unknown event type '{parts[1]}'{Suggestions.DidYouMean(parts[1], EventTypes.BuiltIn)}";
                    return null;
                }

                return EventField(name, parts[1], parts[2], window, out error);

            case "email" when parts.Length == 2 && parts[1] is "opens_of_last_sends" or "clicks_of_last_sends":
                var n = last ?? 3;
                if (n is < 1 or > 100)
                {
                    error = "'last' must be between 1 and 100";
                    return null;
                }

                var clicks = parts[1] == "clicks_of_last_sends";
                return FieldAccessor.ForNumber($"{name}[last {n}]", c => EngagedOfLastSends(c, n, clicks));
        }

        error = $"unknown field '{name}'{Suggestions.DidYouMean(name, Fixed.Keys.Concat(_traits.Keys.Select(t => "traits." + t)).Concat(RequestContext.Fields.Select(f => "context." + f.Name)))}";
        return null;
    }

    private static FieldAccessor? EventField(string name, string type, string measure, TimeSpan? window, out string? error)
    {
        error = null;
        type = string.Intern(type); // one instance per type name: EvalContext.Series remembers lookups by reference
        var w = window?.Ticks ?? long.MaxValue;
        var label = window is null ? name : $"{name}[{FormatWindow(window.Value)}]";
        switch (measure)
        {
            case "count":
                return FieldAccessor.ForNumber(label, c =>
                {
                    if (c.Profile is null)
                    {
                        return 0;
                    }

                    var n = c.Series(type).CountInWindow(c.NowTicks, w, out var changes);
                    c.Until(changes);
                    return n;
                });
            case "sum":
                return FieldAccessor.ForNumber(label, c =>
                {
                    if (c.Profile is null)
                    {
                        return 0;
                    }

                    var s = c.Series(type).SumInWindow(c.NowTicks, w, out var changes);
                    c.Until(changes);
                    return s;
                });
            case "last_at":
                return FieldAccessor.ForTime(label, c =>
                {
                    if (c.Profile is null)
                    {
                        return long.MinValue;
                    }

                    var t = c.Series(type).LastAtOrBefore(c.NowTicks, out var changes);
                    c.Until(changes);
                    return t;
                });
            case "first_at":
                return FieldAccessor.ForTime(label, c =>
                {
                    if (c.Profile is null)
                    {
                        return long.MinValue;
                    }

                    var t = c.Series(type).FirstAtOrBefore(c.NowTicks, out var changes);
                    c.Until(changes);
                    return t;
                });
            default:
                error = $"unknown event measure '{measure}'; use count, sum, last_at or first_at";
                return null;
        }
    }

    // A derived trait: a declared or observed value of the same name wins; otherwise it is computed at evaluation time.
    private static FieldAccessor DerivedTrait(string name, TraitDefinition trait, IDerivedFields derived)
    {
        var key = trait.Name;
        object? Read(EvalContext c) =>
            c.Profile is { } p && p.Attributes.TryGetValue(key, out var a) && a.Layer > AttributeLayer.Derived
                ? a.Value
                : derived.Compute(key, c);
        return (trait.Type == FieldType.Number
            ? FieldAccessor.ForNumber(name, c => Read(c) is double d ? d : double.NaN)
            : FieldAccessor.ForText(name, c => Read(c) as string)).WalkingEvents();
    }

    // When recent behaviour and an older declared value disagree, the more recent signal wins.
    private FieldAccessor? RecentResolution(string name, string resolve, out string? error)
    {
        error = null;
        var parts = name.Split('.');
        if (resolve != "recent")
        {
            error = $"'resolve' must be 'recent' (got '{resolve}')";
            return null;
        }

        if (parts.Length != 2 || parts[0] != "traits" || !_traits.TryGetValue(parts[1], out var trait) || trait.ObservedBy is not { } observedBy || _derived is not { } derived)
        {
            error = $"'resolve: recent' applies to traits declared with 'observed_by' in the schema, not to '{name}'";
            return null;
        }

        var key = trait.Name;
        return FieldAccessor.ForText($"{name}[recent]", c =>
        {
            ProfileAttribute declared = default;
            var hasDeclared = c.Profile is { } p && p.Attributes.TryGetValue(key, out declared);
            var observed = derived.Observed(observedBy, c);
            // The stored time first: the last observation of an observed attribute (later, never earlier) reads the events.
            if (observed.Value is not null && (!hasDeclared || (observed.LastTicks > declared.UpdatedAt.UtcTicks && observed.LastTicks > c.Profile!.LastObserved(declared).UpdatedAt.UtcTicks)))
            {
                return observed.Value;
            }

            return hasDeclared ? declared.Value as string : null;
        }).WalkingEvents(); // the observed value reads the events
    }


    private static double EngagedOfLastSends(EvalContext c, int last, bool clicks)
    {
        var p = c.Profile;
        if (p is null)
        {
            return 0;
        }

        var engaged = clicks ? p.ClickedCampaigns : p.OpenedCampaigns;
        var seen = 0;
        var hits = 0;
        var sends = p.EmailSends;
        for (var i = sends.Length - 1; i >= 0 && seen < last; i--)
        {
            var send = sends[i];
            if (send.Ticks > c.NowTicks)
            {
                c.Until(send.Ticks);
                continue;
            }

            seen++;
            if (engaged.Contains(send.CampaignId))
            {
                hits++;
            }
        }

        return hits;
    }

    private static string FormatWindow(TimeSpan w) =>
        w.Ticks % Day == 0 ? $"{w.Ticks / Day}d" : w.Ticks % TimeSpan.TicksPerHour == 0 ? $"{(long)w.TotalHours}h" : $"{(long)w.TotalMinutes}m";

    private static FrozenDictionary<string, FieldAccessor> BuildFixed()
    {
        var fields = new[]
        {
            FieldAccessor.ForFlag("profile.exists", c => c.Profile is null || c.Profile.TotalEvents + c.Profile.Attributes.Count == 0 ? 0 : 1),
            FieldAccessor.ForTime("profile.first_seen", c => c.Profile?.FirstSeenTicks ?? long.MinValue),
            FieldAccessor.ForTime("profile.last_seen", LastSeen),
            FieldAccessor.ForNumber("profile.sessions", c => c.Profile?.Sessions ?? 0),
            FieldAccessor.ForNumber("profile.events", c => c.Profile?.TotalEvents ?? 0),
            FieldAccessor.ForNumber("profile.days_since_last_seen", c => DaysSince(c, LastSeen(c))),
            FieldAccessor.ForNumber("email.days_since_last_open", c =>
            {
                if (c.Profile is null)
                {
                    return double.NaN;
                }

                var t = c.Series(EventTypes.EmailOpen).LastAtOrBefore(c.NowTicks, out var changes);
                c.Until(changes);
                return DaysSince(c, t);
            }),
            FieldAccessor.ForNumber("orders.count", c => c.Profile?.Orders ?? 0),
            FieldAccessor.ForNumber("orders.revenue", c => c.Profile?.Revenue ?? 0),
            FieldAccessor.ForNumber("orders.aov", c => c.Profile is { Orders: > 0 } p ? p.AverageOrderValue : double.NaN),
            FieldAccessor.ForTime("orders.first_at", c => c.Profile?.FirstPurchaseTicks ?? long.MinValue),
            FieldAccessor.ForTime("orders.last_at", c => c.Profile?.LastPurchaseTicks ?? long.MinValue),
            FieldAccessor.ForNumber("orders.days_since_last", DaysSinceLastOrder),
            FieldAccessor.ForNumber("cart.items", c => c.Profile?.CartItems ?? 0),
            FieldAccessor.ForTime("cart.updated_at", c => c.Profile?.CartUpdatedTicks ?? long.MinValue),
            FieldAccessor.ForNumber("rfm.recency", c => c.Rfm.Recency(c.Profile)),
            FieldAccessor.ForNumber("rfm.frequency", c => c.Rfm.Frequency(c.Profile)),
            FieldAccessor.ForNumber("rfm.monetary", c => c.Rfm.Monetary(c.Profile)),
            FieldAccessor.ForTime("email.last_open_at", c =>
            {
                if (c.Profile is null)
                {
                    return long.MinValue;
                }

                var t = c.Series(EventTypes.EmailOpen).LastAtOrBefore(c.NowTicks, out var changes);
                c.Until(changes);
                return t;
            }),
        };
        return fields.ToFrozenDictionary(f => f.Name, StringComparer.Ordinal);
    }

    // When the user was last seen: their own latest event at or before now, not the service's sends or impressions (an
    // email sent to a user who never comes back is no sign of them). It changes when an own event dated ahead comes due.
    private static long LastSeen(EvalContext c)
    {
        if (c.Profile is not { TotalEvents: > 0 } p)
        {
            return long.MinValue;
        }

        var (last, next) = p.OwnEventTicks(c.NowTicks);
        c.Until(next);
        return last;
    }

    private static double DaysSince(EvalContext c, long ticks)
    {
        if (ticks == long.MinValue || ticks > c.NowTicks)
        {
            return double.NaN;
        }

        var days = (c.NowTicks - ticks) / Day;
        c.Until(ticks + ((days + 1) * Day));
        return days;
    }

    private static double DaysSinceLastOrder(EvalContext c)
    {
        if (c.Profile is not { Orders: > 0 } p || p.LastPurchaseTicks > c.NowTicks)
        {
            return double.NaN;
        }

        var days = (c.NowTicks - p.LastPurchaseTicks) / Day;
        c.Until(p.LastPurchaseTicks + ((days + 1) * Day));
        return days;
    }
}
