using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>Where the service is and the API key to call it with.</summary>
internal sealed record ServiceTarget(string Address, string ApiKey)
{
    /// <summary>Where the key came from (<c>--api-key</c>, <c>SEGMENTATION_API_KEY</c> or the development key), for error messages.</summary>
    public string KeySource { get; init; } = "--api-key";

    /// <summary>How long one unary call may wait for its answer (<c>--timeout</c>): its deadline, unless the call sets one.</summary>
    public TimeSpan CallTimeout { get; init; } = Cli.DefaultCallTimeout;

    public override string ToString() => Address; // never the key
}

/// <summary>Shared plumbing: the channel, output formats and error reporting.</summary>
internal static class Cli
{
    /// <summary>The address used when neither --address nor SEGCTL_ADDRESS is given.</summary>
    public const string DefaultAddress = "http://127.0.0.1:5107";

    /// <summary>Exit code of a failure: the service unreachable, refused credentials, an unexpected status.</summary>
    public const int RpcFailure = 1;

    /// <summary>Exit code of a usage error: an unknown command or option, a bad option value, a missing file.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code of input that was checked and refused: an invalid catalog, a rejected request, a malformed file.</summary>
    public const int Rejected = 3;

    /// <summary>The service and key source of the command being run, for error messages (never the key itself).</summary>
    public static ServiceTarget? Current { get; set; }

    /// <summary>
    /// The one JSON style of every command's <c>--json</c>: proto field names (snake_case, as in the .proto files and
    /// the import and report documents), default values included (a zero count is printed, not left out), times in
    /// RFC 3339. <see cref="JsonLines"/> is the same on one line (streams).
    /// </summary>
    public static readonly JsonFormatter.Settings JsonStyle = JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithPreserveProtoFieldNames(true);

    /// <summary>One JSON object per line, in <see cref="JsonStyle"/>.</summary>
    public static readonly JsonFormatter JsonLines = new(JsonStyle);

    private static readonly JsonFormatter Json = new(JsonStyle.WithIndentation());

    /// <summary>
    /// The target of a command: the address (option, else SEGCTL_ADDRESS, else the default) checked to be an absolute
    /// http(s) URL, the key (option, else SEGMENTATION_API_KEY, else the development key) with where it came from, and
    /// how long one unary call may wait (<paramref name="callTimeout"/>, else <see cref="DefaultCallTimeout"/>).
    /// Throws <see cref="ArgumentException"/> (a usage error) for an address that is not one.
    /// </summary>
    public static ServiceTarget Target(string? address, string? apiKey, TimeSpan? callTimeout = null)
    {
        var (resolvedAddress, addressSource) = address is { Length: > 0 } ? (address, "--address")
            : Environment.GetEnvironmentVariable("SEGCTL_ADDRESS") is { Length: > 0 } env ? (env, "SEGCTL_ADDRESS") : (DefaultAddress, "the default");
        if (!Uri.TryCreate(resolvedAddress, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"{addressSource} '{resolvedAddress}' is not a service address: give the scheme and port, for example http://127.0.0.1:5107 (plaintext) or https://segmentation.example.com");
        }

        var (key, keySource) = apiKey is { Length: > 0 } ? (apiKey, "--api-key")
            : Environment.GetEnvironmentVariable("SEGMENTATION_API_KEY") is { Length: > 0 } envKey ? (envKey, "SEGMENTATION_API_KEY")
            : (DevelopmentKey, "the development key (neither --api-key nor SEGMENTATION_API_KEY was given)");
        return Current = new ServiceTarget(resolvedAddress, key) { KeySource = keySource, CallTimeout = callTimeout ?? DefaultCallTimeout };
    }

    /// <summary>The documented local development key, used when neither --api-key nor SEGMENTATION_API_KEY is given.</summary>
    public const string DevelopmentKey = "dev-local-key-change-me";

