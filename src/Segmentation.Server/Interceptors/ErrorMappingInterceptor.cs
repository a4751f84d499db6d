using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Catalog;
using Segmentation.Core.Validation;

namespace Segmentation.Server.Interceptors;

/// <summary>
/// The one place domain exceptions become gRPC statuses: validation errors become INVALID_ARGUMENT
/// with <c>google.rpc.BadRequest</c> field violations, missing entities NOT_FOUND, catalog errors
/// FAILED_PRECONDITION, storage that cannot write UNAVAILABLE (retryable), abandoned work DEADLINE_EXCEEDED or CANCELLED. Anything unexpected is logged and
/// returned as INTERNAL without exception text. Outside development the log carries the exception's type
/// and stack trace but not its message, which may quote request values such as PII traits (PII is
/// never written to logs).
/// </summary>
internal sealed class ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger) : Interceptor
{
    private readonly RepeatedLogLimit _unexpected = new(perMinute: 5);
    private readonly RepeatedLogLimit _storage = new(perMinute: 5);

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Map(ex, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, CallerStreams.Writing(responseStream), context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Map(ex, context);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(CallerStreams.Reading(requestStream), context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Map(ex, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(CallerStreams.Reading(requestStream), CallerStreams.Writing(responseStream), context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Map(ex, context);
        }
    }

    // How long a caller should wait before retrying a write the storage refused (a full disk is freed by an operator).
    private static readonly TimeSpan StorageRetryAfter = TimeSpan.FromSeconds(5);

    private static RpcException Unavailable(ServerCallContext context, string message, TimeSpan retryAfter)
    {
        RetryAfterOverHttp(context, retryAfter);
        return Unavailable(message, retryAfter);
    }

    private static RpcException Unavailable(string message, TimeSpan retryAfter) => new Google.Rpc.Status
    {
        Code = (int)Code.Unavailable,
        Message = Bounded(message),
        Details = { Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(retryAfter) }) },
    }.ToRpcException();

