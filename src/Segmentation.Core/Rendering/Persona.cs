namespace Segmentation.Core.Rendering;

/// <summary>
/// A persona that informs a segment's messaging: tone, triggers and objections that templates may read, and the
/// rest of the persona card (role, goals, pain points, behaviour, channels) for the people who write the messages.
/// Personas are declared in the catalog and are not segments.
/// </summary>
public sealed record Persona(string Id, string Name, string Tone, string Messaging, IReadOnlyList<string> Triggers, IReadOnlyList<string> Objections)
{
    /// <summary>Who they are (a role, a life stage or a job title).</summary>
    public string Role { get; init; } = "";

    /// <summary>What they want to achieve, most important first.</summary>
    public IReadOnlyList<string> Goals { get; init; } = [];

    /// <summary>What frustrates them, most important first.</summary>
    public IReadOnlyList<string> PainPoints { get; init; } = [];

    /// <summary>How they behave: how they browse, decide and buy.</summary>
    public string Behaviour { get; init; } = "";

    /// <summary>The channels they prefer.</summary>
    public IReadOnlyList<string> Channels { get; init; } = [];
}

/// <summary>What the render model tells templates about the segment being rendered.</summary>
/// <param name="Id">The segment id.</param>
/// <param name="Name">Its display name.</param>
/// <param name="Type">Its type, as the catalog writes it (<c>value</c>, <c>intent</c>...).</param>
/// <param name="Persona">The persona that informs its messaging, if any.</param>
public sealed record RenderSubject(string Id, string Name, string Type, Persona? Persona);
