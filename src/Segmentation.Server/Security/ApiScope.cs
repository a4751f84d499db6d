namespace Segmentation.Server.Security;

/// <summary>What an API key may do. Scopes are independent, except that <c>admin</c> implies <c>read</c> and <c>watch</c>.</summary>
[Flags]
public enum ApiScope
{
    /// <summary>No scope.</summary>
    None = 0,

    /// <summary>Decisions and profile reads: storefronts, email senders.</summary>
    Decide = 1,

    /// <summary>Writes of behaviour and declared data: trackers, importers.</summary>
    Ingest = 2,

    /// <summary>Catalog governance and privacy operations: operators. Implies <see cref="Read"/> and <see cref="Watch"/>.</summary>
    Admin = 4,

    /// <summary>The change stream only: workflow engines that act on segment changes and triggers.</summary>
    Watch = 8,

    /// <summary>Reads of the catalog, segments, counts, KPIs, data quality and experiment reports: analysts and dashboards.</summary>
    Read = 16,

    /// <summary>Every scope.</summary>
    All = Decide | Ingest | Admin | Watch | Read,
}

/// <summary>Scope names as they appear in configuration and error messages.</summary>
public static class ApiScopes
{
    /// <summary>Parses a configured scope name (case-insensitive); false for unknown names.</summary>
    public static bool TryParse(string? name, out ApiScope scope)
    {
        scope = name?.Trim().ToLowerInvariant() switch
        {
            "decide" => ApiScope.Decide,
            "ingest" => ApiScope.Ingest,
            "admin" => ApiScope.Admin,
            "watch" => ApiScope.Watch,
            "read" => ApiScope.Read,
            _ => ApiScope.None,
        };
        return scope != ApiScope.None;
    }

    /// <summary>The configuration name of a single scope.</summary>
    public static string Name(ApiScope scope) => scope switch
    {
        ApiScope.Decide => "decide",
        ApiScope.Ingest => "ingest",
        ApiScope.Admin => "admin",
        ApiScope.Watch => "watch",
        ApiScope.Read => "read",
        _ => scope.ToString().ToLowerInvariant(),
    };

    /// <summary>The scopes a key holds once implications are applied: <c>admin</c> also reads and watches.</summary>
    public static ApiScope Effective(ApiScope configured) =>
        (configured & ApiScope.Admin) != 0 ? configured | ApiScope.Read | ApiScope.Watch : configured;
}
