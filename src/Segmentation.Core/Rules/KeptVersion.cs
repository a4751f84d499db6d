namespace Segmentation.Core.Rules;

/// <summary>
/// Whether the catalog being compiled on this flow was already active before (<c>CatalogLoader.LoadKept</c>): checks
/// added since it was published then let it through, so it keeps the meaning it had.
/// </summary>
internal static class KeptVersion
{
    private static readonly AsyncLocal<bool> s_loading = new();

    /// <summary>True while <see cref="Compile{T}"/> runs on this flow.</summary>
    public static bool Loading => s_loading.Value;

    /// <summary>Runs <paramref name="compile"/> (the load of a version that was active before) with <see cref="Loading"/> true.</summary>
    public static T Compile<T>(Func<T> compile)
    {
        var outer = s_loading.Value;
        s_loading.Value = true;
        try
        {
            return compile();
        }
        finally
        {
            s_loading.Value = outer;
        }
    }
}
