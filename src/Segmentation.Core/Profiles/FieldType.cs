namespace Segmentation.Core.Profiles;

/// <summary>The value type of a field that rules read. Used to type-check rules at load.</summary>
public enum FieldType
{
    /// <summary>Text, compared case-insensitively.</summary>
    String,
    /// <summary>A finite double.</summary>
    Number,
    /// <summary>True or false.</summary>
    Bool,
    /// <summary>A point in time.</summary>
    Timestamp,
    /// <summary>A list of strings.</summary>
    List,
}
