using Scriban;

namespace Segmentation.Core.Rendering;

/// <summary>The five personalization outcomes every segment must define.</summary>
public enum VariantKind
{
    /// <summary>Content block, e.g. a hero banner.</summary>
    Content,

    /// <summary>Offer, e.g. a discount.</summary>
    Offer,

    /// <summary>Call to action.</summary>
    Cta,

    /// <summary>Journey: the next step to steer to.</summary>
    Journey,

    /// <summary>Messaging: tone and message.</summary>
    Messaging,
}

/// <summary>A variant's template, parsed once at catalog load.</summary>
/// <param name="Kind">Which of the five outcomes it is.</param>
/// <param name="Id">Variant id reported with decisions.</param>
/// <param name="Source">The template text as written.</param>
/// <param name="Template">The parsed Scriban template.</param>
/// <param name="Fallback">Static text returned when rendering fails.</param>
/// <param name="ReadsNow">True when the output depends on the evaluation time (never cached).</param>
public sealed record VariantTemplate(VariantKind Kind, string Id, string Source, Template Template, string Fallback, bool ReadsNow)
{
    /// <summary>
    /// For a template without code (plain text: most CTAs, journeys and messages), its output, rendered once
    /// here by Scriban itself and then served without a render; null for templates with code.
    /// </summary>
    public RenderedVariant? Static { get; } =
        Source.Contains("{{", StringComparison.Ordinal) || Source.Contains("{%", StringComparison.Ordinal)
            ? null
            : new RenderedVariant(Id, Template.Render().Trim(), FallbackUsed: false);
}

/// <summary>A rendered variant.</summary>
/// <param name="VariantId">The variant's id.</param>
/// <param name="Text">The rendered text, or the fallback text.</param>
/// <param name="FallbackUsed">True when rendering failed and the fallback text was used.</param>
public sealed record RenderedVariant(string VariantId, string Text, bool FallbackUsed)
{
    /// <summary>
    /// True when the render was abandoned for its time (its own limit, or a regular expression's): a failure of the
    /// moment (a collector pause, a busy machine), not of the template, so a decision showing it is not cached.
    /// </summary>
    public bool TimedOut { get; init; }
}
