namespace Segmentation.Core.Rendering;

/// <summary>
/// A persona that informs a segment's messaging: tone, triggers and objections that templates may read.
/// Personas are declared in the catalog and are not segments.
/// </summary>
public sealed record Persona(string Id, string Name, string Tone, string Messaging, IReadOnlyList<string> Triggers, IReadOnlyList<string> Objections);

/// <summary>What the render model tells templates about the segment being rendered.</summary>
/// <param name="Id">The segment id.</param>
/// <param name="Name">Its display name.</param>
/// <param name="Type">Its type, as the catalog writes it (<c>value</c>, <c>intent</c>...).</param>
/// <param name="Persona">The persona that informs its messaging, if any.</param>
public sealed record RenderSubject(string Id, string Name, string Type, Persona? Persona);
