using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;
using Domain = Segmentation.Core.Profiles;

namespace Segmentation.Server.Mapping;

/// <summary>Maps consent between protobuf and the domain.</summary>
internal static class PrivacyMapper
{
    /// <summary>The domain purpose; throws a validation error for an unspecified or unknown one.</summary>
    public static Domain.ConsentPurpose ToDomain(Contracts.V1.ConsentPurpose purpose, string field) =>
        ToDomainOrNull(purpose) ?? throw new ValidationException(field, "must be one of CONSENT_PURPOSE_PERSONALIZATION, _ANALYTICS, _EMAIL_MARKETING, _ADVERTISING");

    public static Domain.ConsentPurpose? ToDomainOrNull(Contracts.V1.ConsentPurpose purpose) => purpose switch
    {
        Contracts.V1.ConsentPurpose.Personalization => Domain.ConsentPurpose.Personalization,
        Contracts.V1.ConsentPurpose.Analytics => Domain.ConsentPurpose.Analytics,
        Contracts.V1.ConsentPurpose.EmailMarketing => Domain.ConsentPurpose.EmailMarketing,
        Contracts.V1.ConsentPurpose.Advertising => Domain.ConsentPurpose.Advertising,
        _ => null,
    };

    /// <summary>
    /// The purpose a DecideBatch checks: the one given, else derived from the channel (email → email
    /// marketing, ads → advertising), else none.
    /// </summary>
    public static Domain.ConsentPurpose? BatchPurpose(Contracts.V1.ConsentPurpose purpose, Channel channel) =>
        purpose != Contracts.V1.ConsentPurpose.Unspecified
            ? ToDomain(purpose, "purpose")
            : channel switch
            {
                Channel.Email => Domain.ConsentPurpose.EmailMarketing,
                Channel.Ads => Domain.ConsentPurpose.Advertising,
                _ => null,
            };

    public static Contracts.V1.ConsentPurpose ToProto(Domain.ConsentPurpose purpose) => purpose switch
    {
        Domain.ConsentPurpose.Personalization => Contracts.V1.ConsentPurpose.Personalization,
        Domain.ConsentPurpose.Analytics => Contracts.V1.ConsentPurpose.Analytics,
        Domain.ConsentPurpose.EmailMarketing => Contracts.V1.ConsentPurpose.EmailMarketing,
        Domain.ConsentPurpose.Advertising => Contracts.V1.ConsentPurpose.Advertising,
        _ => Contracts.V1.ConsentPurpose.Unspecified,
    };

    public static ConsentEntry ToProto(ConsentRecord r) => new()
    {
        Purpose = ToProto(r.Purpose),
        Granted = r.Granted,
        Source = r.Source,
        Timestamp = Timestamp.FromDateTimeOffset(r.At),
    };

    public static ConsentState ToProto(ConsentStatus s)
    {
        var state = new ConsentState { Purpose = ToProto(s.Purpose), Granted = s.Granted, Recorded = s.Recorded };
        if (s.Latest is { } latest)
        {
            state.Latest = ToProto(latest);
        }

        return state;
    }
}