    // An HTTP/JSON caller reads the delay from Retry-After, as for the refusals the rate limiter answers itself (a gRPC
    // caller from the RetryInfo detail; the header beside it does no harm).
    private static void RetryAfterOverHttp(ServerCallContext context, TimeSpan after)
    {
        if (context.GetHttpContext() is { Response.HasStarted: false } http)
        {
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    // The operating system's message (which names the server's files) goes to the log, not to the caller; rate-limited.
    private void LogStorage(Exception error, ServerCallContext context)
    {
        var method = RoutedMethod.Of(context); // a key per method, however the caller spelled its path
        if (_storage.ShouldLog(error.GetType(), method, out var suppressed))
        {
            logger.LogWarning("A write in {Method} failed in storage: {ExceptionType}: {Message} ({Suppressed} more of the same in the last minute not logged)", method, error.GetType().FullName, error.Message, suppressed);
        }
    }

    /// <summary>Most field violations returned with one error; the status says how many more there were.</summary>
    public const int MaxViolations = 20;

    private const int MaxFieldLength = 128;
    private const int MaxDescriptionLength = 256;

    /// <summary>Longest status message: whatever a message quotes from the request, an error stays small.</summary>
    public const int MaxMessageLength = 1024;

    /// <summary>
    /// Most bytes (UTF-8) of a status message, and of the field violations listed with one error. The message travels
    /// twice (in <c>grpc-message</c>, percent-encoded: up to three bytes per byte, and in the details), the violations once,
    /// base64-encoded: bounded so, an error's metadata stays within the 8 KiB common clients accept (grpc-java and
    /// grpc-core's default), whatever the text quotes and in whatever script.
    /// </summary>
    public const int MaxMessageBytes = 1024;

    /// <inheritdoc cref="MaxMessageBytes"/>
    public const int MaxViolationBytes = 2048;

    private static string Bounded(string message)
    {
        var text = InputLimits.Bounded(message, MaxMessageLength);
        if (System.Text.Encoding.UTF8.GetByteCount(text) <= MaxMessageBytes)
        {
            return text;
        }

        // Cut at a whole character (a surrogate pair is never split) so that it and the ellipsis (3 bytes) fit.
        var budget = MaxMessageBytes - 3;
        var end = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if ((budget -= rune.Utf8SequenceLength) < 0)
            {
                break;
            }

            end += rune.Utf16SequenceLength;
        }

        return string.Concat(text.AsSpan(0, end), "…");
    }

    private RpcException Map(Exception ex, ServerCallContext context)
    {
        if (context.CancellationToken.IsCancellationRequested && ex is not ValidationException)
        {
            // The caller went away or its deadline passed; whatever the exception says, the work was abandoned.
            return context.Deadline <= DateTime.UtcNow
                ? new RpcException(new Grpc.Core.Status(StatusCode.DeadlineExceeded, "the call's deadline passed; the work was abandoned"))
                : new RpcException(new Grpc.Core.Status(StatusCode.Cancelled, "the call was cancelled; the work was abandoned"));
        }

        switch (ex)
        {
            case CallerStreamException:
                // Before the call's cancellation has been seen: not the service's failure, so nothing to log.
                return new RpcException(new Grpc.Core.Status(StatusCode.Cancelled, "the call was cancelled; the work was abandoned"));
            case ValidationException v:
                // The violations travel once, in the details (bounded: a few KB at most); the message names the first few.
                var badRequest = new BadRequest();
                var bytes = 0;
                foreach (var violation in v.Violations.Take(MaxViolations))
                {
                    var listed = new BadRequest.Types.FieldViolation { Field = InputLimits.Bounded(violation.Field, MaxFieldLength), Description = InputLimits.Bounded(violation.Description, MaxDescriptionLength) };
                    if ((bytes += listed.CalculateSize()) > MaxViolationBytes && badRequest.FieldViolations.Count > 0)
                    {
                        break; // counted below with the rest
                    }

                    badRequest.FieldViolations.Add(listed);
                }

                if (v.Violations.Count - badRequest.FieldViolations.Count + v.Unlisted is var more and > 0)
                {
                    badRequest.FieldViolations.Add(new BadRequest.Types.FieldViolation { Field = "", Description = $"{more} more violations not listed" });
                }

                return new Google.Rpc.Status
                {
                    Code = (int)Code.InvalidArgument,
                    Message = Bounded(v.Message),
                    Details = { Any.Pack(badRequest) },
                }.ToRpcException();
            case NotFoundException nf:
                return new RpcException(new Grpc.Core.Status(StatusCode.NotFound, Bounded(nf.Message)));
            case PreconditionFailedException pf:
                return new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, Bounded(pf.Message)));
            case ConcurrencyConflictException cc:
                return new RpcException(new Grpc.Core.Status(StatusCode.Aborted, Bounded(cc.Message)));
            case Security.RateLimitExceededException rl:
                RetryAfterOverHttp(context, rl.RetryAfter);
                return new Google.Rpc.Status
                {
                    Code = (int)Code.ResourceExhausted,
                    Message = Bounded(rl.Message),
                    Details = { Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(rl.RetryAfter) }) },
                }.ToRpcException();
            case Core.Validation.LimitExceededException le:
                return new RpcException(new Grpc.Core.Status(StatusCode.ResourceExhausted, Bounded(le.Message)));
            case NotReadyException nr:
                return Unavailable(context, nr.Message, nr.RetryAfter);
            case Core.Application.Membership.FeedOffsetException fo:
                // Machine-readable too: a consumer resynchronises, then continues from the oldest retained or newest offset.
                return new Google.Rpc.Status
                {
                    Code = (int)Code.OutOfRange,
                    Message = Bounded(fo.Message),
                    Details =
                    {
                        Any.Pack(new ErrorInfo
                        {
                            Reason = "CHANGE_OFFSET_NOT_RETAINED",
                            Domain = "segmentation.v1",
                            Metadata = { ["oldest_offset"] = fo.Oldest.ToString(System.Globalization.CultureInfo.InvariantCulture), ["newest_offset"] = fo.Last.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                        }),
                    },
                }.ToRpcException();
            case StorageUnavailableException su:
                LogStorage(su.InnerException ?? su, context);
                return Unavailable(context, su.Message, StorageRetryAfter);
            case IOException or UnauthorizedAccessException when ex is not Microsoft.AspNetCore.Connections.ConnectionResetException and not BadHttpRequestException: // those two are the caller's connection
                // A write the data directory refused where no code named the failure (a catalog version, a saved state):
                // as retryable as a change log that cannot write, never INTERNAL.
                LogStorage(ex, context);
                return Unavailable(context, $"the data directory could not be written ({StorageUnavailableException.Describe(ex)}): retry later", StorageRetryAfter);
            case CatalogException ce:
                return new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, Bounded(ce.Message)));
            default:
                var method = RoutedMethod.Of(context); // a key per method, however the caller spelled its path
                if (_unexpected.ShouldLog(ex.GetType(), method, out var suppressed))
                {
                    // Outside Development the logger factory drops the exception's message (it may quote personal data).
                    logger.LogError(ex, "Unhandled {ExceptionType} in {Method} ({Suppressed} more of the same in the last minute not logged)", ex.GetType().FullName, method, suppressed);
                }

                return new RpcException(new Grpc.Core.Status(StatusCode.Internal, "internal error; see server logs"));
        }
    }

}

/// <summary>The method of a call as routing resolved it.</summary>
internal static class RoutedMethod
{
    /// <summary>
    /// The routed method's full name, never the path as spelled: routing ignores case and a trailing slash, so
    /// '/segmentation.v1.privacyservice/exportuser' is ExportUser (audited as it, and one key of a log limit, not one
    /// per spelling).
    /// </summary>
    public static string Of(ServerCallContext context) =>
        context.GetHttpContext().GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method.FullName ?? context.Method;
}
