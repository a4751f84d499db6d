using Segmentation.Core.Rules;

namespace Segmentation.Core.Profiles;

/// <summary>
/// A trait declared in the catalog schema: its name, type, whether it is personal data (PII), and
/// what it means. Only declared traits can be written through the API and read by rules.
/// </summary>
public sealed record TraitDefinition(string Name, FieldType Type, bool Pii, string Description);
