using System.Buffers;
using System.Text.Json;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Microsoft.AspNetCore.Grpc.JsonTranscoding;
using Segmentation.Server.Mapping;
using Segmentation.Server.Security;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Names the field when an HTTP/JSON request does not fit its message. JSON transcoding parses the body and the query
/// string before any of our code runs and refuses a bad one as INVALID_ARGUMENT without saying where ("Request JSON
/// payload is not correctly formatted." for a number in a string field or a syntax error; "Error converting value…"
/// or "Invalid value 'FOO' for enum type…" for an unknown enum name; "The input string 'abc' was not in a correct
/// format." for a query parameter). This keeps a copy of the body as transcoding reads it and, when the answer is such
/// a refusal (code INVALID_ARGUMENT with no details), finds the first problem (<see cref="HttpJsonInputProblem"/>) and
/// answers with it as a <c>google.rpc.BadRequest</c> field violation, the same shape the service's own validation
/// gives. Any other answer passes through untouched; gRPC calls pass with one look at their endpoint's metadata.
/// </summary>
internal sealed class HttpJsonInputErrors(RequestDelegate next, Microsoft.Extensions.Options.IOptions<LimitsOptions> limits)
{
    private const int InvalidArgument = (int)Google.Rpc.Code.InvalidArgument;
    private const int MaxCapturedError = 64 * 1024;

