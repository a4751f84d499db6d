using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Audit;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for the <see cref="AdminAuditTrail"/>.</summary>
internal sealed class AuditGrpcService(AdminAuditTrail trail) : AuditService.AuditServiceBase
{
    public override Task<ListAuditEntriesResponse> ListAuditEntries(ListAuditEntriesRequest request, ServerCallContext context)
    {
        var page = trail.List(request.PageSize, request.PageToken, request.Action, request.Actor, request.UserId);
        var response = new ListAuditEntriesResponse { NextPageToken = page.NextPageToken };
        foreach (var e in page.Entries)
        {
            response.Entries.Add(new Contracts.V1.AuditEntry
            {
                Sequence = e.Sequence,
                Time = Timestamp.FromDateTimeOffset(e.At),
                Actor = e.Actor,
                Action = e.Action,
                Outcome = e.Outcome,
                UserId = e.UserId,
                Detail = e.Detail,
            });
        }

        return Task.FromResult(response);
    }
}
