using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;
using Segmentation.Server.Mapping;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="ProfileIngestion"/>.</summary>
internal sealed class ProfileGrpcService(ProfileIngestion ingestion, RfmModelProvider rfm) : ProfileService.ProfileServiceBase
{
    public override Task<TrackEventResponse> TrackEvent(TrackEventRequest request, ServerCallContext context)
    {
        var result = ingestion.Track(ProfileMapper.ToDomain(request.Event ?? new Event()));
        return Task.FromResult(new TrackEventResponse
        {
            UserId = result.Profile.UserId,
            ProfileVersion = result.Profile.Version,
            Duplicate = result.Duplicate,
        });
    }

    public override Task<SetTraitsResponse> SetTraits(SetTraitsRequest request, ServerCallContext context)
    {
        var traits = request.Traits.ToDictionary(t => t.Key, t => ValueMapper.ToDomain(t.Value), StringComparer.Ordinal);
        var result = ingestion.SetTraits(request.UserId, traits, request.Source, ValueMapper.ToDomain(request.Layer), request.Timestamp?.ToDateTimeOffset());
        return Task.FromResult(new SetTraitsResponse
        {
            ProfileVersion = result.Profile.Version,
            Applied = { result.Applied },
            Ignored = { result.Ignored },
        });
    }

    public override Task<GetProfileResponse> GetProfile(GetProfileRequest request, ServerCallContext context) =>
        Task.FromResult(new GetProfileResponse { Profile = ProfileMapper.ToProto(ingestion.Get(request.UserId), rfm.Current) });
}
