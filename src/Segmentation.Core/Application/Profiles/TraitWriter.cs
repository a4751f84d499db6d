using Segmentation.Core.Application.Changes;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Writes declared or observed traits: names must be declared in the catalog schema and values must have
/// the declared type; each is stored under the layer hierarchy (a less reliable layer never replaces a
/// more reliable one), logged write-ahead and derived before the call returns.
/// </summary>
public sealed class TraitWriter
{
    private readonly ProfileWriter _writer;

    internal TraitWriter(ProfileWriter writer) => _writer = writer;

    /// <summary>
    /// Validates and writes traits (see <see cref="InputLimits"/> for the bounds). Throws
    /// <see cref="ValidationException"/> with every problem when any is invalid; nothing is stored then.
    /// </summary>
    public SetTraitsResult SetTraits(string userId, IReadOnlyDictionary<string, object?> traits, string source, AttributeLayer layer, DateTimeOffset? at)
    {
        ArgumentNullException.ThrowIfNull(traits);
        var schema = _writer.Catalogs.Current.Traits;
        var v = new ViolationList();
        v.RequiredId("user_id", userId);
        v.Required("source", source, InputLimits.MaxSourceLength);
        if (traits.Count is 0 or > InputLimits.MaxTraitsPerWrite)
        {
            v.Add("traits", $"between 1 and {InputLimits.MaxTraitsPerWrite} traits are required (got {traits.Count})");
        }

        if (!Enum.IsDefined(layer))
        {
            v.Add("layer", $"unknown data layer {(int)layer}"); // an undefined layer would outrank every real one
        }

        var now = _writer.Time.GetUtcNow();
        var when = at ?? now;
        if (when > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", "must not be in the future");
        }
        else if (when > now)
        {
            when = now; // a little ahead (clock skew) is taken as now, as for consent: it must never outrank a write made after it
        }

        if (traits.Count > InputLimits.MaxTraitsPerWrite)
        {
            v.ThrowIfAny(); // too many to look at one by one
        }

        var attributes = new List<ProfileAttribute>();
        List<string>? derivedByService = null;
        foreach (var (name, value) in traits.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            if (name.Length > InputLimits.MaxTraitNameLength)
            {
                v.Add("traits", $"trait names are at most {InputLimits.MaxTraitNameLength} characters ('{name[..InputLimits.MaxTraitNameLength]}…')");
                continue;
            }

            var field = $"traits[{name}]";
            if (!schema.TryGetValue(name, out var definition))
            {
                v.Add(field, $"unknown trait '{name}': declare it in the catalog schema");
                continue;
            }

            var problem = CheckValue(definition.Type, value);
            if (problem is not null)
            {
                v.Add(field, problem);
                continue;
            }

            if (layer == AttributeLayer.Derived && Scoring.DerivedScores.Traits.ContainsKey(name))
            {
                // The service derives it at every write in this layer: the value would be replaced in the same write (first-
                // or zero-party data wins over the derived value). Ignored, as a value a more reliable layer holds is.
                (derivedByService ??= []).Add(name);
                continue;
            }

            attributes.Add(new ProfileAttribute(name, value!, layer, source, when).Shared(definition.Name, definition.Pii));
        }

        v.ThrowIfAny();
        var applied = new List<string>();
        var ignored = new List<string>();
        if (attributes.Count == 0)
        {
            return new SetTraitsResult(_writer.Store.Get(userId) ?? new Profile(userId), applied, derivedByService ?? []); // nothing to write
        }

        var update = Apply(userId, attributes, _writer.Live(now), source, applied, ignored);
        ignored.AddRange(derivedByService ?? []);
        return new SetTraitsResult(update.After, applied, ignored);
    }

    /// <summary>
    /// Under the user's lock: applies the attributes under the layer hierarchy; when any is stored, logs the
    /// write (write-ahead) before the new profile is published, then derives.
    /// </summary>
    internal ProfileUpdate Apply(string userId, IReadOnlyList<ProfileAttribute> attributes, WriteStamp stamp, string source, List<string>? applied, List<string>? ignored) =>
        _writer.Store.Update(
            userId,
            (p, version) =>
            {
                applied?.Clear();
                ignored?.Clear();
                if (stamp.AlreadyIn(p))
                {
                    return p;
                }

                var profile = p;
                foreach (var attribute in attributes)
                {
                    if (profile.TrySetAttribute(attribute, version, out var next))
                    {
                        profile = next;
                        applied?.Add(attribute.Name);
                    }
                    else
                    {
                        ignored?.Add(attribute.Name);
                    }
                }

                if (ReferenceEquals(profile, p))
                {
                    return p;
                }

                if (stamp.Log)
                {
                    _writer.Log.Append(stamp.Stamp(new TraitsChange(userId, [.. attributes.Select(LoggedAttribute.From)]), version));
                }

                return _writer.Derive(profile, stamp, $"traits:{source}");
            },
            stamp.Version);

    private static string? CheckValue(FieldType type, object? value) => (type, value) switch
    {
        (_, null) => "a value is required",
        (FieldType.String, string s) => s.Length > InputLimits.MaxStringTraitLength ? $"must be at most {InputLimits.MaxStringTraitLength} characters" : null,
        (FieldType.Number, double d) => double.IsFinite(d) ? null : "must be a finite number",
        (FieldType.Bool, bool) => null,
        (FieldType.Timestamp, DateTimeOffset t) => t >= InputLimits.EarliestTimestamp && t < InputLimits.LatestTimestamp ? null : "must be between 1800-01-01 and 2199-12-31",
        (FieldType.List, IReadOnlyList<string> l) => l.Count > InputLimits.MaxListValues || l.Any(x => x.Length > InputLimits.MaxListValueLength)
            ? $"at most {InputLimits.MaxListValues} values of at most {InputLimits.MaxListValueLength} characters"
            : null,
        _ => $"must be a {type.ToString().ToLowerInvariant()} (the type declared in the catalog schema)",
    };
}
