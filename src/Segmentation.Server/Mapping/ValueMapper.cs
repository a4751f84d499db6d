using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.Core.Profiles;

namespace Segmentation.Server.Mapping;

/// <summary>Maps attribute values and layers between protobuf and the domain.</summary>
internal static class ValueMapper
{
    /// <summary>A trait value; an out-of-range timestamp is a validation error naming <paramref name="field"/>.</summary>
    public static object? ToDomain(AttributeValue value, string field) => value.KindCase switch
    {
        AttributeValue.KindOneofCase.StringValue => value.StringValue,
        AttributeValue.KindOneofCase.NumberValue => value.NumberValue,
        AttributeValue.KindOneofCase.BoolValue => value.BoolValue,
        AttributeValue.KindOneofCase.TimestampValue => ToDomain(value.TimestampValue, field),
        AttributeValue.KindOneofCase.StringListValue => value.StringListValue.Values.ToArray(),
        _ => null,
    };

    /// <summary>
    /// An event property value (null for an empty one, which is dropped); one with an out-of-range timestamp is carried
    /// as an <see cref="Core.Events.InvalidPropertyValue"/>, which the event's validation rejects for that event alone.
    /// </summary>
    public static object? ToProperty(AttributeValue value) =>
        value.KindCase == AttributeValue.KindOneofCase.TimestampValue && !(IsValid(value.TimestampValue) && value.TimestampValue.Seconds >= MinAccepted && value.TimestampValue.Seconds < MaxAccepted)
            ? new Core.Events.InvalidPropertyValue(TimestampRange)
            : ToDomain(value, "properties");

    private const string TimestampRange = "must be a valid timestamp between 1800-01-01 and 2199-12-31 (nanos 0 to 999999999)";

    public static AttributeValue ToProto(object value) => value switch
    {
        string s => new AttributeValue { StringValue = s },
        double d => new AttributeValue { NumberValue = d },
        bool b => new AttributeValue { BoolValue = b },
        DateTimeOffset t => new AttributeValue { TimestampValue = Timestamp.FromDateTimeOffset(t) },
        IEnumerable<string> l => new AttributeValue { StringListValue = new StringList { Values = { l } } },
        _ => new AttributeValue { StringValue = value.ToString() ?? "" },
    };

    /// <summary>A request's data layer: unspecified means zero-party (declared); a value the contract does not define is a validation error.</summary>
    public static AttributeLayer ToDomain(DataLayer layer, string field = "layer") => layer switch
    {
        DataLayer.Unspecified or DataLayer.ZeroParty => AttributeLayer.ZeroParty,
        DataLayer.FirstParty => AttributeLayer.FirstParty,
        DataLayer.Derived => AttributeLayer.Derived,
        _ => throw new Core.Validation.ValidationException(field, $"unknown data layer {(int)layer}: use DATA_LAYER_ZERO_PARTY, DATA_LAYER_FIRST_PARTY or DATA_LAYER_DERIVED"),
    };

    public static DataLayer ToProto(AttributeLayer layer) => layer switch
    {
        AttributeLayer.FirstParty => DataLayer.FirstParty,
        AttributeLayer.Derived => DataLayer.Derived,
        _ => DataLayer.ZeroParty,
    };

    // The range a protobuf Timestamp may hold (0001-01-01 to 9999-12-31); outside it ToDateTimeOffset throws.
    private const long MinSeconds = -62_135_596_800;
    private const long MaxSeconds = 253_402_300_799;

    // The range a request or a trait timestamp may hold (1800-01-01 to 2199-12-31): time arithmetic on it
    // ("within 30 days", cache validity) always stays representable.
    private static readonly long MinAccepted = Core.Validation.InputLimits.EarliestTimestamp.ToUnixTimeSeconds();
    private static readonly long MaxAccepted = Core.Validation.InputLimits.LatestTimestamp.ToUnixTimeSeconds();

    private static bool IsValid(Timestamp t) => t.Seconds is >= MinSeconds and <= MaxSeconds && t.Nanos is >= 0 and <= 999_999_999;

    /// <summary>A request or trait timestamp, or a validation error naming <paramref name="field"/> when it is out of range.</summary>
    public static DateTimeOffset? ToDomain(Timestamp? t, string field) =>
        t is null ? null
        : t.Seconds >= MinAccepted && t.Seconds < MaxAccepted && t.Nanos is >= 0 and <= 999_999_999 ? t.ToDateTimeOffset()
        : throw new Core.Validation.ValidationException(field, TimestampRange);

    /// <summary>
    /// An event timestamp that never throws: one out of range is clamped to the nearest representable
    /// time, which the event validator then rejects (too early or in the future) for that event alone.
    /// </summary>
    public static DateTimeOffset ToEventTime(Timestamp? t) =>
        t is null ? default
        : IsValid(t) ? t.ToDateTimeOffset()
        : t.Seconds > MaxSeconds ? DateTimeOffset.MaxValue
        : DateTimeOffset.MinValue.AddTicks(1); // before 0001-01-01, or nanos out of range

    public static Timestamp? Ticks(long ticks) =>
        ticks == long.MinValue ? null : Timestamp.FromDateTimeOffset(new DateTimeOffset(ticks, TimeSpan.Zero));
}
