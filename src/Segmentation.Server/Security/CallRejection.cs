using System.Globalization;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;

namespace Segmentation.Server.Security;

/// <summary>
/// Answers a call the host refuses before any service code runs (no or a wrong key, a missing scope, a rate limit),
/// in the caller's protocol: to a gRPC caller a trailers-only response (the status in the headers, with
/// <c>grpc-status-details-bin</c> when there are details); to an HTTP/JSON caller (JSON transcoding) the HTTP status
/// of the gRPC code and the same <c>google.rpc.Status</c> as a JSON body, as transcoding writes its own errors.
/// </summary>
internal static class CallRejection
{
    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithTypeRegistry(TypeRegistry.FromMessages(RetryInfo.Descriptor, BadRequest.Descriptor)));

    /// <summary>True when the request came through JSON transcoding (HTTP/JSON), not gRPC.</summary>
    public static bool IsJson(HttpContext context) => Hosting.HttpJsonApi.IsHttpJsonCall(context);

    /// <summary>Writes the refusal; <paramref name="retryAfter"/> adds a <c>google.rpc.RetryInfo</c> (and, over HTTP, <c>Retry-After</c>).</summary>
    public static Task Write(HttpContext context, StatusCode code, string message, TimeSpan? retryAfter = null)
    {
        var status = new Google.Rpc.Status { Code = (int)code, Message = message };
        if (retryAfter is { } delay)
        {
            status.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(delay) }));
        }

        var response = context.Response;
        if (IsJson(context))
        {
            if (retryAfter is { } wait)
            {
                response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            }

            return WriteJson(response, status);
        }

        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(message);
        if (status.Details.Count > 0)
        {
            response.Headers["grpc-status-details-bin"] = Convert.ToBase64String(status.ToByteArray());
        }

        return Task.CompletedTask;
    }

    /// <summary>Answers an HTTP/JSON caller with <paramref name="status"/>: the HTTP status of its code and the status as a JSON body.</summary>
    public static Task WriteJson(Microsoft.AspNetCore.Http.HttpResponse response, Google.Rpc.Status status)
    {
        response.StatusCode = HttpStatus((StatusCode)status.Code);
        response.ContentType = "application/json; charset=utf-8";
        return response.WriteAsync(Json.Format(status));
    }

    /// <summary>The HTTP status JSON transcoding gives a gRPC code (as in google.rpc.Code's mapping).</summary>
    public static int HttpStatus(StatusCode code) => code switch
    {
        StatusCode.OK => StatusCodes.Status200OK,
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => StatusCodes.Status400BadRequest,
        StatusCode.Unauthenticated => StatusCodes.Status401Unauthorized,
        StatusCode.PermissionDenied => StatusCodes.Status403Forbidden,
        StatusCode.NotFound => StatusCodes.Status404NotFound,
        StatusCode.AlreadyExists or StatusCode.Aborted => StatusCodes.Status409Conflict,
        StatusCode.ResourceExhausted => StatusCodes.Status429TooManyRequests,
        StatusCode.Cancelled => 499,
        StatusCode.Unimplemented => StatusCodes.Status501NotImplemented,
        StatusCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
        StatusCode.DeadlineExceeded => StatusCodes.Status504GatewayTimeout,
        _ => StatusCodes.Status500InternalServerError,
    };

    // grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2: every byte outside printable ASCII, and '%').
    private static string PercentEncode(string message)
    {
        var builder = new StringBuilder(message.Length);
        foreach (var b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E and not (byte)'%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }
}
