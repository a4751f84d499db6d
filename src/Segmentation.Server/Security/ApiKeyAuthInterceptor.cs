using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Segmentation.Server.Security;

/// <summary>
/// Authenticates every call by its API key (<c>x-api-key: KEY</c> or <c>authorization: Bearer KEY</c>)
/// and checks the scope the method needs (<see cref="MethodScopes"/>): no or an unknown key is
/// UNAUTHENTICATED, a known key without the scope PERMISSION_DENIED. The caller is attached to the
/// request (<see cref="ApiCallerExtensions.Caller"/>) for per-caller limits. Keys are never logged
/// or echoed.
/// </summary>
internal sealed class ApiKeyAuthInterceptor(ApiKeyRing keys, IOptions<SecurityOptions> options, ILogger<ApiKeyAuthInterceptor> logger) : Interceptor
{
    private readonly bool _disabled = options.Value.DisableAuthentication;

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Authorize(ServerCallContext context)
    {
        var required = MethodScopes.Required(context.Method);
        if (required == ApiScope.None)
        {
            return; // health checks and reflection
        }

        var http = context.GetHttpContext();
        if (_disabled)
        {
            http.Features.Set(ApiCaller.Anonymous);
            return;
        }

        var headers = http.Request.Headers;
        ReadOnlySpan<char> presented = headers["x-api-key"].ToString();
        if (presented.IsEmpty && headers.Authorization.ToString() is { Length: > 7 } authorization
            && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented = authorization.AsSpan(7).Trim();
        }

        if (presented.IsEmpty)
        {
            logger.LogDebug("Rejected {Method}: no credentials", context.Method);
            throw new RpcException(new Status(StatusCode.Unauthenticated, "missing credentials: send an API key as 'x-api-key: <key>' or 'authorization: Bearer <key>'"));
        }

        var caller = keys.Authenticate(presented);
        if (caller is null)
        {
            logger.LogDebug("Rejected {Method}: unknown API key", context.Method);
            throw new RpcException(new Status(StatusCode.Unauthenticated, "unknown API key"));
        }

        if ((caller.Scopes & required) != required)
        {
            logger.LogDebug("Rejected {Method} for {Caller}: scope {Scope} missing", context.Method, caller.Name, ApiScopes.Name(required));
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"this call needs the '{ApiScopes.Name(required)}' scope, which API key '{caller.Name}' does not have"));
        }

        http.Features.Set(caller);
    }
}

/// <summary>Reads the authenticated caller of a call.</summary>
public static class ApiCallerExtensions
{
    /// <summary>The caller that <see cref="ApiKeyAuthInterceptor"/> authenticated; anonymous for open methods or when authentication is disabled.</summary>
    public static ApiCaller Caller(this ServerCallContext context) =>
        context.GetHttpContext().Features.Get<ApiCaller>() ?? ApiCaller.Anonymous;
}
