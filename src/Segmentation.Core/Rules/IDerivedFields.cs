using Segmentation.Core.Profiles;

namespace Segmentation.Core.Rules;

/// <summary>
/// The fields the scoring layer derives from a profile (lifecycle stage, engagement, intent, lead score and
/// grade, named RFM segment, cart abandonment, affinities): the rule language reads them through this seam
/// and the scoring layer, which itself compiles rules (lead-score fit criteria), computes them. A registry
/// without it knows only the fields read directly off the profile, its events and the request.
/// </summary>
public interface IDerivedFields
{
    /// <summary>The traits the scoring layer derives, with their types (a declared or observed value of the same name wins).</summary>
    IReadOnlyDictionary<string, FieldType> Traits { get; }

    /// <summary>The behavioural fields a declared trait can name in <c>observed_by</c>.</summary>
    IReadOnlySet<string> ObservableFields { get; }

    /// <summary>The value of derived trait <paramref name="trait"/> at the evaluation, or null when there is nothing to derive it from.</summary>
    object? Compute(string trait, EvalContext c);

    /// <summary>A field only the scoring layer knows (<c>cart.abandoned</c>, <c>affinity.top_category</c>, <c>rfm.segment</c>...), or null.</summary>
    FieldAccessor? Field(string name);

    /// <summary>The value of the behavioural field <paramref name="observedBy"/> and the time of its latest signal.</summary>
    (string? Value, long LastTicks) Observed(string observedBy, EvalContext c);
}
