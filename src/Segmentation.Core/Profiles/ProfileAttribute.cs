namespace Segmentation.Core.Profiles;

/// <summary>
/// One stored attribute with its provenance (F1).
/// </summary>
/// <param name="Name">Attribute name as declared in the catalog schema.</param>
/// <param name="Value">
/// The value: <see cref="string"/>, <see cref="double"/>, <see cref="bool"/>,
/// <see cref="DateTimeOffset"/> or <see cref="IReadOnlyList{T}"/> of string.
/// </param>
/// <param name="Layer">The data layer the value belongs to.</param>
/// <param name="Source">The system that recorded it.</param>
/// <param name="UpdatedAt">When it was recorded.</param>
public sealed record ProfileAttribute(string Name, object Value, AttributeLayer Layer, string Source, DateTimeOffset UpdatedAt);
