using System.Globalization;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Primitives;

namespace Segmentation.Server.Mapping;

/// <summary>Problems of HTTP/JSON query strings (see the type's other part for what it is).</summary>
internal sealed partial record HttpJsonInputProblem
{
    /// <summary>
    /// The first query parameter of <paramref name="query"/> (named by field path, <c>groupBy</c> or <c>group_by</c>,
    /// <c>a.b</c> for a nested field) whose value does not parse as its field of <paramref name="message"/>, or null.
    /// </summary>
    public static HttpJsonInputProblem? InQuery(IEnumerable<KeyValuePair<string, StringValues>> query, MessageDescriptor message)
    {
        foreach (var (key, values) in query)
        {
            if (FieldAt(message, key) is not { } found)
            {
                continue; // not a field: transcoding ignores it
            }

            foreach (var value in values)
            {
                if (value is not null && QueryValue(found.Field, value, found.Path) is { } problem)
                {
                    return problem;
                }
            }
        }

        return null;
    }

    // The field a dotted parameter name selects, by proto or JSON name, and its proto path.
    private static (FieldDescriptor Field, string Path)? FieldAt(MessageDescriptor message, string key)
    {
        FieldDescriptor? field = null;
        var path = new List<string>();
        foreach (var part in key.Split('.'))
        {
            if (field is not null && field.FieldType != FieldType.Message)
            {
                return null;
            }

            var within = field?.MessageType ?? message;
            field = FieldNamed(within, part);
            if (field is null)
            {
                return null;
            }

            path.Add(field.Name);
        }

        return (field!, string.Join('.', path)); // Split gives at least one part, so a field was found
    }

    // One value as its field's type, parsed as transcoding parses query values.
    private static HttpJsonInputProblem? QueryValue(FieldDescriptor field, string value, string path)
    {
        var invariant = CultureInfo.InvariantCulture;
        switch (field.FieldType)
        {
            case FieldType.Bool:
                return bool.TryParse(value, out _) ? null : new(path, $"expected true or false, got '{Quote(value)}'");
            case FieldType.Double or FieldType.Float:
                return double.TryParse(value, NumberStyles.Float, invariant, out _) || value is "NaN" or "Infinity" or "-Infinity"
                    ? null
                    : new(path, $"expected a number, got '{Quote(value)}'");
            case FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 or FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64
                or FieldType.UInt32 or FieldType.Fixed32 or FieldType.UInt64 or FieldType.Fixed64:
                return long.TryParse(value, NumberStyles.Integer, invariant, out _) || ulong.TryParse(value, NumberStyles.Integer, invariant, out _)
                    ? null
                    : new(path, $"expected a whole number, got '{Quote(value)}'");
            case FieldType.Enum:
                return int.TryParse(value, NumberStyles.Integer, invariant, out _) ? null : UnknownEnumValue(field.EnumType, value, path);
            case FieldType.Message when field.MessageType.FullName == Timestamp.Descriptor.FullName:
                return Unparsable(value, Timestamp.Descriptor, path, ExpectedTime);
            case FieldType.Message when field.MessageType.FullName == Duration.Descriptor.FullName:
                return Unparsable(value, Duration.Descriptor, path, ExpectedDuration);
            case FieldType.Message when IsWrapper(field.MessageType):
                return QueryValue(field.MessageType.FindFieldByNumber(1), value, path);
            default:
                return null; // strings, bytes and anything transcoding does not bind from a query
        }
    }
}
