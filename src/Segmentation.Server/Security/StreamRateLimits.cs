using System.Collections.Concurrent;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using Segmentation.Core.Validation;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Security;

/// <summary>
/// A token bucket per caller (API key name) for ingested events, over <c>TrackEvent</c>, <c>TrackEvents</c>,
/// <c>StreamEvents</c>, <c>RecordOutcomes</c> (each outcome is an event of the profile) and the events a <c>Decide</c> carries together (and the messages of <c>EchoStream</c>, their baseline): it holds one second's allowance and refills continuously, so a caller
/// may burst up to <see cref="LimitsOptions.StreamEventsPerSecond"/> and sustain that rate.
/// </summary>
public sealed class StreamRateLimits(IOptions<LimitsOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, TokenBucketRateLimiter> _buckets = new(StringComparer.Ordinal);

    /// <summary>Events per second per caller.</summary>
    public int EventsPerSecond { get; } = options.Value.StreamEventsPerSecond;

    /// <summary>
    /// Takes <paramref name="events"/> from the caller's bucket or throws <see cref="RateLimitExceededException"/>
    /// (retryable); more events than a second's allowance throw <see cref="ValidationException"/> instead, since
    /// retrying them could never succeed (reported on <paramref name="field"/>).
    /// </summary>
    public void Acquire(string caller, int events, string field = "events")
    {
        if (events > EventsPerSecond)
        {
            var what = field == "outcomes" ? "outcomes (each an event of the user's profile)" : "events";
            throw new ValidationException(field, $"{events} {what} in one call or stream message are more than this API key may send in a second; send at most {EventsPerSecond} at a time");
        }

        var bucket = _buckets.GetOrAdd(caller, static (_, rate) => Create(rate), EventsPerSecond);
        using var lease = bucket.AttemptAcquire(events);
        if (!lease.IsAcquired)
        {
            throw new RateLimitExceededException($"ingestion rate limit exceeded: at most {EventsPerSecond} events per second per API key (TrackEvent, TrackEvents, StreamEvents, RecordOutcomes and the events of Decide together, with EchoStream's messages); retry after the delay given", TimeSpan.FromSeconds(1));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var bucket in _buckets.Values)
        {
            bucket.Dispose();
        }
    }

    /// <summary>The bucket of a caller allowed <paramref name="rate"/> events per second: the unary limits' shape, exact at any rate.</summary>
    public static TokenBucketRateLimiterOptions Bucket(int rate) => UnaryRateLimits.Bucket(rate);

    private static TokenBucketRateLimiter Create(int rate) => new(Bucket(rate));
}

/// <summary>A caller exceeded its rate limit; answered RESOURCE_EXHAUSTED with a <c>google.rpc.RetryInfo</c> delay.</summary>
public sealed class RateLimitExceededException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RateLimitExceededException(string message, TimeSpan retryAfter)
        : base(message) => RetryAfter = retryAfter;

    /// <summary>Creates the exception.</summary>
    public RateLimitExceededException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RateLimitExceededException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RateLimitExceededException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>When the caller may try again.</summary>
    public TimeSpan RetryAfter { get; } = TimeSpan.FromSeconds(1);
}
