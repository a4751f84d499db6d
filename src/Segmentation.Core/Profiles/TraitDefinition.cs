namespace Segmentation.Core.Profiles;

/// <summary>
/// A trait declared in the catalog schema: its name, type, whether it is personal data (PII), and
/// what it means. Only declared traits can be written through the API and read by rules.
/// </summary>
/// <param name="Name">Trait name.</param>
/// <param name="Type">Value type.</param>
/// <param name="Pii">True for personal data (encrypted at rest, never logged).</param>
/// <param name="Description">What it means.</param>
/// <param name="ObservedBy">
/// A behavioural field answering the same question (e.g. <c>affinity.top_category</c> for a declared
/// preferred category); rules may let the more recent signal win with <c>resolve: recent</c>.
/// </param>
public sealed record TraitDefinition(string Name, FieldType Type, bool Pii, string Description, string? ObservedBy = null);
