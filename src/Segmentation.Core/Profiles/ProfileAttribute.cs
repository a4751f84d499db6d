namespace Segmentation.Core.Profiles;

/// <summary>
/// One stored attribute with its provenance (F1). A value type: a profile's attributes are one array of
/// these (see <see cref="AttributeDictionary"/>), not an object each; the time is kept as UTC ticks and an
/// offset, so an attribute takes 40 bytes.
/// </summary>
/// <param name="Name">Attribute name as declared in the catalog schema.</param>
/// <param name="Value">
/// The value: <see cref="string"/>, <see cref="double"/>, <see cref="bool"/>,
/// <see cref="DateTimeOffset"/> or <see cref="IReadOnlyList{T}"/> of string.
/// </param>
/// <param name="Layer">The data layer the value belongs to.</param>
/// <param name="Source">The system that recorded it.</param>
/// <param name="UpdatedAt">When it was recorded.</param>
public readonly record struct ProfileAttribute(string Name, object Value, AttributeLayer Layer, string Source, DateTimeOffset UpdatedAt)
{
    private const int SharedNumbers = 1024;

    // Whole numbers 0-1023 (scores, counts, grades) as shared boxes: a stored number is an object, and a
    // million profiles need not each box their own lead score, whether written, restored or replayed.
    private static readonly object[] NumberBoxes = [.. Enumerable.Range(0, SharedNumbers).Select(i => (object)(double)i)];

    private readonly object _value = Shared(Value);
    private readonly long _updatedTicks = UpdatedAt.UtcTicks;
    private readonly short _offsetMinutes = (short)UpdatedAt.TotalOffsetMinutes;

    /// <summary>
    /// The value: <see cref="string"/>, <see cref="double"/>, <see cref="bool"/>,
    /// <see cref="DateTimeOffset"/> or <see cref="IReadOnlyList{T}"/> of string.
    /// </summary>
    public object Value
    {
        get => _value;
        init => _value = Shared(value);
    }

    /// <summary>When it was recorded.</summary>
    public DateTimeOffset UpdatedAt
    {
        get => new DateTimeOffset(_updatedTicks, TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(_offsetMinutes));
        init
        {
            _updatedTicks = value.UtcTicks;
            _offsetMinutes = (short)value.TotalOffsetMinutes;
        }
    }

    private static object Shared(object value) =>
        value is double d && d >= 0 && d < SharedNumbers && d == Math.Floor(d) && !double.IsNegative(d) ? NumberBoxes[(int)d] : value;
}
