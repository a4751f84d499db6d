using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.LoadTest.Tests;

/// <summary>What the load generator counts, and the runs it fails because they are not what the mode claims.</summary>
public sealed class LoadHarnessTests
{
    [Fact]
    public void Stream_modes_count_the_events_accepted_not_every_result()
    {
        // Regression: every result counted, so rejected and duplicate events (cheap, and no ingestion) raised events/s.
        var stats = new WorkerStats { Accepted = 90, Rejected = 6, Duplicate = 4 };
        stats.Latencies.AddRange(Enumerable.Repeat(1L, 100));

        Assert.Equal(90, ModeResult.From("stream-ingest", 1, [stats]).Throughput);
        Assert.Equal(45, ModeResult.From("stream-batch", 2, [stats]).Throughput);
        Assert.Equal(100, ModeResult.From("decide-hit", 1, [stats]).Throughput); // a unary mode counts its calls
    }

    [Fact]
    public async Task Decide_fresh_fails_a_decision_answered_from_the_cache()
    {
        // Regression: decide-fresh only counted cache hits; a catalog that stopped reading the page path would have made
        // it a run of cache hits reported as "every Decide computed in full".
        var scenarios = new Scenarios(LoadOptions.Parse([]), ["u1"], new EchoRequest());
        var stats = new WorkerStats();

        await scenarios.RunOnceAsync("decide-fresh", new DecisionsFromCache(), 0, 0, new Random(1), stats, measured: true);

        Assert.Equal(1, stats.Errors.GetValueOrDefault(StatusCode.DataLoss));
        Assert.Empty(stats.Latencies);

        var hits = new WorkerStats();
        await scenarios.RunOnceAsync("decide-hit", new DecisionsFromCache(), 0, 0, new Random(1), hits, measured: true);
        Assert.Equal((1, 1L), (hits.Latencies.Count, hits.CacheHits)); // a mode of cache hits takes them
    }

    // Answers every unary call with a decision served from the cache.
    private sealed class DecisionsFromCache : CallInvoker
    {
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            new(Task.FromResult((TResponse)(object)new DecideResponse { Decision = new Decision { FromCache = true } }), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();
    }
}
