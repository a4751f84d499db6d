namespace Segmentation.Core.Requests;

/// <summary>Request context fields that rules and templates can read as <c>context.&lt;name&gt;</c>.</summary>
public enum ContextField
{
    /// <summary>Channel: web, email, ads or app.</summary>
    Channel,
    /// <summary>Device class, e.g. mobile.</summary>
    Device,
    /// <summary>ISO country code.</summary>
    Country,
    /// <summary>BCP 47 locale.</summary>
    Locale,
    /// <summary>Referring URL or host.</summary>
    Referrer,
    /// <summary>Traffic source, e.g. utm_source.</summary>
    Source,
    /// <summary>Page type, e.g. product.</summary>
    PageType,
    /// <summary>Page path.</summary>
    PagePath,
    /// <summary>Search query.</summary>
    SearchQuery,
}

/// <summary>
/// The request's situation as the caller reported it. Empty strings mean "unknown".
/// </summary>
public sealed record RequestContext(
    string Channel = "web",
    string Device = "",
    string Country = "",
    string Locale = "",
    string Referrer = "",
    string Source = "",
    string PageType = "",
    string PagePath = "",
    string SearchQuery = "")
{
    /// <summary>A context with nothing known but the web channel.</summary>
    public static readonly RequestContext Empty = new();

    /// <summary>Every context field with its rule name, in a stable order.</summary>
    public static readonly (ContextField Field, string Name)[] Fields =
    [
        (ContextField.Channel, "channel"), (ContextField.Device, "device"), (ContextField.Country, "country"),
        (ContextField.Locale, "locale"), (ContextField.Referrer, "referrer"), (ContextField.Source, "source"),
        (ContextField.PageType, "page_type"), (ContextField.PagePath, "page_path"), (ContextField.SearchQuery, "search_query"),
    ];

    /// <summary>Reads one field.</summary>
    public string Get(ContextField field) => field switch
    {
        ContextField.Channel => Channel,
        ContextField.Device => Device,
        ContextField.Country => Country,
        ContextField.Locale => Locale,
        ContextField.Referrer => Referrer,
        ContextField.Source => Source,
        ContextField.PageType => PageType,
        ContextField.PagePath => PagePath,
        ContextField.SearchQuery => SearchQuery,
        _ => "",
    };

    /// <summary>Maximum length of each field, in characters.</summary>
    public static int MaxLength(ContextField field) => field switch
    {
        ContextField.Referrer or ContextField.PagePath => 2048,
        ContextField.SearchQuery => 512,
        ContextField.Source => 256,
        _ => 64,
    };

    /// <summary>True when every field is within its length limit (the common case; no allocation).</summary>
    public bool IsWithinLimits()
    {
        for (var i = 0; i < Fields.Length; i++)
        {
            var field = Fields[i].Field;
            if (Get(field).Length > MaxLength(field))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Adds a violation for every field longer than its limit.</summary>
    public void Validate(Validation.ViolationList violations, string prefix)
    {
        foreach (var (field, name) in Fields)
        {
            violations.MaxLength($"{prefix}.{name}", Get(field), MaxLength(field));
        }
    }

    /// <summary>The rule name of a field, e.g. <c>page_type</c>.</summary>
    public static string NameOf(ContextField field) => Fields[(int)field].Name;
}