    /// <summary>The SHA-256 of the key's UTF-8 bytes as lower-case hex: what the server's configuration holds.</summary>
    public static string HashKey(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>How long a connection to the service may take to open.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Silence on a connection with calls in flight after which the service is pinged.</summary>
    public static readonly TimeSpan KeepAlivePingDelay = TimeSpan.FromSeconds(15);

    /// <summary>How long a ping may go unanswered before the connection (and its calls) are given up.</summary>
    public static readonly TimeSpan KeepAlivePingTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long one unary call may wait for its answer when <c>--timeout</c> is not given.</summary>
    public static readonly TimeSpan DefaultCallTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The longest <c>--timeout</c>: a day (a timer cannot wait much longer than 49 days).</summary>
    public const int MaxCallTimeoutSeconds = 86_400;

    /// <summary>
    /// A channel to the service that sends the API key as <c>x-api-key</c> metadata on every call and gives every unary
    /// call the target's deadline (<see cref="ServiceTarget.CallTimeout"/>): a service that keeps the connection alive
    /// but never answers fails the command with <c>DEADLINE_EXCEEDED</c> instead of holding it for ever.
    /// </summary>
    public static ServiceChannel OpenChannel(ServiceTarget target) => new(OpenGrpcChannel(target), target.CallTimeout);

    private static GrpcChannel OpenGrpcChannel(ServiceTarget target) =>
        GrpcChannel.ForAddress(target.Address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 64 * 1024 * 1024,
            HttpHandler = new ApiKeyHandler(target.ApiKey)
            {
                // A host that drops packets fails the connect within ConnectTimeout, and a connection that stops answering
                // (a silent peer, a dropped network during a long stream) within the keep-alive ping's delay and timeout,
                // instead of the command waiting for ever.
                InnerHandler = new SocketsHttpHandler
                {
                    EnableMultipleHttp2Connections = true,
                    ConnectTimeout = ConnectTimeout,
                    KeepAlivePingDelay = KeepAlivePingDelay,
                    KeepAlivePingTimeout = KeepAlivePingTimeout,
                    KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
                },
            },
        });

    /// <summary>Formats a protobuf message as indented JSON (proto3 JSON mapping).</summary>
    public static string ToJson(IMessage message) => Json.Format(message);

    /// <summary>An RFC 3339 time given on the command line, or null; anything else is a usage error naming <paramref name="option"/>.</summary>
    public static DateTimeOffset? ParseTime(string? text, string option) =>
        text is null ? null
        : TryParseRfc3339(text, out var time) ? time
        : throw new ArgumentException($"{option} '{text}' is not a time: use RFC 3339, e.g. 2026-11-30T14:05:00Z");

    // RFC 3339's forms (a space for the 'T', no offset read as UTC): never a culture's, which read 03/04/2026 month first
    // and 14:05 as today.
    private static readonly string[] Rfc3339 =
    [
        "yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK", "yyyy-MM-dd'T'HH:mmK", "yyyy-MM-dd",
    ];

    /// <summary>Reads an RFC 3339 time (date and time with an offset or Z; without one, UTC; a date alone is its midnight UTC).</summary>
    public static bool TryParseRfc3339(string text, out DateTimeOffset time)
    {
        var normal = text.Length > 10 && text[10] is ' ' or 't' ? string.Concat(text.AsSpan(0, 10), "T", text.AsSpan(11)) : text;
        if (normal.EndsWith('z'))
        {
            normal = string.Concat(normal.AsSpan(0, normal.Length - 1), "Z");
        }

        // A fraction of more than 7 digits (nanoseconds, as protobuf's JSON and `date --rfc-3339=ns` write it) is cut to
        // the 100 ns a time holds.
        if (normal.Length > 20 && normal[19] == '.')
        {
            var digits = 0;
            while (20 + digits < normal.Length && char.IsAsciiDigit(normal[20 + digits]))
            {
                digits++;
            }

            if (digits > 7)
            {
                normal = string.Concat(normal.AsSpan(0, 27), normal.AsSpan(20 + digits));
            }
        }

        return DateTimeOffset.TryParseExact(normal, Rfc3339, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out time);
    }

