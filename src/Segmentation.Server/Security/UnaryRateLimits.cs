using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Audit;
using Segmentation.Core.Validation;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Security;

/// <summary>
/// Per API key limits on unary calls (gRPC and HTTP/JSON alike): a token bucket per key holding one second's allowance
/// (<see cref="LimitsOptions.UnaryRequestsPerSecond"/>, or the key's own <c>RequestsPerSecond</c>), refilled
/// continuously. ASP.NET Core's rate limiting middleware takes one token per unary call, before its body is read;
/// <c>DecideBatch</c> takes one per user of the batch from the same bucket (<see cref="Acquire"/>): a batch of 10,000
/// users is 10,000 decisions, not one call. Other server-streaming calls (a watch, a streamed export) take one token per
/// call like a unary one; streams of events have their own limits (events per second);
/// unauthenticated calls never reach it. A refused call is RESOURCE_EXHAUSTED (HTTP 429) with a
/// <c>google.rpc.RetryInfo</c> delay (and <c>Retry-After</c> over HTTP).
/// </summary>
internal sealed class UnaryRateLimits(IOptions<LimitsOptions> limits) : IDisposable
{
    private readonly int _defaultRate = limits.Value.UnaryRequestsPerSecond;

    // One bucket per caller, built once (null: unlimited): a unary call (Decide on every page render) allocates nothing here.
    private readonly ConcurrentDictionary<ApiCaller, TokenBucketRateLimiter?> _buckets = new();
    private readonly ConcurrentDictionary<ApiCaller, RateLimitPartition<string>> _partitions = new();

    /// <summary>The calls per second <paramref name="caller"/> may make (0: unlimited).</summary>
    public int RateOf(ApiCaller caller) => caller.UnaryPerSecond > 0 ? caller.UnaryPerSecond : Math.Max(0, _defaultRate);

    /// <summary>Installs the limiter into <paramref name="options"/>.</summary>
    public void Configure(RateLimiterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var unlimited = RateLimitPartition.GetNoLimiter("");

        // Key names are configured and never empty, so no caller shares the unlimited partition's key.
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not { } grpc || !ChargedPerCall(grpc.Method)
                || context.Features.Get<ApiCaller>() is not { } caller
                ? unlimited
                : _partitions.GetOrAdd(caller, static (c, state) =>
                    state.Self.BucketOf(c) is { } bucket ? RateLimitPartition.Get(c.Name, _ => new Shared(bucket)) : state.Unlimited,
                    (Self: this, Unlimited: unlimited)));
        options.OnRejected = (rejected, _) =>
        {
            var context = rejected.HttpContext;
            var caller = context.Features.Get<ApiCaller>();
            var rate = caller is null ? _defaultRate : RateOf(caller);
            AuditRefusal(context, caller, rate);
            return new ValueTask(CallRejection.Write(
                context,
                StatusCode.ResourceExhausted,
                $"rate limit exceeded: at most {rate} calls per second for API key '{caller?.Name}' (unary calls and DecideBatch users together); retry after the delay given",
                RetryAfter(rejected.Lease, rate)));
        };
    }

    // A unary call, and a server-streaming one (a watch, a streamed export, DecideBatch: one token before its request is
    // read, the rest of its users' once it is, so a key over its rate or sending invalid batches is refused before the
    // request is parsed); streams of events have their own limit in events per second.
    private static bool ChargedPerCall(IMethod method) => method.Type is MethodType.Unary or MethodType.ServerStreaming;

    // An administrative call refused for the key's rate is on record like one refused for a missing scope: the attempt,
    // once a minute per key and action at most (the trail's own bound), never the request (it is not read).
    private static void AuditRefusal(HttpContext context, ApiCaller? caller, int rate)
    {
        if (caller is not null && context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc
            && Interceptors.AuditedMethods.ActionOf(grpc.Method.FullName, caller) is { } action)
        {
            var services = context.RequestServices;
            Interceptors.AuditedMethods.RecordRefusal(services.GetRequiredService<AdminAuditTrail>(), services.GetRequiredService<ILogger<UnaryRateLimits>>(), caller.Name, action, "RESOURCE_EXHAUSTED", $"the key's rate limit of {rate} calls per second was reached");
        }
    }

    /// <summary>
    /// Takes <paramref name="calls"/> tokens (a batch's users) from <paramref name="caller"/>'s bucket or throws
    /// <see cref="RateLimitExceededException"/> (retryable); more than a second's allowance throws
    /// <see cref="ValidationException"/> on <paramref name="field"/> instead, since retrying could never succeed.
    /// <paramref name="charged"/> of them were taken already (the call's own token, at the door).
    /// </summary>
    public void Acquire(ApiCaller caller, int calls, string field, int charged = 0)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (BucketOf(caller) is not { } bucket)
        {
            return;
        }

        var rate = RateOf(caller);
        if (calls > rate)
        {
            throw new ValidationException(field, $"{calls} users in one batch are more than this API key may have decided in a second; send at most {rate} at a time");
        }

        if (calls <= charged)
        {
            return;
        }

        using var lease = bucket.AttemptAcquire(calls - charged);
        if (!lease.IsAcquired)
        {
            throw new RateLimitExceededException($"rate limit exceeded: at most {rate} calls per second for API key '{caller.Name}' (unary calls and DecideBatch users together); retry after the delay given", RetryAfter(lease, rate) + (TimeSpan.FromSeconds(1.0 / rate) * charged));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var bucket in _buckets.Values)
        {
            bucket?.Dispose();
        }
    }

    private TokenBucketRateLimiter? BucketOf(ApiCaller caller) =>
        _buckets.GetOrAdd(caller, static (c, self) => self.RateOf(c) is > 0 and var rate ? new TokenBucketRateLimiter(Bucket(rate)) : null, this);

    private static TimeSpan RetryAfter(RateLimitLease lease, int rate) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var after) && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1.0 / Steps(rate));

    private static int Steps(int rate) => rate >= 20 ? 20 : 1;

    // Refilled in about 20 steps a second when the rate allows it, so the rate holds within a second; the period is
    // derived from the tokens per step, so the rate is exact (39/s is 1 token every 1/39 s, not 20/s); no queue.
    internal static TokenBucketRateLimiterOptions Bucket(int rate)
    {
        var tokens = Math.Max(1, rate / Steps(rate));
        return new()
        {
            TokenLimit = rate,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = TimeSpan.FromSeconds((double)tokens / rate),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
    }

    // A caller's bucket as the middleware's partition: never idle, so the middleware never disposes it (DecideBatch
    // takes from it too); this class disposes it.
    private sealed class Shared(RateLimiter bucket) : RateLimiter
    {
        public override TimeSpan? IdleDuration => null;

        public override RateLimiterStatistics? GetStatistics() => bucket.GetStatistics();

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => bucket.AttemptAcquire(permitCount);

        protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
            bucket.AcquireAsync(permitCount, cancellationToken);
    }
}
