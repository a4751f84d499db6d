using Google.Protobuf;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Validation;

namespace Segmentation.Server.Services;

/// <summary>
/// Bare no-op RPCs: the baselines that load tests compare Decide and StreamEvents against (same server, same pipeline
/// and interceptors, same bytes moved, no domain work).
/// </summary>
internal sealed class DiagnosticsGrpcService : DiagnosticsService.DiagnosticsServiceBase
{
    /// <summary>The largest <c>response_bytes</c> an EchoStream message may ask for (4 MiB).</summary>
    public const int MaxEchoResponseBytes = 4 * 1024 * 1024;

    // As many answers wait to be written as StreamEvents lets one-event messages wait.
    private const int MaxQueuedAnswers = 4096;

    public override Task<EchoResponse> Echo(EchoRequest request, ServerCallContext context) =>
        Task.FromResult(new EchoResponse { Payload = request.Payload });

    public override Task EchoStream(IAsyncStreamReader<EchoStreamRequest> requestStream, IServerStreamWriter<EchoStreamResponse> responseStream, ServerCallContext context)
    {
        // A stream asks for the same size message after message: its payload is made once per size change.
        var payload = ByteString.Empty;
        return PipelinedStream.RunAsync(requestStream, responseStream, MaxQueuedAnswers, weigh: static message =>
            message.ResponseBytes <= MaxEchoResponseBytes
                ? 1
                : throw new ValidationException("response_bytes", $"at most {MaxEchoResponseBytes} bytes (got {message.ResponseBytes})"),
            answer: message =>
            {
                if (payload.Length != message.ResponseBytes)
                {
                    payload = ByteString.CopyFrom(new byte[message.ResponseBytes]);
                }

                return new EchoStreamResponse { Payload = payload };
            }, context.CancellationToken);
    }
}