    public Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcJsonTranscodingMetadata>() is not { } metadata)
        {
            return next(context); // a gRPC call
        }

        // Whatever the content type: a route without a body is transcoded even when it names gRPC's.
        DecodeRouteValues(context);

        // A body in gRPC's content type is refused by transcoding itself; "application/grpc+json" is JSON to it (any
        // "+json" is), so it is checked as JSON.
        if (context.Request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) && !type.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            return next(context);
        }
        if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsDelete(context.Request.Method))
        {
            return context.Request.QueryString.HasValue ? WithQueryErrorsNamed(context, metadata.MethodDescriptor.InputType) : next(context);
        }

        // The request size limit gRPC calls have (transcoding reads a JSON body without one): refused before it is read
        // when its length is declared, else as soon as more was read.
        if (context.Request.ContentLength > limits.Value.MaxRequestBytes)
        {
            return TooLargeAsync(context);
        }

        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            // A last line of defence, above the limit: the body's copy refuses a body past the limit first (as
            // RESOURCE_EXHAUSTED); the server's own refusal (413) would come from inside a read transcoding answers.
            size.MaxRequestBodySize = 2L * limits.Value.MaxRequestBytes + (64 << 10);
        }

        return BodyMessage(metadata) is { } body ? WithBodyErrorsNamed(context, body) : next(context);
    }

    /// <summary>
    /// The server decodes a request's path but for <c>%2F</c> (a '/' inside a segment), so routing hands transcoding the
    /// id <c>tenant%2F42</c> for <c>/v1/users/tenant%2F42</c>: the user <c>tenant/42</c> could not be named, and the
    /// call reached another id. Each single-segment variable is read again from the raw path, decoded whole, as
    /// <c>google.api.http</c> says a segment variable is.
    /// </summary>
    internal static void DecodeRouteValues(HttpContext context)
    {
        if (context.GetEndpoint() is not RouteEndpoint { RoutePattern: var pattern }
            || context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget is not { } raw
            || !raw.Contains('%', StringComparison.Ordinal))
        {
            return;
        }

        var path = raw.AsSpan(0, raw.IndexOf('?', StringComparison.Ordinal) is >= 0 and var query ? query : raw.Length);
        var basePath = context.Request.PathBase.HasValue ? context.Request.PathBase.Value!.Length : 0;
        if (path.Length <= basePath || path[0] != '/')
        {
            return; // an absolute-form target, or one the base path does not lead: left as routing read it
        }

        var segments = AsRouted(path[(basePath + 1)..].ToString().Split('/'));
        if (segments.Count != pattern.PathSegments.Count)
        {
            return;
        }

        for (var i = 0; i < segments.Count; i++)
        {
            if (pattern.PathSegments[i].Parts is [Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart { IsCatchAll: false } variable])
            {
                context.Request.RouteValues[variable.Name] = Uri.UnescapeDataString(segments[i]);
            }
        }
    }

    // The raw path's segments as the server routes them: dot segments ("." and "..", also percent-encoded) resolved, as
    // the server does before routing (a client that sends /v1/users/x/../tenant%2F42 unnormalised names tenant/42), and a
    // trailing slash dropped (routing accepts one). Otherwise the segments would not line up with the route, and the id
    // would be left encoded: the call would reach another user.
    private static List<string> AsRouted(string[] raw)
    {
        var kept = new List<string>(raw.Length);
        foreach (var segment in raw)
        {
            switch (segment.Contains('.', StringComparison.Ordinal) || segment.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(segment) : segment)
            {
                case ".":
                    break;
                case "..":
                    if (kept.Count > 0)
                    {
                        kept.RemoveAt(kept.Count - 1);
                    }

                    break;
                default:
                    kept.Add(segment);
                    break;
            }
        }

        if (kept.Count > 0 && kept[^1].Length == 0)
        {
            kept.RemoveAt(kept.Count - 1);
        }

        return kept;
    }

    private Task TooLargeAsync(HttpContext context) => CallRejection.WriteJson(context.Response, new Google.Rpc.Status
    {
        Code = (int)Google.Rpc.Code.ResourceExhausted,
        Message = $"the request body is larger than {limits.Value.MaxRequestBytes:N0} bytes, the most one request may carry (as over gRPC): split it",
    });

    private async Task WithQueryErrorsNamed(HttpContext context, MessageDescriptor message)
    {
        var responseBody = context.Response.Body;
        var answer = new ErrorCapturingStream(responseBody, context.Response);
        context.Response.Body = answer;
        try
        {
            await next(context);
        }
        finally
        {
            context.Response.Body = responseBody;
        }

        if (answer.Captured is { } error)
        {
            var problem = IsUndetailedRefusal(error) ? Safely(() => HttpJsonInputProblem.InQuery(context.Request.Query, message)) : null;
            await AnswerAsync(context, error, problem);
        }
    }

    private async Task WithBodyErrorsNamed(HttpContext context, (MessageDescriptor Message, string Prefix) body)
    {
        var requestBody = context.Request.Body;
        var responseBody = context.Response.Body;
        using var copy = new CopyingStream(requestBody, limits.Value.MaxRequestBytes);
        var answer = new ErrorCapturingStream(responseBody, context.Response);
        context.Request.Body = copy;
        context.Response.Body = answer;
        try
        {
            await next(context);
        }
        catch (RequestTooLargeException)
        {
            // Transcoding let the refusal through: answered below.
        }
        finally
        {
            context.Request.Body = requestBody;
            context.Response.Body = responseBody;
        }

        if (copy.TooLarge && !context.Response.HasStarted)
        {
            context.Response.ContentLength = null;
            await TooLargeAsync(context); // whatever transcoding made of it (it answers a failed read as a malformed body)
            return;
        }

        if (answer.Captured is { } error)
        {
            // Transcoding stops reading at the first problem: the rest is read to walk the whole body.
            var problem = IsUndetailedRefusal(error) && await copy.TryReadToEndAsync(context.RequestAborted)
                ? Safely(() => HttpJsonInputProblem.InBody(copy.Written, body.Message, body.Prefix))
                : null;
            await AnswerAsync(context, error, problem);
        }
    }

    // The kept error as it is, or the problem found in its place, as a google.rpc.Status like every other refusal.
    private static Task AnswerAsync(HttpContext context, ReadOnlyMemory<byte> error, HttpJsonInputProblem? problem)
    {
        if (problem is null || context.Response.HasStarted)
        {
            return context.Response.Body.WriteAsync(error, context.RequestAborted).AsTask();
        }

        var status = new Google.Rpc.Status
        {
            Code = InvalidArgument,
            Message = problem.Field is { } field ? $"{field}: {problem.Description}" : problem.Description,
        };
        if (problem.Field is not null)
        {
            status.Details.Add(Any.Pack(new Google.Rpc.BadRequest
            {
                FieldViolations = { new Google.Rpc.BadRequest.Types.FieldViolation { Field = problem.Field, Description = problem.Description } },
            }));
        }

        context.Response.ContentLength = null;
        return CallRejection.WriteJson(context.Response, status);
    }

    // Finding the problem only adds words to a refusal: should it fail on input nobody foresaw, the refusal goes out as it was.
    private static HttpJsonInputProblem? Safely(Func<HttpJsonInputProblem?> find)
    {
        try
        {
            return find();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException or JsonException)
        {
            return null;
        }
    }

    // The message the body is parsed as, and the path its fields are named under.
    private static (MessageDescriptor Message, string Prefix)? BodyMessage(GrpcJsonTranscodingMetadata metadata)
    {
        var input = metadata.MethodDescriptor.InputType;
        var selector = metadata.HttpRule.Body;
        if (selector == "*")
        {
            return (input, "");
        }

        return input.FindFieldByName(selector) is { FieldType: FieldType.Message, IsRepeated: false } field ? (field.MessageType, selector + ".") : null;
    }

    private static bool IsUndetailedRefusal(ReadOnlyMemory<byte> error)
    {
        try
        {
            using var status = JsonDocument.Parse(error);
            var root = status.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.Number && code.GetInt32() == InvalidArgument
                && (!root.TryGetProperty("details", out var details) || details.ValueKind != JsonValueKind.Array || details.GetArrayLength() == 0);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Reads through to the request body, keeping what was read up to a limit.</summary>
    private sealed class CopyingStream(Stream inner, int limit) : Stream
    {
        private readonly ArrayBufferWriter<byte> _written = new();
        private bool _overflowed;
        private long _read;
        private bool _readingToEnd;

        /// <summary>True when the body turned out larger than a request may be: reading it failed.</summary>
        public bool TooLarge { get; private set; }

        /// <summary>The body as read so far.</summary>
        public ReadOnlySpan<byte> Written => _written.WrittenSpan;

        // True when the whole body was read and kept.
        private bool Complete { get; set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Keep(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

        public override int Read(Span<byte> buffer) => Keep(buffer[..inner.Read(buffer)]);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            return Keep(buffer.Span[..read]);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        /// <summary>
        /// Reads what transcoding left unread (it stops at the first problem); false when the body is too large to keep
        /// or cannot be read to its end (the client stopped sending, the server refused the rest).
        /// </summary>
        public async Task<bool> TryReadToEndAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await ReadToEndAsync(cancellationToken);
            }
            catch (IOException)
            {
                return false;
            }
        }

        private async Task<bool> ReadToEndAsync(CancellationToken cancellationToken)
        {
            _readingToEnd = true;
            var buffer = new byte[16 * 1024];
            while (!Complete && !_overflowed)
            {
                _ = await ReadAsync(buffer, cancellationToken); // kept by Keep; a short read just loops
            }

            return Complete;
        }

        private int Keep(ReadOnlySpan<byte> read)
        {
            _read += read.Length;
            if (_read > limit && !_readingToEnd)
            {
                TooLarge = true;
                throw new RequestTooLargeException();
            }

            if (read.IsEmpty)
            {
                Complete = !_overflowed;
            }
            else if (!_overflowed && _written.WrittenCount + read.Length <= limit)
            {
                _written.Write(read);
            }
            else
            {
                _overflowed = true; // larger than any request the service accepts: not kept
                _written.ResetWrittenCount();
            }

            return read.Length;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class RequestTooLargeException() : IOException("the request body is larger than a request may be");

    /// <summary>
    /// Passes the response through, except one that starts with status 400: that is kept (up to a limit) for
    /// <see cref="InvokeAsync"/> to pass on or replace.
    /// </summary>
    private sealed class ErrorCapturingStream(Stream inner, HttpResponse response) : Stream
    {
        private ArrayBufferWriter<byte>? _captured;
        private bool _decided;

        /// <summary>The error answer kept, if the response was one.</summary>
        public ReadOnlyMemory<byte>? Captured => _captured?.WrittenMemory;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (!Keep(buffer, out var released))
            {
                inner.Write(released.Span);
                inner.Write(buffer);
            }
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!Keep(buffer.Span, out var released))
            {
                await inner.WriteAsync(released, cancellationToken);
                await inner.WriteAsync(buffer, cancellationToken);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
            if (_captured is null)
            {
                inner.Flush();
            }
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => _captured is null ? inner.FlushAsync(cancellationToken) : Task.CompletedTask;

        // True when the bytes were kept rather than to be written; otherwise also what was kept before, to be written first.
        private bool Keep(ReadOnlySpan<byte> buffer, out ReadOnlyMemory<byte> released)
        {
            released = default;
            if (!_decided)
            {
                _decided = true;
                if (response.StatusCode == StatusCodes.Status400BadRequest)
                {
                    _captured = new ArrayBufferWriter<byte>();
                }
            }

            if (_captured is null)
            {
                return false;
            }

            if (_captured.WrittenCount + buffer.Length > MaxCapturedError)
            {
                // Larger than any error transcoding writes: not one of them, so it goes through as it is.
                released = _captured.WrittenMemory;
                _captured = null;
                return false;
            }

            _captured.Write(buffer);
            return true;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
