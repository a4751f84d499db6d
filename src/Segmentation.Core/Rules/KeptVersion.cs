namespace Segmentation.Core.Rules;

/// <summary>
/// Whether the catalog being compiled on this flow was already active before (<c>CatalogLoader.LoadKept</c>): checks
/// added since it was published then let it through, so it keeps the meaning it had.
/// </summary>
internal static class KeptVersion
{
    private static readonly AsyncLocal<bool> s_loading = new();

    /// <summary>True while a kept version is compiled on this flow.</summary>
    public static bool Loading
    {
        get => s_loading.Value;
        set => s_loading.Value = value;
    }
}
