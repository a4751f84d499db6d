using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Segmentation.Server.Mapping;

/// <summary>
/// The first place where an HTTP/JSON request does not fit its protobuf message: in the body (<see cref="InBody"/>: a
/// field of the wrong JSON type, an enum name the contract does not have, a time that is not RFC 3339, JSON that is not
/// well formed) or in the query string of a GET (<see cref="InQuery"/>: a number, flag, enum or time that does not
/// parse). JSON transcoding refuses such a request before any of our code runs, with one message for many cases
/// ("Request JSON payload is not correctly formatted.") or without naming the field; this names it as gRPC callers'
/// field violations do (<c>events[2].timestamp</c>, proto field names).
/// </summary>
/// <remarks>
/// Only as strict as transcoding is (it runs after transcoding refused a request, to say where): unknown fields are
/// skipped, numbers may be quoted, and null stands for any field's default.
/// </remarks>
/// <param name="Field">The field's path, or null when the problem is the body as a whole (not JSON, not an object).</param>
/// <param name="Description">What is wrong with it, in words a client author can act on.</param>
internal sealed partial record HttpJsonInputProblem(string? Field, string Description)
{
    private const int MaxQuoted = 64;
    private const string ExpectedTime = "an RFC 3339 time such as 2026-12-04T09:30:00Z";
    private const string ExpectedDuration = "a duration in seconds such as 1.5s";

    // The field a JSON property or query parameter names: by its proto name or its JSON (lowerCamelCase) name, as transcoding accepts both.
    private static FieldDescriptor? FieldNamed(MessageDescriptor message, string name) =>
        message.FindFieldByName(name) ?? message.Fields.InDeclarationOrder().FirstOrDefault(f => f.JsonName == name);

    // A value the enum does not have, by name.
    private static HttpJsonInputProblem? UnknownEnumValue(EnumDescriptor type, string name, string path) =>
        type.FindValueByName(name) is null ? new(path, $"'{Quote(name)}' is not a value of {type.Name}: use one of {Names(type)}") : null;

    // A well-known type written as a string (a time, a duration), parsed by protobuf's own JSON parser.
    private static HttpJsonInputProblem? Unparsable(string text, MessageDescriptor type, string path, string expected)
    {
        try
        {
            JsonParser.Default.Parse(JsonSerializer.Serialize(text), type);
            return null;
        }
        catch (InvalidProtocolBufferException)
        {
            return new(path, $"expected {expected}, got '{Quote(text)}'");
        }
    }

    // google.protobuf.Int32Value and its kind: written as the value they wrap.
    private static bool IsWrapper(MessageDescriptor type) =>
        type.File.Package == "google.protobuf" && type.Name.EndsWith("Value", StringComparison.Ordinal) && type.Name is not "Value" and not "ListValue";

    private static string Names(EnumDescriptor type) => string.Join(", ", type.Values.Select(v => v.Name));

    private static string Quote(string text) => Core.Validation.InputLimits.Bounded(text, MaxQuoted);
}
