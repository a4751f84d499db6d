using System.Globalization;
using Scriban.Runtime;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Rendering;

/// <summary>
/// Builds the model templates see: <c>profile</c> (id, traits, orders, revenue, aov, cart_items,
/// days_since_last_order, rfm), <c>segment</c>, <c>context</c>, <c>persona</c> and <c>now</c>.
/// The model holds only script objects and plain values, never .NET objects.
/// </summary>
public static class RenderModel
{
    /// <summary>
    /// Builds the model for one decision: only <paramref name="parts"/> (what the templates to render read,
    /// <see cref="VariantTemplate.Parts"/>); a part that is not built is absent, which no such template reads.
    /// </summary>
    public static ScriptObject Build(EvalContext c, RenderSubject segment, ModelParts parts = ModelParts.All)
    {
        var model = new ScriptObject();
        if ((parts & ModelParts.Profile) != 0)
        {
            model["profile"] = Profile(c);
        }

        if ((parts & ModelParts.Segment) != 0)
        {
            model["segment"] = new ScriptObject
            {
                ["id"] = segment.Id,
                ["name"] = segment.Name,
                ["type"] = segment.Type,
            };
        }

        if ((parts & ModelParts.Context) != 0)
        {
            var context = new ScriptObject();
            foreach (var (field, name) in RequestContext.Fields)
            {
                var value = c.Request.Get(field);
                context[name] = value.Length == 0 ? null : value;
            }

            model["context"] = context;
        }

        if ((parts & ModelParts.Persona) != 0)
        {
            model["persona"] = segment.Persona is { } persona
                ? new ScriptObject
                {
                    ["id"] = persona.Id,
                    ["name"] = persona.Name,
                    ["tone"] = persona.Tone,
                    ["messaging"] = persona.Messaging,
                    ["triggers"] = new ScriptArray(persona.Triggers),
                    ["objections"] = new ScriptArray(persona.Objections),
                }
                : null;
        }

        if ((parts & ModelParts.Now) != 0)
        {
            model["now"] = new DateTime(c.NowTicks, DateTimeKind.Utc).ToString("O", CultureInfo.InvariantCulture);
        }

        return model;
    }

    private static ScriptObject Profile(EvalContext c)
    {
        var p = c.Profile;
        var traits = new ScriptObject();
        if (p is not null)
        {
            foreach (var (name, attribute) in p.Attributes)
            {
                traits[name] = attribute.Value switch
                {
                    DateTimeOffset t => t.UtcDateTime,
                    IReadOnlyList<string> l => new ScriptArray(l),
                    var v => v,
                };
            }
        }

        var rfm = new ScriptObject
        {
            ["recency"] = c.Rfm.Recency(p),
            ["frequency"] = c.Rfm.Frequency(p),
            ["monetary"] = c.Rfm.Monetary(p),
        };
        return new ScriptObject
        {
            ["id"] = p?.UserId,
            ["traits"] = traits,
            ["orders"] = p?.Orders ?? 0,
            ["revenue"] = Math.Round(p?.Revenue ?? 0, 2),
            ["aov"] = Math.Round(p?.AverageOrderValue ?? 0, 2),
            ["cart_items"] = p?.CartItems ?? 0,
            ["days_since_last_order"] = DaysSinceLastOrder(c),
            ["rfm"] = rfm,
        };
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
