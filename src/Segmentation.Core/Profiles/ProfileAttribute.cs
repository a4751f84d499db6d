using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>
/// One stored attribute with its provenance (layer, source and time). A value type: a profile's attributes are one array of
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
    private static readonly object True = true;
    private static readonly object False = false;

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

    /// <summary>A whole number 0–1023 as the one shared box of it (no allocation); another number boxed.</summary>
    internal static object Number(int value) => value is >= 0 and < SharedNumbers ? NumberBoxes[value] : (double)value;

    private static object Shared(object value) => value switch
    {
        double d when d >= 0 && d < SharedNumbers && d == Math.Floor(d) && !double.IsNegative(d) => NumberBoxes[(int)d],
        bool b => b ? True : False,
        _ => value,
    };

    /// <summary>
    /// This attribute with its name, source and value held as shared instances: the name as the catalog
    /// schema spells it, the source and a string value (or each string of a list) from the string pool,
    /// a list as an array shared by every profile with the same list. A value of a personal-data trait
    /// (<paramref name="pii"/>) is never pooled: pooled strings outlive their profiles, and an erased
    /// user's data must not.
    /// </summary>
    internal ProfileAttribute Shared(string name, bool pii)
    {
        var value = pii ? Value : Value switch
        {
            string s => StringPool.Share(s),
            IReadOnlyList<string> list => DeclaredLists.Share([.. list.Select(StringPool.Share)]),
            _ => Value,
        };
        return this with { Name = name, Value = value, Source = StringPool.Share(Source) };
    }

    // Declared lists (interests, values, tech stacks) fall into few combinations: one array each.
    private static readonly StringArrayPool DeclaredLists = StringArrayPool.ForWrittenLists(capacity: 16_384);
}
