using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Decisions;
using Segmentation.Server.Mapping;

namespace Segmentation.Server.Services;

/// <summary>gRPC adapter for <see cref="DecisionEngine"/>.</summary>
internal sealed class DecisionGrpcService(DecisionEngine engine) : DecisionService.DecisionServiceBase
{
    public override Task<DecideResponse> Decide(DecideRequest request, ServerCallContext context)
    {
        var decision = engine.Decide(new DecisionRequest(
            request.UserId,
            request.AnonymousId,
            DecisionMapper.ToDomain(request.Context, request.Channel),
            ValueMapper.ToDomain(request.Timestamp, "timestamp"),
            request.Explain),
            context.CancellationToken);
        return Task.FromResult(new DecideResponse { Decision = DecisionMapper.ToProto(decision) });
    }

    public override async Task DecideBatch(DecideBatchRequest request, IServerStreamWriter<DecideBatchResponse> responseStream, ServerCallContext context)
    {
        var items = engine.DecideBatch(
            request.UserIds,
            DecisionMapper.ToDomain(request.Context, request.Channel),
            ValueMapper.ToDomain(request.Timestamp, "timestamp"),
            request.Explain,
            PrivacyMapper.BatchPurpose(request.Purpose, request.Channel),
            context.CancellationToken);
        foreach (var item in items)
        {
            var response = new DecideBatchResponse { Index = item.Index, UserId = item.UserId };
            if (item.Decision is not null)
            {
                response.Decision = DecisionMapper.ToProto(item.Decision);
            }
            else if (item.Skipped is { } consent)
            {
                response.Skipped = new DecisionSkipped { Purpose = PrivacyMapper.ToProto(consent.Purpose), Reason = consent.Describe() };
            }
            else
            {
                response.Error = new DecisionError { Code = "INVALID_ARGUMENT", Message = $"{item.Error!.Field}: {item.Error.Description}" };
            }

            await responseStream.WriteAsync(response, context.CancellationToken);
        }
    }
}