    /// <summary>
    /// <see cref="Rejected"/> for a request the service refused for what it asked (invalid, against the state, out of
    /// range, or past a stored limit: <c>RESOURCE_EXHAUSTED</c> without a retry delay, which retrying will not change);
    /// <see cref="RpcFailure"/> for the rest, rate limits among them.
    /// </summary>
    public static int ExitCodeOf(RpcException ex) => ex.StatusCode switch
    {
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => Rejected,
        StatusCode.ResourceExhausted when ex.GetRpcStatus()?.GetDetail<RetryInfo>() is null => Rejected,
        _ => RpcFailure,
    };

    /// <summary>
    /// Runs a command body; an RPC failure is printed to stderr with its status and field violations, a local failure
    /// (a file that cannot be read, a disk that is full) with its message, never a stack trace.
    /// </summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (RpcException ex)
        {
            await Console.Error.WriteLineAsync(Describe(ex));
            return ExitCodeOf(ex);
        }
        catch (Exception ex) when (ex is ArgumentException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync("error: " + ex.Message);
            return UsageError;
        }
        catch (InvalidDataException ex)
        {
            await Console.Error.WriteLineAsync("error: " + ex.Message);
            return Rejected;
        }
        catch (IOException ex)
        {
            // A local read or write failed (a full disk, a device error): a failure of this machine, not input refused.
            await Console.Error.WriteLineAsync("error: local I/O failed: " + ex.Message);
            return RpcFailure;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("error: cancelled");
            return RpcFailure;
        }
    }

    /// <summary>
    /// The pages of a listing from <paramref name="first"/> (a page token, empty for the first page), one request at a
    /// time as they are consumed; with <paramref name="all"/> false only the first. A service answering a token with that
    /// same token would be asked for the same page for ever: that stops the listing instead.
    /// </summary>
    public static async IAsyncEnumerable<TPage> Pages<TPage>(string first, bool all, Func<string, Task<TPage>> fetch, Func<TPage, string> nextToken)
    {
        var token = first;
        while (true)
        {
            var page = await fetch(token);
            var next = nextToken(page);
            if (next.Length > 0 && next == token)
            {
                throw new RpcException(new Grpc.Core.Status(StatusCode.Internal, $"the service answered page token '{token}' with the same token: stopping rather than reading the same page again"));
            }

            yield return page;
            if (!all || next.Length == 0)
            {
                yield break;
            }

            token = next;
        }
    }

    /// <summary>
    /// The pages of <paramref name="pages"/>; when fetching one fails after some were written, first says on standard error
    /// how much was written (<paramref name="written"/>) and the page token to go on from (<paramref name="next"/>, the
    /// last page's: nothing when empty), so a listing cut by a restart need not start again from the first page.
    /// </summary>
    public static async IAsyncEnumerable<TPage> GoOnFromAfterFailure<TPage>(IAsyncEnumerable<TPage> pages, Func<string> next, Func<string> written)
    {
        await using var e = pages.GetAsyncEnumerator();
        while (true)
        {
            try
            {
                if (!await e.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (RpcException) when (next() is { Length: > 0 } token)
            {
                await Console.Error.WriteLineAsync($"{written()} written before the failure below; go on with --page-token {Terminal.Shown(token)}");
                throw;
            }

            yield return e.Current;
        }
    }

    /// <summary>True when the call failed on a timeout of the connection (its connect timeout), which gRPC reports as CANCELLED.</summary>
    public static bool IsTimeout(RpcException ex) => CausedBy(ex, e => e is TimeoutException);

    // Whether the local exception behind a status (none when the service sent it), or one it wraps, is of that kind.
    private static bool CausedBy(RpcException ex, Func<Exception, bool> kind)
    {
        for (var e = ex.Status.DebugException; e is not null; e = e.InnerException)
        {
            if (kind(e))
            {
                return true;
            }
        }

        return false;
    }

    // A failure of the connection itself (HTTP, socket), not a status the service sent.
    private static bool IsConnectionFailure(RpcException ex) => CausedBy(ex, e => e is HttpRequestException or IOException);

    public static string Describe(RpcException ex) => Describe(ex, null);

    /// <summary>
    /// The failure as <see cref="Describe(RpcException)"/> prints it, with <paramref name="whatNow"/> (when given): in
    /// place of the usual advice to run the command again after a failure part-way (a timeout, an unavailable service, a
    /// connection lost), after the usual advice otherwise. A command that knows what part of its work was done says what
    /// to send again.
    /// </summary>
    public static string Describe(RpcException ex, string? whatNow)
    {
        var sb = new StringBuilder();
        sb.Append("error: ").Append(StatusName(ex.StatusCode)).Append(" (").Append((int)ex.StatusCode).Append("): ").Append(ex.Status.Detail);
        var target = Current;
        if (whatNow is not null && ex.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Unavailable or StatusCode.Internal or StatusCode.Cancelled or StatusCode.ResourceExhausted or StatusCode.Unknown)
        {
            sb.AppendLine().Append("  ").Append(whatNow);
            if (RetrySeconds(ex) is { } wait)
            {
                sb.Append(CultureInfo.InvariantCulture, $" The service asked for a wait of {wait} s first.");
            }

            return sb.ToString();
        }

        switch (ex.StatusCode)
        {
            case StatusCode.Unavailable when target is not null && ex.Status.DebugException is not null:
                // No answer came: the connection failed (a status the service sent carries no local exception).
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  could not reach {target.Address}: is the service running there? Give its address with --address or SEGCTL_ADDRESS (https:// for TLS).");
                break;
            case StatusCode.Internal when target is not null && IsConnectionFailure(ex):
                // The connection failed under the call (a peer that went silent: the keep-alive ping was not answered).
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  could not reach {target.Address}: the connection failed or stopped answering. Is the service running there? Give its address with --address or SEGCTL_ADDRESS (https:// for TLS).");
                break;
            case StatusCode.Cancelled when target is not null && IsTimeout(ex):
                // The connect timeout surfaces as a cancellation, not as the user's Ctrl+C.
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  could not reach {target.Address}: no connection within {ConnectTimeout.TotalSeconds:0} s. Is the service running there? Give its address with --address or SEGCTL_ADDRESS (https:// for TLS).");
                break;
            case StatusCode.Unavailable:
                sb.AppendLine().Append(RetrySeconds(ex) is { } delay
                    ? string.Create(CultureInfo.InvariantCulture, $"  the service answered and is not ready for this now: run the command again in {delay} s.")
                    : "  the service answered and is not ready for this now: run the command again shortly.");
                break;
            case StatusCode.DeadlineExceeded when target is not null && ex.Trailers.Get(ServiceChannel.MayStillComplete) is not null:
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  {target.Address} did not answer within {target.CallTimeout.TotalSeconds:0} s. The service may complete this request after the caller gives up (once past its checks), so it may still be done: check with segctl audit-log (and segctl catalog for a publish or rollback) before running the command again.");
                break;
            case StatusCode.DeadlineExceeded when target is not null:
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  {target.Address} did not answer within {target.CallTimeout.TotalSeconds:0} s: the service may be overloaded, or the request larger than that allows; run the command again, with a larger --timeout if it needs longer.");
                break;
            case StatusCode.Unauthenticated when target is not null:
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  {target.Address} refused the API key from {target.KeySource}: pass the right key with --api-key or SEGMENTATION_API_KEY (segctl hash-key prints what the server's configuration must hold).");
                break;
            case StatusCode.PermissionDenied when target is not null:
                sb.AppendLine().Append(CultureInfo.InvariantCulture, $"  the API key from {target.KeySource} lacks the scope this command needs: use a key that has it.");
                break;
        }

        if (whatNow is not null)
        {
            sb.AppendLine().Append("  ").Append(whatNow);
        }

        var status = ex.GetRpcStatus();
        var badRequest = status?.GetDetail<BadRequest>();
        if (badRequest is not null)
        {
            foreach (var v in badRequest.FieldViolations.Where(v => !ex.Status.Detail.Contains($"{v.Field}: {v.Description}", StringComparison.Ordinal)))
            {
                sb.AppendLine().Append("  ").Append(v.Field).Append(": ").Append(v.Description);
            }
        }

        return sb.ToString();
    }

    // The wait the service asked for before a retry (google.rpc.RetryInfo), in whole seconds, at least 1; null when none.
    private static double? RetrySeconds(RpcException ex) =>
        ex.GetRpcStatus()?.GetDetail<RetryInfo>()?.RetryDelay?.ToTimeSpan() is { } delay ? Math.Max(1, Math.Ceiling(delay.TotalSeconds)) : null;

    /// <summary>The canonical upper-snake name of a status code, for example INVALID_ARGUMENT.</summary>
    public static string StatusName(StatusCode code)
    {
        var name = code.ToString();
        var sb = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                sb.Append('_');
            }

            sb.Append(char.ToUpperInvariant(name[i]));
        }

        return sb.ToString();
    }

    /// <summary>A generated enum member in lower snake case: MatchStatus.Winner → winner, ZeroParty → zero_party.</summary>
    public static string EnumName<TEnum>(TEnum value)
        where TEnum : struct, Enum
    {
        var descriptorName = value.ToString();
        var sb = new StringBuilder();
        for (var i = 0; i < descriptorName.Length; i++)
        {
            if (i > 0 && char.IsUpper(descriptorName[i]))
            {
                sb.Append('_');
            }

            sb.Append(char.ToLowerInvariant(descriptorName[i]));
        }

        return sb.ToString();
    }

    public static string Time(Google.Protobuf.WellKnownTypes.Timestamp? ts) =>
        ts is null ? "-" : ts.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm:ss'Z'");
}

/// <summary>
/// A channel whose calls cannot wait for ever on a service that keeps the connection alive and never answers; disposing
/// it disposes the connection. A unary call made without a deadline gets one; a request the service may complete after
/// the caller gives up is waited for as long, without a deadline (see <see cref="CallTimeouts"/>); a server stream is
/// given up when no message arrives for as long, except <c>WatchSegmentChanges</c>, which rightly waits for changes.
/// </summary>
internal sealed class ServiceChannel(GrpcChannel inner, TimeSpan callTimeout) : ChannelBase(inner.Target), IDisposable
{
    /// <summary>The trailer of a given-up call whose request the service may still complete.</summary>
    public const string MayStillComplete = "segctl-may-still-complete";

    private readonly CallInvoker _invoker = inner.CreateCallInvoker().Intercept(new CallTimeouts(callTimeout));

    public override CallInvoker CreateCallInvoker() => _invoker;

    public void Dispose() => inner.Dispose();

    // Unary calls get a deadline when they set none. The calls the service may complete after the caller gives up
    // (publishing, rolling back, stopping or promoting an experiment, erasing a user: past their checks they are not
    // stopped) are sent without one and waited for as long: given up, they answer DEADLINE_EXCEEDED with the
    // MayStillComplete trailer, since running the command again at once could publish a second version or compact the
    // store again. A server stream (an import's duplex stream excepted) is given up when no message comes for that long.
    private sealed class CallTimeouts(TimeSpan timeout) : Interceptor
    {
        private static readonly HashSet<string> CompletedAnyway = new(StringComparer.Ordinal)
        {
            $"/{CatalogService.Descriptor.FullName}/{nameof(CatalogService.CatalogServiceClient.PublishCatalog)}",
            $"/{CatalogService.Descriptor.FullName}/{nameof(CatalogService.CatalogServiceClient.RollbackCatalog)}",
            $"/{ExperimentService.Descriptor.FullName}/{nameof(ExperimentService.ExperimentServiceClient.StopExperiment)}",
            $"/{ExperimentService.Descriptor.FullName}/{nameof(ExperimentService.ExperimentServiceClient.PromoteExperiment)}",
            $"/{PrivacyService.Descriptor.FullName}/{nameof(PrivacyService.PrivacyServiceClient.ForgetUser)}",
        };

        private static readonly string Watch = $"/{CatalogService.Descriptor.FullName}/{nameof(CatalogService.CatalogServiceClient.WatchSegmentChanges)}";

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            if (context.Options.Deadline is not null || !CompletedAnyway.Contains(context.Method.FullName))
            {
                return continuation(request, WithDeadline(context));
            }

            var (gaveUp, limited) = Limited(context);
            gaveUp.CancelAfter(timeout);
            var call = continuation(request, limited);
            return new AsyncUnaryCall<TResponse>(Answer(call.ResponseAsync, gaveUp, context.Options.CancellationToken), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, () =>
            {
                call.Dispose();
                gaveUp.Dispose();
            });
        }

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, BlockingUnaryCallContinuation<TRequest, TResponse> continuation) =>
            continuation(request, CompletedAnyway.Contains(context.Method.FullName) ? context : WithDeadline(context));

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            if (context.Method.FullName == Watch)
            {
                return continuation(request, context);
            }

            var (gaveUp, limited) = Limited(context);
            var call = continuation(request, limited);
            return new AsyncServerStreamingCall<TResponse>(new IdleLimit<TResponse>(call.ResponseStream, gaveUp, timeout, context.Options.CancellationToken), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, () =>
            {
                call.Dispose();
                gaveUp.Dispose();
            });
        }

        private ClientInterceptorContext<TRequest, TResponse> WithDeadline<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
            where TRequest : class
            where TResponse : class =>
            context.Options.Deadline is not null ? context : new(context.Method, context.Host, context.Options.WithDeadline(DateTime.UtcNow + timeout));

        // The call cancelled by the caller's token or by giving up (a cancellation source of this call's own).
        private static (CancellationTokenSource GaveUp, ClientInterceptorContext<TRequest, TResponse> Context) Limited<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
            where TRequest : class
            where TResponse : class
        {
            var gaveUp = CancellationTokenSource.CreateLinkedTokenSource(context.Options.CancellationToken);
            return (gaveUp, new(context.Method, context.Host, context.Options.WithCancellationToken(gaveUp.Token)));
        }

        private async Task<TResponse> Answer<TResponse>(Task<TResponse> response, CancellationTokenSource gaveUp, CancellationToken caller)
        {
            try
            {
                return await response.ConfigureAwait(false);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && gaveUp.IsCancellationRequested && !caller.IsCancellationRequested)
            {
                throw new RpcException(
                    new Grpc.Core.Status(StatusCode.DeadlineExceeded, string.Create(CultureInfo.InvariantCulture, $"no answer within {timeout.TotalSeconds:0} s; the service may still complete the request")),
                    new Metadata { { MayStillComplete, "true" } });
            }
        }
    }

    // A server stream given up when no message comes within the timeout: only a read still waiting when the time is up
    // gives the call up, never one whose message came in time.
    private sealed class IdleLimit<T>(IAsyncStreamReader<T> inner, CancellationTokenSource gaveUp, TimeSpan timeout, CancellationToken caller) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            var read = inner.MoveNext(cancellationToken);
            if (!read.IsCompleted)
            {
                using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, caller);
                var idle = Task.Delay(timeout, waiting.Token);
                if (await Task.WhenAny(read, idle).ConfigureAwait(false) == idle && idle.IsCompletedSuccessfully)
                {
                    await gaveUp.CancelAsync().ConfigureAwait(false);
                    await read.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default).ConfigureAwait(false);
                    throw new RpcException(new Grpc.Core.Status(StatusCode.DeadlineExceeded, string.Create(CultureInfo.InvariantCulture, $"no message within {timeout.TotalSeconds:0} s")));
                }

                await waiting.CancelAsync().ConfigureAwait(false);
            }

            return await read.ConfigureAwait(false);
        }
    }
}

/// <summary>Adds the API key to every request (works for plaintext local servers and TLS alike).</summary>
internal sealed class ApiKeyHandler(string apiKey) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.TryAddWithoutValidation("x-api-key", apiKey);
        return base.SendAsync(request, cancellationToken);
    }
}
