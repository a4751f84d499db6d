using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Audit;

namespace Segmentation.Server.Security;

/// <summary>
/// Authenticates every call by its API key (<c>x-api-key: KEY</c> or <c>authorization: Bearer KEY</c>)
/// before anything of the request is read, and checks the scope the method needs. The method is the
/// endpoint routing resolved (its gRPC metadata), never the path as spelled: routing ignores case and a
/// trailing slash, so <c>/segmentation.v1.profileservice/settraits/</c> needs exactly what
/// <c>SetTraits</c> needs. No or an unknown key is UNAUTHENTICATED, a known key without the scope
/// PERMISSION_DENIED, answered at once (a trailers-only response): an unauthenticated caller costs no
/// parsing and writes nothing above Debug to the log. The caller is attached to the request
/// (<see cref="ApiCallerExtensions.Caller"/>) for per-caller limits. Keys are never logged or echoed.
/// </summary>
internal sealed class ApiKeyAuthenticationMiddleware(RequestDelegate next, ApiKeyRing keys, IOptions<SecurityOptions> options, AdminAuditTrail audit, ILogger<ApiKeyAuthenticationMiddleware> logger)
{
    private readonly bool _disabled = options.Value.DisableAuthentication;
    private readonly bool _allowPlaintext = options.Value.AllowPlaintext;

    public Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not { } grpc)
        {
            return next(context); // not a gRPC method: the framework answers (unimplemented, not found)
        }

        var method = grpc.Method.FullName;
        var required = MethodScopes.Required(method);
        if (required == ApiScope.None)
        {
            return next(context); // health checks and reflection
        }

        if (!_allowPlaintext && !context.Request.IsHttps && CallRejection.IsJson(context))
        {
            // The HTTP/1.1 endpoint may be plaintext for the probes and metrics; API calls over it may not.
            return Reject(context, StatusCode.PermissionDenied, "the HTTP/JSON API is served over TLS only: call it with https://, or, for local use or behind a TLS-terminating proxy, set Segmentation:Security:AllowPlaintext=true");
        }

        if (_disabled)
        {
            context.Features.Set(ApiCaller.Anonymous);
            return next(context);
        }

        var headers = context.Request.Headers;
        ReadOnlySpan<char> presented = headers["x-api-key"].ToString();
        if (presented.IsEmpty && headers.Authorization.ToString() is { Length: > 7 } authorization
            && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented = authorization.AsSpan(7).Trim();
        }

        if (presented.IsEmpty)
        {
            logger.LogDebug("Rejected {Method}: no credentials", method);
            return Reject(context, StatusCode.Unauthenticated, "missing credentials: send an API key as 'x-api-key: <key>' or 'authorization: Bearer <key>'");
        }

        var caller = keys.Authenticate(presented);
        if (caller is null)
        {
            logger.LogDebug("Rejected {Method}: unknown API key", method);
            return Reject(context, StatusCode.Unauthenticated, "unknown API key");
        }

        if (!caller.Has(required))
        {
            logger.LogDebug("Rejected {Method} for {Caller}: scope {Scope} missing", method, caller.Name, ApiScopes.Name(required));
            if (Interceptors.AuditedMethods.Action(method) is { } action)
            {
                // Every attempt without the scope, consent included: the key had no right to any of it. The body is not read: no user id.
                Interceptors.AuditedMethods.RecordRefusal(audit, logger, caller.Name, action, "PERMISSION_DENIED", $"the '{ApiScopes.Name(required)}' scope is missing");
            }

            return Reject(context, StatusCode.PermissionDenied, $"this call needs the '{ApiScopes.Name(required)}' scope, which API key '{caller.Name}' does not have");
        }

        context.Features.Set(caller);
        return next(context);
    }

    private static Task Reject(HttpContext context, StatusCode code, string message) => CallRejection.Write(context, code, message);
}

/// <summary>Reads the authenticated caller of a call.</summary>
public static class ApiCallerExtensions
{
    /// <summary>The caller that <see cref="ApiKeyAuthenticationMiddleware"/> authenticated; anonymous for open methods or when authentication is disabled.</summary>
    public static ApiCaller Caller(this ServerCallContext context) =>
        context.GetHttpContext().Features.Get<ApiCaller>() ?? ApiCaller.Anonymous;
}
