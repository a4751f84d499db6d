namespace Segmentation.Core.Catalog;

/// <summary>Segment types of the segmentation framework.</summary>
public enum SegmentType
{
    /// <summary>What the user does.</summary>
    Behavioural,

    /// <summary>Purchase signals and decision readiness.</summary>
    Intent,

    /// <summary>Customer value, including RFM.</summary>
    Value,

    /// <summary>What the user needs.</summary>
    Need,

    /// <summary>The request's situation.</summary>
    Contextual,

    /// <summary>Values, interests, lifestyle.</summary>
    Psychographic,

    /// <summary>Company facts.</summary>
    Firmographic,

    /// <summary>Tools and platforms.</summary>
    Technographic,

    /// <summary>Lifecycle stage.</summary>
    Lifecycle,

    /// <summary>Engagement level.</summary>
    Engagement,

    /// <summary>Transaction patterns.</summary>
    Transactional,

    /// <summary>Product and category preferences.</summary>
    Preference,

    /// <summary>Demographic facts.</summary>
    Demographic,
}

/// <summary>
/// The framework's priority families: intent &gt; behaviour &gt; value &gt; need &gt; context &gt;
/// psychographic. Each type belongs to one family; a segment's default priority is its family's.
/// </summary>
public static class SegmentFamilies
{
    /// <summary>Default priority of a segment of <paramref name="type"/> that sets none.</summary>
    public static int DefaultPriority(SegmentType type) => type switch
    {
        SegmentType.Intent => 600,
        SegmentType.Behavioural or SegmentType.Engagement => 500,
        SegmentType.Value or SegmentType.Lifecycle or SegmentType.Transactional => 400,
        SegmentType.Need or SegmentType.Firmographic or SegmentType.Technographic => 300,
        SegmentType.Contextual or SegmentType.Demographic => 200,
        _ => 100, // psychographic, preference
    };

    /// <summary>Parses a type name as written in catalog files (lower case).</summary>
    public static bool TryParse(string? text, out SegmentType type)
    {
        type = default;
        return text is not null && text.All(char.IsAsciiLetterLower) && Enum.TryParse(text, ignoreCase: true, out type);
    }

    /// <summary>The type's name as written in catalog files.</summary>
    public static string Name(SegmentType type) => type.ToString().ToLowerInvariant();
}
