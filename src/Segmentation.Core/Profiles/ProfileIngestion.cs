using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Rules;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Profiles;

/// <summary>
/// The one way data gets into profiles: validates events and traits, then applies them to the store.
/// Used by the gRPC services and by the demo importer alike.
/// </summary>
public sealed class ProfileIngestion(IProfileStore store, CatalogProvider catalogs, TimeProvider time)
{
    /// <summary>Maximum traits per write.</summary>
    public const int MaxTraits = 100;

    /// <summary>Validates and records one event.</summary>
    public TrackResult Track(BehaviourEvent e)
    {
        EventValidator.Validate(e, time.GetUtcNow());
        return store.Track(e);
    }

    /// <summary>
    /// Validates and writes traits. Names must be declared in the catalog schema and values must have
    /// the declared type; lists are at most 100 strings of at most 256 characters.
    /// </summary>
    public SetTraitsResult SetTraits(string userId, IReadOnlyDictionary<string, object?> traits, string source, AttributeLayer layer, DateTimeOffset? at)
    {
        var schema = catalogs.Current.Traits;
        var v = new ViolationList();
        v.Required("user_id", userId, 256);
        v.Required("source", source, 64);
        if (traits.Count is 0 or > MaxTraits)
        {
            v.Add("traits", $"between 1 and {MaxTraits} traits are required (got {traits.Count})");
        }

        var now = time.GetUtcNow();
        var when = at ?? now;
        if (when > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", "must not be in the future");
        }

        var attributes = new List<ProfileAttribute>();
        foreach (var (name, value) in traits.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var field = $"traits[{name}]";
            if (!schema.TryGetValue(name, out var definition))
            {
                v.Add(field, $"unknown trait '{(name.Length > 64 ? name[..64] : name)}': declare it in the catalog schema");
                continue;
            }

            var problem = CheckValue(definition.Type, value);
            if (problem is not null)
            {
                v.Add(field, problem);
                continue;
            }

            attributes.Add(new ProfileAttribute(name, value!, layer, source, when));
        }

        v.ThrowIfAny();
        return store.SetAttributes(userId, attributes);
    }

    /// <summary>Returns a profile or throws <see cref="NotFoundException"/>.</summary>
    public Profile Get(string userId)
    {
        if (string.IsNullOrEmpty(userId))
        {
            throw new ValidationException("user_id", "is required");
        }

        return store.Get(userId) ?? throw new NotFoundException($"no profile for user '{userId}'");
    }

    private static string? CheckValue(FieldType type, object? value) => (type, value) switch
    {
        (_, null) => "a value is required",
        (FieldType.String, string s) => s.Length > 1024 ? "must be at most 1024 characters" : null,
        (FieldType.Number, double d) => double.IsFinite(d) ? null : "must be a finite number",
        (FieldType.Bool, bool) => null,
        (FieldType.Timestamp, DateTimeOffset) => null,
        (FieldType.List, IReadOnlyList<string> l) => l.Count > 100 || l.Any(x => x.Length > 256) ? "at most 100 values of at most 256 characters" : null,
        _ => $"must be a {type.ToString().ToLowerInvariant()} (the type declared in the catalog schema)",
    };
}
