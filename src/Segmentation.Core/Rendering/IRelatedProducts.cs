namespace Segmentation.Core.Rendering;

/// <summary>Products related to others, from what the service has seen (co-purchases and co-views).</summary>
public interface IRelatedProducts
{
    /// <summary>
    /// Up to <paramref name="max"/> products related to <paramref name="seeds"/> (most relevant seed first), none of
    /// them in <paramref name="exclude"/>, topped up with popular products; <paramref name="validUntilTicks"/> is when
    /// the answer may change (the next refresh of the relations).
    /// </summary>
    IReadOnlyList<string> Related(IReadOnlyList<string> seeds, IReadOnlySet<string> exclude, int max, long nowTicks, out long validUntilTicks);
}
