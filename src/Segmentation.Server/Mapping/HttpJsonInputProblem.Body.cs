using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;

namespace Segmentation.Server.Mapping;

/// <summary>Problems of HTTP/JSON request bodies (see the type's other part for what it is).</summary>
internal sealed partial record HttpJsonInputProblem
{
    private const int MaxDepth = 64;

    /// <summary>The first problem of <paramref name="json"/> as a <paramref name="message"/> whose fields are named under <paramref name="prefix"/>, or null when it has none.</summary>
    public static HttpJsonInputProblem? InBody(ReadOnlySpan<byte> json, MessageDescriptor message, string prefix = "")
    {
        if (json.Trim(" \t\r\n"u8).IsEmpty)
        {
            return new(null, "the request body is empty: send a JSON object");
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });
        try
        {
            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return new(null, $"the request body must be a JSON object, not {Describe(ref reader)}");
            }

            if (Message(ref reader, message, prefix) is { } problem)
            {
                return problem;
            }

            reader.Read(); // anything after the object is a syntax error
            return null;
        }
        catch (JsonException ex)
        {
            return new(null, NotJson(ex));
        }
    }

    // Where and why, in the reader's words without its advice to the server's own code ("Change the reader options").
    private static string NotJson(JsonException ex)
    {
        var reason = ex.Message;
        var at = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
        reason = (at > 0 ? reason[..at] : reason).Replace(" Change the reader options.", "", StringComparison.Ordinal).Trim();
        return ex.LineNumber is { } line && ex.BytePositionInLine is { } position
            ? string.Create(CultureInfo.InvariantCulture, $"the request body is not valid JSON (line {line + 1}, byte {position + 1}): {reason}")
            : $"the request body is not valid JSON: {reason}";
    }

    // The reader is on the object's StartObject; returns with it on the matching EndObject.
    private static HttpJsonInputProblem? Message(ref Utf8JsonReader reader, MessageDescriptor message, string prefix)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!TryText(ref reader, out var name))
            {
                return new(prefix.Length == 0 ? null : prefix.TrimEnd('.'), NotText("a property name"));
            }

            var field = FieldNamed(message, name);
            reader.Read();
            if (field is null)
            {
                reader.Skip(); // unknown fields are ignored, as transcoding ignores them
                continue;
            }

            if (Value(ref reader, field, prefix + field.Name) is { } problem)
            {
                return problem;
            }
        }

        return null;
    }

    // The reader is on the field's value; returns with it on the value's last token.
    private static HttpJsonInputProblem? Value(ref Utf8JsonReader reader, FieldDescriptor field, string path)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null; // the field's default
        }

        if (field.IsMap)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return Expected(ref reader, path, "a JSON object (a map of keys to values)");
            }

            var value = field.MessageType.FindFieldByNumber(2);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (!TryText(ref reader, out var key))
                {
                    return new(path, NotText("a key"));
                }

                reader.Read();
                if (Single(ref reader, value, $"{path}[{Quote(key)}]") is { } problem)
                {
                    return problem;
                }
            }

            return null;
        }

        if (field.IsRepeated)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                return Expected(ref reader, path, "a JSON array");
            }

            for (var i = 0; reader.Read() && reader.TokenType != JsonTokenType.EndArray; i++)
            {
                if (Single(ref reader, field, $"{path}[{i.ToString(CultureInfo.InvariantCulture)}]") is { } problem)
                {
                    return problem;
                }
            }

            return null;
        }

        return Single(ref reader, field, path);
    }

    // One value of the field's type (an element of a repeated field, a map's value, or the field itself).
    private static HttpJsonInputProblem? Single(ref Utf8JsonReader reader, FieldDescriptor field, string path)
    {
        var token = reader.TokenType;
        switch (field.FieldType)
        {
            case FieldType.String:
                return token != JsonTokenType.String ? Expected(ref reader, path, "a string")
                    : TryText(ref reader, out _) ? null
                    : new(path, NotText("the string"));
            case FieldType.Bytes:
                return token == JsonTokenType.String ? null : Expected(ref reader, path, "a base64 string");
            case FieldType.Bool:
                return token is JsonTokenType.True or JsonTokenType.False ? null : Expected(ref reader, path, "true or false");
            case FieldType.Double or FieldType.Float:
                return token == JsonTokenType.Number || (token == JsonTokenType.String && NamedNumber(ref reader)) ? null
                    : Expected(ref reader, path, token == JsonTokenType.String ? "a number (in quotes only NaN, Infinity or -Infinity)" : "a number");
            case FieldType.Enum:
                return Enum(ref reader, field.EnumType, path);
            case FieldType.Message or FieldType.Group:
                return Nested(ref reader, field.MessageType, path);
            default: // the integer types
                if (token == JsonTokenType.Number && !reader.TryGetInt64(out _) && !reader.TryGetUInt64(out _))
                {
                    return new(path, $"expected a whole number, got {Describe(ref reader)}");
                }

                return token == JsonTokenType.Number || (token == JsonTokenType.String && WholeNumberText(ref reader)) ? null : Expected(ref reader, path, "a whole number");
        }
    }

    // The strings transcoding reads as a floating-point number: the named values only ("5" in quotes it refuses).
    private static bool NamedNumber(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("NaN"u8) || reader.ValueTextEquals("Infinity"u8) || reader.ValueTextEquals("-Infinity"u8);

    // A whole number in quotes, as 64-bit integers are written in JSON. Judged at least as loosely as transcoding reads
    // it, so a value it takes is never refused here: what is not a number at all ("lots") is named, the rest (a 32-bit
    // field in quotes, a value out of range) is left to its own message.
    private static bool WholeNumberText(ref Utf8JsonReader reader) =>
        TryText(ref reader, out var text)
        && (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out _) || ulong.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out _));

    private static HttpJsonInputProblem? Enum(ref Utf8JsonReader reader, EnumDescriptor type, string path)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            return null; // a number is the service's to judge
        }

        if (reader.TokenType != JsonTokenType.String)
        {
            return Expected(ref reader, path, $"one of {Names(type)}");
        }

        return TryText(ref reader, out var name) ? UnknownEnumValue(type, name, path) : new(path, NotText("the value"));
    }

    private static HttpJsonInputProblem? Nested(ref Utf8JsonReader reader, MessageDescriptor type, string path)
    {
        switch (type.FullName)
        {
            case "google.protobuf.Timestamp":
                return Parsed(ref reader, path, Timestamp.Descriptor, ExpectedTime);
            case "google.protobuf.Duration":
                return Parsed(ref reader, path, Duration.Descriptor, ExpectedDuration);
            case "google.protobuf.FieldMask":
                return reader.TokenType == JsonTokenType.String ? null : Expected(ref reader, path, "a comma-separated list of field paths");
            case "google.protobuf.Value":
                reader.Skip(); // any JSON value
                return null;
            case "google.protobuf.ListValue":
                return Skipped(ref reader, JsonTokenType.StartArray, path, "a JSON array");
            case "google.protobuf.Struct" or "google.protobuf.Any" or "google.protobuf.Empty":
                return Skipped(ref reader, JsonTokenType.StartObject, path, "a JSON object");
        }

        if (IsWrapper(type))
        {
            return Single(ref reader, type.FindFieldByNumber(1), path); // a wrapper is written as the value it wraps
        }

        return reader.TokenType == JsonTokenType.StartObject
            ? Message(ref reader, type, path + ".")
            : Expected(ref reader, path, $"a JSON object (a {type.Name})");
    }

    private static HttpJsonInputProblem? Skipped(ref Utf8JsonReader reader, JsonTokenType start, string path, string expected)
    {
        if (reader.TokenType != start)
        {
            return Expected(ref reader, path, expected);
        }

        reader.Skip();
        return null;
    }

    // A well-known type written as a string: parsed by protobuf's own JSON parser.
    private static HttpJsonInputProblem? Parsed(ref Utf8JsonReader reader, string path, MessageDescriptor type, string expected) =>
        reader.TokenType != JsonTokenType.String ? Expected(ref reader, path, expected)
        : TryText(ref reader, out var text) ? Unparsable(text, type, path, expected)
        : new(path, NotText("the value"));

    // The string the reader is on, unless it is not text: bytes that are not UTF-8, or a \uD800–\uDFFF escape without its pair.
    private static bool TryText(ref Utf8JsonReader reader, out string text)
    {
        try
        {
            text = reader.GetString()!;
            return true;
        }
        catch (InvalidOperationException)
        {
            text = "";
            return false;
        }
    }

    private static string NotText(string what) => $"{what} is not valid text: bytes that are not UTF-8, or a \\uD800–\\uDFFF escape without its pair";

    private static HttpJsonInputProblem Expected(ref Utf8JsonReader reader, string path, string expected) =>
        new(path, $"expected {expected}, got {Describe(ref reader)}");

    // What the reader is on, in words (a value is quoted, shortened).
    private static string Describe(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => TryText(ref reader, out var text) ? $"the string '{Quote(text)}'" : "a string that is not valid text",
        JsonTokenType.Number => $"the number {Quote(Encoding.UTF8.GetString(reader.ValueSpan))}",
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        JsonTokenType.Null => "null",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        _ => reader.TokenType.ToString(),
    };
}
