using Segmentation.Core.Profiles;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Scoring;

/// <summary>
/// The fields the scoring layer derives, for the rule language (<see cref="IDerivedFields"/>): the derived
/// traits (<see cref="DerivedScores.Traits"/>), <c>cart.abandoned</c> and the affinities by the catalog's
/// scoring settings, and the named RFM segment. The settings are set once the catalog's scoring section is
/// read (its lead-score fit criteria are rules compiled with the registry this serves).
/// </summary>
public sealed class DerivedFields : IDerivedFields
{
    private static readonly IReadOnlySet<string> Observable = new HashSet<string>(StringComparer.Ordinal) { "affinity.top_category", "affinity.top_product" };

    /// <summary>Settings of derived fields (cart abandonment, affinity, lead scoring).</summary>
    public ScoringSettings Settings { get; set; } = ScoringSettings.Default;

    /// <inheritdoc />
    public IReadOnlyDictionary<string, FieldType> Traits => DerivedScores.Traits;

    /// <inheritdoc />
    public IReadOnlySet<string> ObservableFields => Observable;

    /// <inheritdoc />
    public object? Compute(string trait, EvalContext c) => DerivedScores.Compute(trait, c, Settings);

    /// <inheritdoc />
    public FieldAccessor? Field(string name) => name switch
    {
        "cart.abandoned" => FieldAccessor.ForFlag(name, c =>
        {
            if (c.Profile is not { CartItems: > 0 } p)
            {
                return 0;
            }

            var at = p.CartUpdatedTicks + Settings.CartAbandonmentAfter.Ticks;
            c.Until(at);
            return c.NowTicks >= at ? 1 : 0;
        }),
        "affinity.top_category" => FieldAccessor.ForText(name, c => Affinity(c, byProduct: false).Top).WalkingEvents(),
        "affinity.top_product" => FieldAccessor.ForText(name, c => Affinity(c, byProduct: true).Top).WalkingEvents(),
        "rfm.segment" => FieldAccessor.ForText(name, c => DerivedScores.RfmSegment(c.Rfm.Recency(c.Profile), c.Rfm.Frequency(c.Profile), c.Rfm.Monetary(c.Profile))),
        _ => null,
    };

    /// <inheritdoc />
    public (string? Value, long LastTicks) Observed(string observedBy, EvalContext c)
    {
        var (top, _, last) = Affinity(c, byProduct: observedBy == "affinity.top_product");
        return (top, last);
    }

    // The top (and when it changes with time alone: its oldest interaction read leaving the window narrows the validity).
    private (string? Top, double Score, long LastTicks) Affinity(EvalContext c, bool byProduct)
    {
        var result = DerivedScores.Affinity(c.Profile, c.NowTicks, Settings.AffinityHalfLife, byProduct, out var changesAt);
        c.Until(changesAt);
        return result;
    }
}
