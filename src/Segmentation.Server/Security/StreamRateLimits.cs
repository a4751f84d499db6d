using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Security;

/// <summary>
/// A token bucket per caller (API key name) for streamed events: it holds one second's allowance and
/// refills continuously, so a caller may burst up to <see cref="LimitsOptions.StreamEventsPerSecond"/>
/// and sustain that rate across all its streams.
/// </summary>
public sealed class StreamRateLimits(IOptions<LimitsOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, TokenBucketRateLimiter> _buckets = new(StringComparer.Ordinal);

    /// <summary>Events per second per caller.</summary>
    public int EventsPerSecond { get; } = options.Value.StreamEventsPerSecond;

    /// <summary>Takes one event from <paramref name="caller"/>'s bucket; false when it is empty.</summary>
    public bool TryAcquire(string caller)
    {
        var bucket = _buckets.GetOrAdd(caller, static (_, rate) => Create(rate), EventsPerSecond);
        using var lease = bucket.AttemptAcquire(1);
        return lease.IsAcquired;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var bucket in _buckets.Values)
        {
            bucket.Dispose();
        }
    }

    private static TokenBucketRateLimiter Create(int rate)
    {
        // Refill in 20 steps a second when the rate allows it, so the rate holds within a second.
        var steps = rate >= 20 ? 20 : 1;
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = rate,
            TokensPerPeriod = rate / steps,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1.0 / steps),
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    }
}
