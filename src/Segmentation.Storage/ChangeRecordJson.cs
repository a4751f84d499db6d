using System.Text.Json;
using System.Text.Json.Serialization;
using Segmentation.Core.Application.Changes;

namespace Segmentation.Storage;

/// <summary>Source-generated JSON metadata for change records (the payload of the log's frames and of snapshot state records).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ChangeRecord))]
[JsonSerializable(typeof(LoggedAttribute))]
internal sealed partial class ChangeRecordJson : JsonSerializerContext;

/// <summary>Sealing of personal-data attribute values in change records before they reach the disk.</summary>
internal static class PiiSealing
{
    /// <summary>This record with its value encrypted (name, layer, source and time stay readable).</summary>
    public static LoggedAttribute Seal(this LoggedAttribute attribute, PiiProtector pii)
    {
        ArgumentNullException.ThrowIfNull(pii);
        var plain = JsonSerializer.SerializeToUtf8Bytes(attribute with { Sealed = null }, ChangeRecordJson.Default.LoggedAttribute);
        return new LoggedAttribute(attribute.Name, attribute.Layer, attribute.Source, attribute.UpdatedAt, Sealed: Convert.ToBase64String(pii.Seal(attribute.Name, plain)));
    }

    /// <summary>The record with its value decrypted (itself when it is not sealed).</summary>
    /// <exception cref="InvalidDataException">The value cannot be decrypted with this key.</exception>
    public static LoggedAttribute Open(this LoggedAttribute attribute, PiiProtector pii)
    {
        ArgumentNullException.ThrowIfNull(pii);
        if (attribute.Sealed is null)
        {
            return attribute;
        }

        var plain = pii.Open(attribute.Name, Convert.FromBase64String(attribute.Sealed));
        var opened = JsonSerializer.Deserialize(plain, ChangeRecordJson.Default.LoggedAttribute)
            ?? throw new InvalidDataException($"sealed value of attribute '{attribute.Name}' is empty");
        return opened with { Name = attribute.Name, Sealed = null };
    }
}
