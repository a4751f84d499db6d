using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Application.Profiles;
using Segmentation.Server.Mapping;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for consent (<see cref="ProfileIngestion.RecordConsent"/>) and <see cref="DataSubjectRights"/>.</summary>
internal sealed class PrivacyGrpcService(ProfileIngestion ingestion, DataSubjectRights rights) : PrivacyService.PrivacyServiceBase
{
    public override Task<RecordConsentResponse> RecordConsent(RecordConsentRequest request, ServerCallContext context)
    {
        var purpose = PrivacyMapper.ToDomain(request.Purpose, "purpose");
        var result = ingestion.RecordConsent(request.UserId, purpose, request.Granted, request.Source, ValueMapper.ToDomain(request.Timestamp, "timestamp"));
        return Task.FromResult(new RecordConsentResponse
        {
            ProfileVersion = result.Profile.Version,
            Duplicate = result.Duplicate,
            State = PrivacyMapper.ToProto(ingestion.Consent.Status(result.Profile, purpose)),
        });
    }

    public override Task<GetConsentResponse> GetConsent(GetConsentRequest request, ServerCallContext context)
    {
        var view = rights.GetConsent(request.UserId);
        return Task.FromResult(new GetConsentResponse
        {
            UserId = view.UserId,
            States = { view.Purposes.Select(PrivacyMapper.ToProto) },
            Trail = { view.Trail.Select(PrivacyMapper.ToProto) },
        });
    }

    public override async Task<ForgetUserResponse> ForgetUser(ForgetUserRequest request, ServerCallContext context)
    {
        var result = await rights.ForgetAsync(request.UserId);
        return new ForgetUserResponse { UserId = result.UserId, Existed = result.Existed, LinkedIds = { result.LinkedIds } };
    }

    public override Task<ExportUserResponse> ExportUser(ExportUserRequest request, ServerCallContext context)
    {
        var export = rights.Export(request.UserId);
        return Task.FromResult(new ExportUserResponse { UserId = export.UserId, Json = export.Json });
    }

    public override async Task StreamUserExport(StreamUserExportRequest request, IServerStreamWriter<StreamUserExportResponse> responseStream, ServerCallContext context)
    {
        var export = rights.ExportInParts(request.UserId);
        foreach (var part in export.Parts)
        {
            context.CancellationToken.ThrowIfCancellationRequested();
            await responseStream.WriteAsync(new StreamUserExportResponse { UserId = export.UserId, JsonLines = part, EventCount = export.EventCount });
        }
    }
}
