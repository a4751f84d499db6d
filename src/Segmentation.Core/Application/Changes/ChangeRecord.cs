using System.Text.Json.Serialization;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.Changes;

/// <summary>
/// One accepted change of the profile store, as written to the change log: an event, a traits write,
/// an identity merge, a consent grant or withdrawal, an erasure, events removed by retention, or a
/// recomputed RFM model. Replaying the records in log order rebuilds the store exactly as it was
/// acknowledged: each record carries the profile version its write produced, the time it was applied and
/// the RFM model its derived data was computed with, and replay uses those instead of its own.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "k")]
[JsonDerivedType(typeof(EventChange), "event")]
[JsonDerivedType(typeof(TraitsChange), "traits")]
[JsonDerivedType(typeof(MergeChange), "merge")]
[JsonDerivedType(typeof(ConsentChange), "consent")]
[JsonDerivedType(typeof(ForgetChange), "forget")]
[JsonDerivedType(typeof(ExpireChange), "expire")]
[JsonDerivedType(typeof(RfmModelChange), "rfm")]
public abstract record ChangeRecord
{
    /// <summary>
    /// The profile version the write produced (0 in records of older logs, and for records that change no
    /// profile). On replay a profile already at this version or later holds the change and skips it.
    /// </summary>
    [JsonPropertyName("v")]
    public long Version { get; init; }

    /// <summary>When the write was applied (server clock, UTC ticks); 0 in records of older logs, which replay at the replay time.</summary>
    [JsonPropertyName("t")]
    public long AppliedTicks { get; init; }

    /// <summary>The version of the RFM model the write's derived data was computed with (0: unknown, replay uses the current one).</summary>
    [JsonPropertyName("m")]
    public long RfmVersion { get; init; }
}

/// <summary>An accepted event for the profile <paramref name="Key"/> (user id, else anonymous id, as sent).</summary>
/// <param name="Key">The profile key the event was sent for; identity links are followed on replay.</param>
/// <param name="Event">The stored form of the validated event.</param>
public sealed record EventChange(string Key, StoredEvent Event) : ChangeRecord;

/// <summary>A traits write: the validated attributes of one call, with layer, source and time.</summary>
/// <param name="UserId">The user written to.</param>
/// <param name="Attributes">The attributes of the call (the layer hierarchy is applied again on replay).</param>
public sealed record TraitsChange(string UserId, IReadOnlyList<LoggedAttribute> Attributes) : ChangeRecord;

/// <summary>An identity merge: <paramref name="AnonymousId"/> stitched to <paramref name="UserId"/>.</summary>
/// <param name="AnonymousId">The anonymous or session id.</param>
/// <param name="UserId">The known user.</param>
public sealed record MergeChange(string AnonymousId, string UserId) : ChangeRecord;

/// <summary>
/// A consent grant or withdrawal for the profile <paramref name="Key"/> (user id, else anonymous id, as
/// sent; identity links are followed on replay). Replaying it twice adds it to the trail once.
/// </summary>
/// <param name="Key">The profile key the consent was recorded for.</param>
/// <param name="Consent">The grant or withdrawal.</param>
public sealed record ConsentChange(string Key, ConsentRecord Consent) : ChangeRecord;

/// <summary>
/// An erasure (<c>ForgetUser</c>): the profile <paramref name="UserId"/> and every id linked to it are
/// removed, with their identity links. Replaying it removes them again (idempotent). Compaction removes
/// this record itself from disk together with everything it erased.
/// </summary>
/// <param name="UserId">The erased profile's key (the id the request resolved to).</param>
/// <param name="LinkedIds">The anonymous or session ids that were stitched to it, erased with it.</param>
public sealed record ForgetChange(string UserId, IReadOnlyList<string> LinkedIds) : ChangeRecord;

/// <summary>
/// Events removed from one profile by retention, by id (so that replay removes exactly these, whatever
/// the retention configuration is at the time of the replay).
/// </summary>
/// <param name="UserId">The profile key.</param>
/// <param name="EventIds">The ids of the removed events.</param>
public sealed record ExpireChange(string UserId, IReadOnlyList<string> EventIds) : ChangeRecord;

