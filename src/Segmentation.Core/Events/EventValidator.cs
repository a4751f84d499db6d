using Segmentation.Core.Validation;

namespace Segmentation.Core.Events;

/// <summary>
/// Validates behavioural events before they reach a profile. Field paths in violations are
/// those of the public API (<c>event.context.session_id</c>).
/// </summary>
public static class EventValidator
{
    /// <summary>How far in the future an event timestamp may be (clock skew allowance).</summary>
    public static readonly TimeSpan MaxFutureSkew = TimeSpan.FromMinutes(5);

    /// <summary>Maximum number of order lines per event.</summary>
    public const int MaxLines = 500;

    /// <summary>Maximum number of custom properties per event.</summary>
    public const int MaxProperties = 50;

    /// <summary>
    /// Largest amount accepted for a value, a unit price or an event's line total, so that sums over
    /// a profile's events (revenue, windowed sums) stay finite.
    /// </summary>
    public const double MaxAmount = 1e12;

    /// <summary>Largest quantity of one order line, so that quantities and cart counts cannot overflow.</summary>
    public const int MaxQuantity = 1_000_000;

    /// <summary>Throws <see cref="ValidationException"/> listing every problem with <paramref name="e"/>.</summary>
    public static void Validate(BehaviourEvent e, DateTimeOffset now, string prefix = "event")
    {
        var v = new ViolationList(prefix);
        v.Required("event_id", e.EventId, 128);
        if (string.IsNullOrEmpty(e.Type))
        {
            v.Add("type", "is required");
        }
        else if (!EventTypes.IsKnown(e.Type))
        {
            v.Add("type", $"unknown event type '{Truncate(e.Type)}'; use a built-in type or a custom type named 'custom.<lower_snake_name>'");
        }

        if (e.UserId.Length == 0 && e.AnonymousId.Length == 0)
        {
            v.Add("user_id", "user_id or anonymous_id is required");
        }

        v.OptionalId("user_id", e.UserId);
        v.OptionalId("anonymous_id", e.AnonymousId);

        if (e.Timestamp == default)
        {
            v.Add("timestamp", "is required");
        }
        else if (e.Timestamp > now + MaxFutureSkew)
        {
            v.Add("timestamp", $"is {(e.Timestamp - now).TotalMinutes:0} minutes in the future; at most {MaxFutureSkew.TotalMinutes:0} minutes are allowed");
        }
        else if (e.Timestamp.Year < 2000)
        {
            v.Add("timestamp", "must be after 2000-01-01");
        }

        v.Required("context.source", e.Context.Source, 64);
        v.Required("context.device", e.Context.Device, 64);
        if (EventTypes.Outcomes.Contains(e.Type) || e.Type.StartsWith("email_", StringComparison.Ordinal))
        {
            v.OptionalId("context.session_id", e.Context.SessionId); // outcomes and email events happen outside a web session
        }
        else
        {
            v.RequiredId("context.session_id", e.Context.SessionId);
        }
        v.Required("context.page_type", e.Context.PageType, 64);
        v.MaxLength("context.page_path", e.Context.PagePath, 2048);
        v.MaxLength("context.country", e.Context.Country, 64);

        CheckAmount(v, "value", e.Value);
        v.MaxLength("currency", e.Currency, 8);
        v.MaxLength("order_id", e.OrderId, 128);
        v.MaxLength("product_id", e.ProductId, 128);
        v.MaxLength("category", e.Category, 128);
        v.MaxLength("campaign_id", e.CampaignId, 128);
        v.MaxLength("search_query", e.SearchQuery, 512);

        if (e.Lines.Count > MaxLines)
        {
            v.Add("lines", $"at most {MaxLines} lines are allowed (got {e.Lines.Count})");
        }
        else
        {
            var total = 0d;
            for (var i = 0; i < e.Lines.Count; i++)
            {
                var line = e.Lines[i];
                if (string.IsNullOrWhiteSpace(line.ProductId) || line.ProductId.Length > 128)
                {
                    v.Required($"lines[{i}].product_id", line.ProductId, 128);
                }

                if (line.Name?.Length > 512)
                {
                    v.MaxLength($"lines[{i}].name", line.Name, 512);
                }

                if (line.Category?.Length > 128)
                {
                    v.MaxLength($"lines[{i}].category", line.Category, 128);
                }

                if (line.Quantity is < 1 or > MaxQuantity)
                {
                    v.Add($"lines[{i}].quantity", $"must be between 1 and {MaxQuantity}");
                }

                if (!double.IsFinite(line.UnitPrice) || line.UnitPrice is < 0 or > MaxAmount)
                {
                    CheckAmount(v, $"lines[{i}].unit_price", line.UnitPrice);
                }
                else if (line.Quantity is >= 1 and <= MaxQuantity)
                {
                    total += line.Quantity * line.UnitPrice;
                }
            }

            if (total > MaxAmount)
            {
                v.Add("lines", $"the lines' total (quantity × unit_price) must be at most {MaxAmount:0}");
            }
        }

        if (e.Properties.Count > MaxProperties)
        {
            v.Add("properties", $"at most {MaxProperties} properties are allowed (got {e.Properties.Count})");
        }
        else
        {
            foreach (var (name, value) in e.Properties)
            {
                if (name.Length is 0 or > 64)
                {
                    v.Add("properties", $"property names must be 1 to 64 characters ('{Truncate(name)}')");
                }
                else if (value is double d && !double.IsFinite(d))
                {
                    v.Add($"properties[{name}]", "must be a finite number");
                }
                else if (value is string s && s.Length > 1024)
                {
                    v.Add($"properties[{name}]", "must be at most 1024 characters");
                }
                else if (value is IReadOnlyList<string> list && (list.Count > InputLimits.MaxListValues || list.Any(x => x.Length > InputLimits.MaxListValueLength)))
                {
                    v.Add($"properties[{name}]", $"a list holds at most {InputLimits.MaxListValues} values of at most {InputLimits.MaxListValueLength} characters");
                }
                else if (value is InvalidPropertyValue invalid)
                {
                    v.Add($"properties[{name}]", invalid.Reason);
                }
            }
        }

        if (e.Type is EventTypes.Purchase or EventTypes.Refund && string.IsNullOrEmpty(e.OrderId))
        {
            v.Add("order_id", $"is required for {e.Type} events");
        }

        v.ThrowIfAny();
    }

    private static void CheckAmount(ViolationList v, string field, double value)
    {
        if (!double.IsFinite(value))
        {
            v.Add(field, "must be a finite number");
        }
        else if (value < 0)
        {
            v.Add(field, "must not be negative");
        }
        else if (value > MaxAmount)
        {
            v.Add(field, $"must be at most {MaxAmount:0}");
        }
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "…";
}
