using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;

namespace Segmentation.Core.Catalog;

/// <summary>
/// A catalog whose shape has been checked but which is not compiled yet: what <see cref="CatalogValidator"/>
/// reads from the syntax trees and <see cref="CatalogCompiler"/> turns into a <see cref="CatalogSnapshot"/>.
/// Rules, templates and scoring are still syntax here; ids, types, priorities, references between
/// segments, the schema and personas are checked.
/// </summary>
public sealed class CatalogDefinition
{
    /// <summary>The catalog's name.</summary>
    public string Name { get; init; } = "default";

    /// <summary>Where the catalog came from (a directory, <c>embedded:default</c>, ...).</summary>
    public required string Origin { get; init; }

    /// <summary>Declared traits, by name (derived traits are added by the compiler).</summary>
    public required Dictionary<string, TraitDefinition> Traits { get; init; }

    /// <summary>Personas, by id.</summary>
    public required IReadOnlyDictionary<string, Persona> Personas { get; init; }

    /// <summary>Shared rule fragments, by name.</summary>
    public required IReadOnlyDictionary<string, SyntaxNode> Fragments { get; init; }

    /// <summary>
    /// The rule of every segment written with an id and a rule, valid or not, by id (the first wins):
    /// what <c>segment(id)</c> references resolve against, so one bad segment is reported once.
    /// </summary>
    public required IReadOnlyDictionary<string, SyntaxNode> Rules { get; init; }

    /// <summary>Every segment id written, including those of segments with errors.</summary>
    public required IReadOnlySet<string> DeclaredIds { get; init; }

    /// <summary>
    /// Ids of the segments whose rules are compiled whether or not the rest of the segment is valid, in the
    /// order written: every rule error is reported in one pass.
    /// </summary>
    public required IReadOnlyList<string> RulesToCompile { get; init; }

    /// <summary>Segments whose shape is valid, in the order written (files by name, then position).</summary>
    public required IReadOnlyList<SegmentDefinition> Segments { get; init; }

    /// <summary>The share of users in the decisioning holdout (0 to 0.5; 0: none).</summary>
    public double Holdout { get; init; }

    /// <summary>The contact policies (none when the catalog declares none).</summary>
    public ContactPolicies ContactPolicies { get; init; } = ContactPolicies.None;

    /// <summary>Scheduled triggers on segment entry.</summary>
    public IReadOnlyList<SegmentTrigger> Triggers { get; init; } = [];

    /// <summary>Experiments whose shape is valid, in the order written.</summary>
    public IReadOnlyList<ExperimentDefinition> Experiments { get; init; } = [];

    /// <summary>The catalog's <c>scoring</c> mapping, if it has one.</summary>
    public SyntaxMap? Scoring { get; init; }
}

/// <summary>A segment whose shape is valid; its rule and templates are compiled by <see cref="CatalogCompiler"/>.</summary>
/// <param name="Id">The id.</param>
/// <param name="Name">The display name.</param>
/// <param name="Type">The segment family.</param>
/// <param name="Priority">The priority within the catalog.</param>
/// <param name="Description">What the segment is for.</param>
/// <param name="IsFallback">Whether this is the fallback segment.</param>
/// <param name="Persona">The persona its messages speak to, if any.</param>
/// <param name="Variants">Its five outcomes, one per <see cref="VariantKind"/>, in that order.</param>
/// <param name="Overrides">Ids of the segments it wins over.</param>
/// <param name="Exclusions">Ids of the segments whose members it never takes.</param>
/// <param name="Node">Where it was written.</param>
public sealed record SegmentDefinition(
    string Id,
    string Name,
    SegmentType Type,
    int Priority,
    string Description,
    bool IsFallback,
    Persona? Persona,
    IReadOnlyList<VariantDefinition> Variants,
    string[] Overrides,
    string[] Exclusions,
    SyntaxMap Node)
{
    /// <summary>The file it was written in.</summary>
    public string File => Node.At.File;

    /// <summary>Named content blocks beyond the five outcomes, for email layouts (rendered in email batches).</summary>
    public IReadOnlyList<(string Name, VariantDefinition Variant)> EmailBlocks { get; init; } = [];
}

/// <summary>One outcome of a segment, with its template still as text.</summary>
/// <param name="Kind">Which outcome.</param>
/// <param name="Id">The variant id reported with decisions.</param>
/// <param name="Source">The template text.</param>
/// <param name="Fallback">The text used when rendering fails.</param>
/// <param name="Node">Where it was written.</param>
public sealed record VariantDefinition(VariantKind Kind, string Id, string Source, string Fallback, SyntaxNode Node);
