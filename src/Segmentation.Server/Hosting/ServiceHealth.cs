using System.Collections.Concurrent;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Segmentation.Core.Application.Membership;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Problems reported by the service's own background work (snapshots, retention, RFM, memberships): a
/// job that fails reports here and clears its report when it succeeds again. Read by the health check.
/// </summary>
public sealed class ServiceHealth
{
    private readonly ConcurrentDictionary<string, string> _problems = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _degraded = new(StringComparer.Ordinal);

    /// <summary>The current problems, by job: the service is not ready while there are any.</summary>
    public IReadOnlyDictionary<string, string> Problems => _problems;

    /// <summary>Failing jobs the service serves without (an ingestion adapter): reported as degraded, still ready.</summary>
    public IReadOnlyDictionary<string, string> Degraded => _degraded;

    /// <summary>Records that <paramref name="job"/> is failing and why.</summary>
    public void Report(string job, string reason) => _problems[job] = reason;

    /// <summary>Records that <paramref name="job"/>, which decisions do not depend on, is failing and why.</summary>
    public void ReportDegraded(string job, string reason) => _degraded[job] = reason;

    /// <summary>Clears what <paramref name="job"/> reported with <see cref="ReportDegraded"/>, leaving a problem it reported.</summary>
    public void ClearDegraded(string job) => _degraded.TryRemove(job, out _);

    /// <summary>Records that <paramref name="job"/> works again.</summary>
    public void Clear(string job)
    {
        _problems.TryRemove(job, out _);
        _degraded.TryRemove(job, out _);
    }
}

/// <summary>
/// Jobs the service can serve without (the Redis stream consumer): while one fails, health is Degraded with the
/// reason — readiness stays up (HTTP 200, gRPC SERVING), so an outage of Redis never takes decisions down with it.
/// </summary>
internal sealed class DegradedJobsHealthCheck(ServiceHealth health) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var degraded = health.Degraded;
        return Task.FromResult(degraded.Count == 0
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Degraded(string.Join("; ", degraded.Select(p => $"{p.Key}: {p.Value}"))));
    }
}

/// <summary>
/// Health of the durable store and the background work: unhealthy (gRPC health NOT_SERVING) while the
/// change log cannot write (writes are answered UNAVAILABLE meanwhile) or a background job keeps failing.
/// </summary>
internal sealed class StorageHealthCheck(DurableStorage storage, ServiceHealth health) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (storage.Files is var (log, _) && log.Failure is { } failure)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"the change log cannot write ({failure.Message}); writes are refused with UNAVAILABLE until it can"));
        }

        var problems = health.Problems;
        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy(string.Join("; ", problems.Select(p => $"{p.Key}: {p.Value}"))));
    }
}

/// <summary>
/// Readiness of the segment membership index: unhealthy while it is rebuilt after a restart (with its progress),
/// healthy once complete. Mapped only to the catalog service's health (its counts, member lists and watches read
/// the index); decisions and ingestion are ready without it.
/// </summary>
internal sealed class MembershipHealthCheck(MembershipIndex memberships) : IHealthCheck
{
    /// <summary>The tag of this check: services that do not read the index leave it out.</summary>
    public const string Tag = "memberships";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (memberships.IsComplete)
        {
            return Task.FromResult(HealthCheckResult.Healthy(memberships.LastRebuildTime is { } took ? $"complete (rebuilt in {took.TotalSeconds:0.0} s after the restart)" : "complete"));
        }

        var (done, total) = memberships.RebuildProgress;
        return Task.FromResult(HealthCheckResult.Unhealthy($"segment memberships are being rebuilt after a restart: {done:N0} of {total:N0} profiles evaluated"));
    }
}
