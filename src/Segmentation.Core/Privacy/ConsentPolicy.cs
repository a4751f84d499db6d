using Segmentation.Core.Profiles;

namespace Segmentation.Core.Privacy;

/// <summary>A user's consent for one purpose as it applies now.</summary>
/// <param name="Purpose">The purpose.</param>
/// <param name="Granted">Whether the purpose is allowed.</param>
/// <param name="Latest">The latest recorded grant or withdrawal, or null when none was recorded (the default applied).</param>
public readonly record struct ConsentStatus(ConsentPurpose Purpose, bool Granted, ConsentRecord? Latest)
{
    /// <summary>True when the status comes from a recorded grant or withdrawal rather than the default.</summary>
    public bool Recorded => Latest is not null;

    /// <summary>A one-line description, for explanations and skip reasons.</summary>
    public string Describe()
    {
        var purpose = ConsentPolicy.NameOf(Purpose);
        return Latest is { } r
            ? $"{purpose} consent {(r.Granted ? "granted" : "withdrawn")} by '{r.Source}' at {r.At:O}"
            : $"{purpose} consent never recorded: {(Granted ? "granted" : "not granted")} by default";
    }
}

/// <summary>Which data a decision or membership evaluation was allowed to read.</summary>
public enum ConsentGate
{
    /// <summary>Personalization consent applies: the whole profile and the request context were read.</summary>
    FullProfile = 1,

    /// <summary>
    /// No personalization consent: only the request context was read, as for an unknown visitor, so only
    /// contextual segments or the fallback can win.
    /// </summary>
    ContextOnly = 2,
}

/// <summary>
/// What unknown consent means, and the current consent of a profile. Without a recorded grant or
/// withdrawal, personalization is granted (the storefront's legitimate-interest default) unless
/// <see cref="RequireExplicitConsent"/> is set; every other purpose (analytics, email marketing,
/// advertising) is not granted until the user grants it. The latest record per purpose (by time) wins.
/// </summary>
/// <param name="RequireExplicitConsent">When true, personalization too needs a recorded grant.</param>
public sealed record ConsentPolicy(bool RequireExplicitConsent = false)
{
    /// <summary>The default policy: personalization granted unless withdrawn, everything else opt-in.</summary>
    public static readonly ConsentPolicy Default = new();

    /// <summary>Every purpose, in declaration order.</summary>
    public static readonly IReadOnlyList<ConsentPurpose> Purposes = [ConsentPurpose.Personalization, ConsentPurpose.Analytics, ConsentPurpose.EmailMarketing, ConsentPurpose.Advertising];

    /// <summary>Whether a purpose is granted when the user never recorded consent for it.</summary>
    public bool DefaultFor(ConsentPurpose purpose) => purpose == ConsentPurpose.Personalization && !RequireExplicitConsent;

    /// <summary>The consent for <paramref name="purpose"/> of a profile (null: an unknown user, for whom the default applies).</summary>
    public ConsentStatus Status(Profile? profile, ConsentPurpose purpose)
    {
        var latest = profile?.LatestConsent(purpose);
        return new ConsentStatus(purpose, latest?.Granted ?? DefaultFor(purpose), latest);
    }

    /// <summary>The gate for evaluating a profile: full profile with personalization consent, else context only.</summary>
    public ConsentGate Gate(Profile? profile) =>
        Status(profile, ConsentPurpose.Personalization).Granted ? ConsentGate.FullProfile : ConsentGate.ContextOnly;

    /// <summary>
    /// The profile as evaluation may see it: itself with personalization consent, else an empty profile
    /// with the same id (population statistics such as audits and previews count the user without reading
    /// their data).
    /// </summary>
    public Profile GatedView(Profile profile) => Gate(profile) == ConsentGate.FullProfile ? profile : new Profile(profile.UserId);

    /// <summary>The snake_case name of a purpose (<c>email_marketing</c>).</summary>
    public static string NameOf(ConsentPurpose purpose) => purpose switch
    {
        ConsentPurpose.Personalization => "personalization",
        ConsentPurpose.Analytics => "analytics",
        ConsentPurpose.EmailMarketing => "email_marketing",
        ConsentPurpose.Advertising => "advertising",
        _ => purpose.ToString(),
    };
}
