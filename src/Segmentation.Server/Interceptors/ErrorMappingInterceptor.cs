using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Segmentation.Core.Catalog;
using Segmentation.Core.Storage;
using Segmentation.Core.Validation;

namespace Segmentation.Server.Interceptors;

/// <summary>
/// The one place domain exceptions become gRPC statuses: validation errors become INVALID_ARGUMENT
/// with <c>google.rpc.BadRequest</c> field violations, missing entities NOT_FOUND, catalog errors
/// FAILED_PRECONDITION, storage that cannot write UNAVAILABLE (retryable), abandoned work DEADLINE_EXCEEDED or CANCELLED. Anything unexpected is logged and
/// returned as INTERNAL without exception text. Outside development the log carries the exception's type
/// and stack trace but not its message, which may quote request values such as PII traits (F9: PII is
/// never written to logs).
/// </summary>
internal sealed class ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger, IHostEnvironment environment) : Interceptor
{
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
            await continuation(request, responseStream, context);
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
            return await continuation(requestStream, context);
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
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw Map(ex, context);
        }
    }

    private RpcException Map(Exception ex, ServerCallContext context)
    {
        switch (ex)
        {
            case ValidationException v:
                var badRequest = new BadRequest();
                foreach (var violation in v.Violations)
                {
                    badRequest.FieldViolations.Add(new BadRequest.Types.FieldViolation { Field = violation.Field, Description = violation.Description });
                }

                return new Google.Rpc.Status
                {
                    Code = (int)Code.InvalidArgument,
                    Message = v.Message,
                    Details = { Any.Pack(badRequest) },
                }.ToRpcException();
            case NotFoundException nf:
                return new RpcException(new Grpc.Core.Status(StatusCode.NotFound, nf.Message));
            case StorageUnavailableException su:
                return new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, su.Message));
            case CatalogException ce:
                return new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, ce.Message));
            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return context.Deadline <= DateTime.UtcNow
                    ? new RpcException(new Grpc.Core.Status(StatusCode.DeadlineExceeded, "the call's deadline passed; the work was abandoned"))
                    : new RpcException(new Grpc.Core.Status(StatusCode.Cancelled, "the call was cancelled; the work was abandoned"));
            default:
                if (environment.IsDevelopment())
                {
                    logger.LogError(ex, "Unhandled error in {Method}", context.Method);
                }
                else
                {
                    logger.LogError("Unhandled {ExceptionType} in {Method} (message not logged: it may contain personal data){NewLine}{StackTrace}", ex.GetType().FullName, context.Method, Environment.NewLine, ex.StackTrace);
                }

                return new RpcException(new Grpc.Core.Status(StatusCode.Internal, "internal error; see server logs"));
        }
    }
}
