namespace Segmentation.Core.Profiles;

/// <summary>What a user's data may be used for. Consent is recorded per purpose.</summary>
public enum ConsentPurpose
{
    /// <summary>
    /// Personalizing experiences from the user's profile: behavioural, transactional and declared data are
    /// read by Decide and segment membership only while this is granted.
    /// </summary>
    Personalization = 1,

    /// <summary>Measurement and analytics. Recorded and exported; enforced by the systems that analyse.</summary>
    Analytics = 2,

    /// <summary>Marketing email. A <c>DecideBatch</c> for email skips users without it.</summary>
    EmailMarketing = 3,

    /// <summary>Advertising and audience export. A <c>DecideBatch</c> for ads skips users without it.</summary>
    Advertising = 4,
}

/// <summary>One entry of a profile's consent audit trail: a grant or a withdrawal.</summary>
/// <param name="Purpose">The purpose.</param>
/// <param name="Granted">True for a grant, false for a withdrawal.</param>
/// <param name="Source">Where it was given, for example <c>web-banner</c>, <c>preference-centre</c>, <c>crm</c>.</param>
/// <param name="At">When the user gave or withdrew it.</param>
public sealed record ConsentRecord(ConsentPurpose Purpose, bool Granted, string Source, DateTimeOffset At);
