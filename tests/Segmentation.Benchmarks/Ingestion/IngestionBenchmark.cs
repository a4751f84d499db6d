using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Profiles;

namespace Segmentation.Benchmarks.Ingestion;

/// <summary>
/// One page view through validation into the in-memory store. Every invocation has a new event id
/// (so it is applied, not de-duplicated) and goes to one of 10,000 users in turn, so profiles grow
/// slowly over a run as they would in production.
/// </summary>
[MemoryDiagnoser]
public class IngestionBenchmark
{
    private const int Users = 10_000;

    private BenchWorld _world = null!;
    private string[] _users = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _users = Enumerable.Range(0, Users).Select(i => $"ingest-{i}").ToArray();
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>Builds and tracks one event (the build is what the gRPC mapper does per request).</summary>
    [Benchmark]
    public TrackResult TrackPageView()
    {
        var n = _next++;
        return _world.Ingestion.Track(_world.PageView(_users[n % Users], $"ev-{n}"));
    }

    /// <summary>The same page view as a storefront sends it (and the load generator's stream-ingest): with the visitor's country, which the profile observes as an attribute.</summary>
    [Benchmark]
    public TrackResult TrackStorefrontPageView()
    {
        var n = _next++;
        return _world.Ingestion.Track(_world.PageView(_users[n % Users], $"ev-{n}", "GB"));
    }
}
