using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Catalog;

/// <summary>A compiled segment of a catalog snapshot.</summary>
public sealed class Segment
{
    /// <summary>Stable id, lower_snake_case.</summary>
    public required string Id { get; init; }

    /// <summary>Human-readable name.</summary>
    public required string Name { get; init; }

    /// <summary>Segment type.</summary>
    public required SegmentType Type { get; init; }

    /// <summary>Resolved priority; higher wins.</summary>
    public required int Priority { get; init; }

    /// <summary>What the segment is for.</summary>
    public string Description { get; init; } = "";

    /// <summary>The compiled rule; null only for the fallback segment.</summary>
    public RuleNode? Rule { get; init; }

    /// <summary>Ids of segments this one suppresses when both match.</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];

    /// <summary>Ids of segments whose members are excluded from this one.</summary>
    public IReadOnlyList<string> Exclusions { get; init; } = [];

    /// <summary>The persona informing this segment's messaging, if any.</summary>
    public Persona? Persona { get; init; }

    /// <summary>True for the catalog's fallback segment.</summary>
    public bool IsFallback { get; init; }

    /// <summary>The five variants, indexed by <see cref="VariantKind"/>.</summary>
    public required IReadOnlyList<VariantTemplate> Variants { get => _variants; init => _variants = value; }

    private IReadOnlyList<VariantTemplate> _variants = [];

    /// <summary>Replaces the variants while the catalog is compiled (an experiment's promoted arm), before anything reads them.</summary>
    internal void Serve(IReadOnlyList<VariantTemplate> variants) => _variants = variants;

    /// <summary>What templates read about this segment (<c>segment</c> and <c>persona</c> in the render model).</summary>
    public RenderSubject Subject => field ??= new RenderSubject(Id, Name, SegmentFamilies.Name(Type), Persona);

    /// <summary>File the segment was defined in.</summary>
    public required string SourceFile { get; init; }

    /// <summary>Line of that file the segment's definition starts at (1-based; 0 when not known), for warnings at file:line.</summary>
    public int SourceLine { get; init; }

    /// <summary>Named content blocks beyond the five outcomes, for email layouts (rendered in email batches), in the order written.</summary>
    public IReadOnlyList<EmailBlock> EmailBlocks { get; init; } = [];

    /// <summary>Position in the snapshot's priority order.</summary>
    public int Rank { get; internal set; }

    /// <summary>Ranks of the segments this one overrides (resolved at compile time).</summary>
    internal int[] OverrideRanks { get; set; } = [];

    /// <summary>Ranks of the segments that override this one, ascending (the inverse of <see cref="OverrideRanks"/>, resolved at compile time).</summary>
    internal int[] OverriddenByRanks { get; set; } = [];

    /// <summary>Ranks of the segments that exclude members from this one (resolved at compile time).</summary>
    internal int[] ExclusionRanks { get; set; } = [];
}

/// <summary>A named content block of a segment, for email layouts (a hero, a product grid, a footer).</summary>
/// <param name="Name">The block's name, unique in the segment.</param>
/// <param name="Template">Its compiled template.</param>
public sealed record EmailBlock(string Name, VariantTemplate Template);
