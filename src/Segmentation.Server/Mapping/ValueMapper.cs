using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.Core.Profiles;

namespace Segmentation.Server.Mapping;

/// <summary>Maps attribute values and layers between protobuf and the domain.</summary>
internal static class ValueMapper
{
    public static object? ToDomain(AttributeValue value) => value.KindCase switch
    {
        AttributeValue.KindOneofCase.StringValue => value.StringValue,
        AttributeValue.KindOneofCase.NumberValue => value.NumberValue,
        AttributeValue.KindOneofCase.BoolValue => value.BoolValue,
        AttributeValue.KindOneofCase.TimestampValue => value.TimestampValue.ToDateTimeOffset(),
        AttributeValue.KindOneofCase.StringListValue => value.StringListValue.Values.ToArray(),
        _ => null,
    };

    public static AttributeValue ToProto(object value) => value switch
    {
        string s => new AttributeValue { StringValue = s },
        double d => new AttributeValue { NumberValue = d },
        bool b => new AttributeValue { BoolValue = b },
        DateTimeOffset t => new AttributeValue { TimestampValue = Timestamp.FromDateTimeOffset(t) },
        IEnumerable<string> l => new AttributeValue { StringListValue = new StringList { Values = { l } } },
        _ => new AttributeValue { StringValue = value.ToString() ?? "" },
    };

    public static AttributeLayer ToDomain(DataLayer layer) => layer switch
    {
        DataLayer.FirstParty => AttributeLayer.FirstParty,
        DataLayer.Derived => AttributeLayer.Derived,
        _ => AttributeLayer.ZeroParty,
    };

    public static DataLayer ToProto(AttributeLayer layer) => layer switch
    {
        AttributeLayer.FirstParty => DataLayer.FirstParty,
        AttributeLayer.Derived => DataLayer.Derived,
        _ => DataLayer.ZeroParty,
    };

    public static Timestamp? Ticks(long ticks) =>
        ticks == long.MinValue ? null : Timestamp.FromDateTimeOffset(new DateTimeOffset(ticks, TimeSpan.Zero));
}
