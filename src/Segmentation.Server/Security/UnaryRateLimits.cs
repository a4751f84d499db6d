using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.RateLimiting;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Security;

/// <summary>
/// Per API key limits on unary calls (gRPC and HTTP/JSON alike), with ASP.NET Core's rate limiting middleware: a token
/// bucket per key name holding one second's allowance (<see cref="LimitsOptions.UnaryRequestsPerSecond"/>, or the key's
/// own <c>RequestsPerSecond</c>), refilled continuously. Streaming calls have their own limits (events per second) and
/// are not counted here; unauthenticated calls never reach it. A refused call is RESOURCE_EXHAUSTED (HTTP 429) with a
/// <c>google.rpc.RetryInfo</c> delay (and <c>Retry-After</c> over HTTP), before its body is read.
/// </summary>
internal static class UnaryRateLimits
{
    /// <summary>Installs the limiter into <paramref name="options"/>.</summary>
    public static void Configure(RateLimiterOptions options, LimitsOptions limits)
    {
        var defaultRate = limits.UnaryRequestsPerSecond;
        var unlimited = RateLimitPartition.GetNoLimiter("");

        // One partition per caller, built once: a unary call (Decide on every page render) allocates nothing here.
        // Key names are configured and never empty, so no caller shares the unlimited partition's key.
        var partitions = new ConcurrentDictionary<ApiCaller, RateLimitPartition<string>>();
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not { Method.Type: MethodType.Unary }
                || context.Features.Get<ApiCaller>() is not { } caller
                ? unlimited
                : partitions.GetOrAdd(caller, static (c, state) =>
                {
                    var rate = c.UnaryPerSecond > 0 ? c.UnaryPerSecond : state.DefaultRate;
                    return rate <= 0 ? state.Unlimited : RateLimitPartition.GetTokenBucketLimiter(c.Name, _ => Bucket(rate));
                }, (DefaultRate: defaultRate, Unlimited: unlimited)));
        options.OnRejected = (rejected, _) =>
        {
            var context = rejected.HttpContext;
            var caller = context.Features.Get<ApiCaller>();
            var rate = caller is { UnaryPerSecond: > 0 } ? caller.UnaryPerSecond : defaultRate;
            var retry = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1.0 / Steps(rate));
            return new ValueTask(CallRejection.Write(
                context,
                StatusCode.ResourceExhausted,
                $"rate limit exceeded: at most {rate} calls per second for API key '{caller?.Name}' (unary calls together); retry after the delay given",
                retry));
        };
    }

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
}
