using Google.Protobuf;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Core.Validation;
using Segmentation.Server.Security;

namespace Segmentation.Server.Services;

/// <summary>
/// Bare no-op RPCs: the baselines that load tests compare Decide and StreamEvents against (same server, same pipeline
/// and interceptors, same bytes moved, no domain work). EchoStream's messages are charged to the caller's ingestion rate
/// limit as StreamEvents' events are: the baseline pays for the limiter, and is no unmetered stream.
/// </summary>
internal sealed class DiagnosticsGrpcService(StreamRateLimits rateLimits, IHostApplicationLifetime lifetime) : DiagnosticsService.DiagnosticsServiceBase
{
    /// <summary>The largest <c>response_bytes</c> an EchoStream message may ask for (64 KiB; a stream result is ~100 B).</summary>
    public const int MaxEchoResponseBytes = 64 * 1024;

    // Every EchoStream answer is a slice of these zeros, never written: asking for bytes allocates none.
    private static readonly byte[] Zeros = new byte[MaxEchoResponseBytes];

    public override Task<EchoResponse> Echo(EchoRequest request, ServerCallContext context) =>
        Task.FromResult(new EchoResponse { Payload = request.ResponseBytes == 0 ? request.Payload : Answer(request.ResponseBytes) });

    // `bytes` zeros, a slice of one array (asking for bytes allocates none).
    private static ByteString Answer(uint bytes) => bytes <= MaxEchoResponseBytes
        ? UnsafeByteOperations.UnsafeWrap(Zeros.AsMemory(0, (int)bytes))
        : throw new ValidationException("response_bytes", $"at most {MaxEchoResponseBytes} bytes (got {bytes})");

    public override Task EchoStream(IAsyncStreamReader<EchoStreamRequest> requestStream, IServerStreamWriter<EchoStreamResponse> responseStream, ServerCallContext context)
    {
        var caller = context.Caller().Name;
        return PipelinedStream.RunAsync(requestStream, responseStream, ProfileGrpcService.MaxQueuedResults, // as many as StreamEvents lets one-event messages wait
            weigh: static message => message.ResponseBytes <= MaxEchoResponseBytes
                ? 1
                : throw new ValidationException("response_bytes", $"at most {MaxEchoResponseBytes} bytes (got {message.ResponseBytes})"),
            answer: (message, _) =>
            {
                rateLimits.Acquire(caller, 1);
                return new EchoStreamResponse { Payload = Answer(message.ResponseBytes) };
            },
            context.CancellationToken,
            lifetime.ApplicationStopping); // as StreamEvents, it stops reading when the server stops (and ends with OK: a baseline has nothing to send again)
    }
}