/// <summary>A recomputed RFM model, logged before it is published (see <see cref="RfmModel"/> for why twelve numbers are enough).</summary>
/// <param name="ModelVersion">The model's version.</param>
/// <param name="ComputedAt">When it was computed.</param>
/// <param name="Customers">Customers in its population.</param>
/// <param name="Recency">Recency boundaries (UTC ticks).</param>
/// <param name="Frequency">Frequency boundaries (orders).</param>
/// <param name="Monetary">Monetary boundaries (net revenue).</param>
public sealed record RfmModelChange(long ModelVersion, DateTimeOffset ComputedAt, int Customers, IReadOnlyList<long> Recency, IReadOnlyList<int> Frequency, IReadOnlyList<double> Monetary) : ChangeRecord
{
    /// <summary>The logged form of a model.</summary>
    public static RfmModelChange From(RfmModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new RfmModelChange(model.Version, model.ComputedAt, model.Customers, model.RecencyBoundaries, model.FrequencyBoundaries, model.MonetaryBoundaries);
    }

    /// <summary>The model this record describes.</summary>
    /// <exception cref="InvalidDataException">The boundaries are not a valid model.</exception>
    public RfmModel ToModel()
    {
        try
        {
            return RfmModel.FromBoundaries(ModelVersion, ComputedAt, Customers, Recency, Frequency, Monetary);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException($"logged RFM model v{ModelVersion} is invalid: {ex.Message}", ex);
        }
    }
}

/// <summary>The JSON form of a <see cref="ProfileAttribute"/>: the value is held in the member of its type.</summary>
/// <param name="Name">Attribute name.</param>
/// <param name="Layer">Data layer.</param>
/// <param name="Source">Recording system.</param>
/// <param name="UpdatedAt">When it was recorded.</param>
/// <param name="String">The value when it is a string.</param>
/// <param name="Number">The value when it is a number.</param>
/// <param name="Bool">The value when it is a boolean.</param>
/// <param name="Time">The value when it is a timestamp.</param>
/// <param name="List">The value when it is a list of strings.</param>
/// <param name="Sealed">The value encrypted (base64) when the attribute is personal data and the store seals it at rest; the value members are then empty.</param>
public sealed record LoggedAttribute(
    string Name,
    AttributeLayer Layer,
    string Source,
    DateTimeOffset UpdatedAt,
    string? String = null,
    double? Number = null,
    bool? Bool = null,
    DateTimeOffset? Time = null,
    IReadOnlyList<string>? List = null,
    string? Sealed = null)
{
    /// <summary>The logged form of an attribute.</summary>
    public static LoggedAttribute From(ProfileAttribute a) => a.Value switch
    {
        string s => new LoggedAttribute(a.Name, a.Layer, a.Source, a.UpdatedAt, String: s),
        double d => new LoggedAttribute(a.Name, a.Layer, a.Source, a.UpdatedAt, Number: d),
        bool b => new LoggedAttribute(a.Name, a.Layer, a.Source, a.UpdatedAt, Bool: b),
        DateTimeOffset t => new LoggedAttribute(a.Name, a.Layer, a.Source, a.UpdatedAt, Time: t),
        IReadOnlyList<string> l => new LoggedAttribute(a.Name, a.Layer, a.Source, a.UpdatedAt, List: l.ToArray()),
        _ => throw new ArgumentException($"attribute '{a.Name}' has a value of unsupported type {a.Value.GetType().Name}", nameof(a)),
    };

    /// <summary>The attribute this record describes.</summary>
    public ProfileAttribute ToAttribute()
    {
        object value = String is not null ? String
            : Number is { } d ? d
            : Bool is { } b ? b
            : Time is { } t ? t
            : List is not null ? List
            : throw new InvalidDataException($"logged attribute '{Name}' has no value");
        return new ProfileAttribute(Name, value, Layer, Source, UpdatedAt);
    }
}
