using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Services;

/// <summary>
/// A bare no-op RPC: the baseline that load tests compare Decide against (same server, same
/// pipeline and interceptors, same payload size, no domain work).
/// </summary>
internal sealed class DiagnosticsGrpcService : DiagnosticsService.DiagnosticsServiceBase
{
    public override Task<EchoResponse> Echo(EchoRequest request, ServerCallContext context) =>
        Task.FromResult(new EchoResponse { Payload = request.Payload });
}
