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

    [Fact]
    public async Task Decide_miss_workers_never_share_a_user()
    {
        // Regression (review): every worker drew from all users, so one's Decide could be answered from the cache another's
        // had just filled after their TrackEvents: a hit counted as a miss (3 % of decide-miss's Decides at acf7be5).
        var options = LoadOptions.Parse([]);
        var users = Enumerable.Range(0, 3_000).Select(i => $"u{i}").ToArray();
        var scenarios = new Scenarios(options, users, new EchoRequest());
        var decided = new Dictionary<string, int>();
        foreach (var worker in Enumerable.Range(0, options.Concurrency))
        {
            var recorder = new Recorder();
            var random = new Random(worker);
            for (var i = 0; i < 50; i++)
            {
                await scenarios.RunOnceAsync("decide-miss", recorder, worker, i, random, new WorkerStats(), measured: true);
            }

            foreach (var user in recorder.Decided)
            {
                Assert.Equal(worker, decided.TryAdd(user, worker) ? worker : decided[user]);
            }
        }

        Assert.True(decided.Count > 1_000); // the users are still spread over the whole set
    }

    [Fact]
    public async Task Decide_fresh_sends_a_new_page_path_in_every_pass()
    {
        // Regression (review): the path was made of the worker and the iteration, both starting again at 0 in the measured
        // pass: it replayed the warm-up pass's paths, whose repeats were cached (or failed the run without admission on repeat).
        var scenarios = new Scenarios(LoadOptions.Parse([]), ["u1"], new EchoRequest());
        var recorder = new Recorder();

        await scenarios.RunOnceAsync("decide-fresh", recorder, 0, 0, new Random(0), new WorkerStats(), measured: false); // warm-up
        await scenarios.RunOnceAsync("decide-fresh", recorder, 0, 0, new Random(0), new WorkerStats(), measured: true);

        Assert.Equal(2, recorder.Paths.Distinct().Count());
    }

    [Fact]
    public void Server_cpu_per_rpc_counts_the_track_events_of_mixed()
    {
        // Regression (review): mixed's CPU per call divided the TrackEvents' CPU too by its Decides alone (1.2x too high at 20 %).
        var stats = new WorkerStats { Tracks = 20 };
        stats.Latencies.AddRange(Enumerable.Repeat(1L, 100));

        var result = ModeResult.From("mixed", 1, [stats]) with { ServerCpuSeconds = 0.0012 };

        Assert.Equal(10, result.ServerCpuMicrosPerRpc!.Value, 6);
    }

    [Fact]
    public void The_summary_prints_mixed_server_and_client_cpu_per_rpc()
    {
        // Regression (review): only the verdict's figure counted mixed's TrackEvents; the summary table and the mode's line
        // (where the docs' figures are copied from) still divided by its Decides alone, 1.2x too high at 20 %.
        var stats = new WorkerStats { Tracks = 20 };
        stats.Latencies.AddRange(Enumerable.Repeat(1L, 100));

        var mixed = ModeResult.From("mixed", 1, [stats]) with { ServerCpuSeconds = 0.0012, ClientCpuSeconds = 0.0024 };
        var miss = ModeResult.From("decide-miss", 1, [stats]) with { ServerCpuSeconds = 0.0012 };

        Assert.Equal(10, mixed.ServerCpuMicrosReported!.Value, 6);
        Assert.Equal(20, mixed.ClientCpuMicrosReported!.Value, 6);
        Assert.Equal(12, miss.ServerCpuMicrosReported!.Value, 6); // decide-miss's unit is its TrackEvent and Decide pair
    }

    [Theory]
    [InlineData("decide-miss")]
    [InlineData("decide-with-event")]
    [InlineData("all")]
    public void Fewer_users_than_workers_is_refused_for_the_modes_that_give_each_worker_its_own(string mode)
    {
        // Regression (review): with --users below --concurrency, workers shared users again (worker 0 and worker 100 of
        // 160 with 100 users), and a hit could be counted as a miss, as before each worker had users of its own.
        var refused = Assert.Throws<ArgumentException>(() => LoadOptions.Parse(["--mode", mode, "--users", "100"]));
        Assert.Contains("--users (100) must be at least --concurrency (160)", refused.Message, StringComparison.Ordinal);
        Assert.Equal(100, LoadOptions.Parse(["--mode", "decide-hit,decide-fresh", "--users", "100"]).Users); // the others need no users of their own
    }

    // Answers TrackEvent and Decide (computed), recording whom each Decide was for and its page path.
    private sealed class Recorder : UnaryOnly
    {
        public List<string> Decided { get; } = [];

        public List<string> Paths { get; } = [];

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            object response = request switch
            {
                DecideRequest decide => Record(decide),
                _ => new TrackEventResponse(),
            };
            return new(Task.FromResult((TResponse)response), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
        }

        private DecideResponse Record(DecideRequest request)
        {
            Decided.Add(request.UserId);
            Paths.Add(request.Context.PagePath);
            return new DecideResponse { Decision = new Decision() };
        }
    }

    // Answers every unary call with a decision served from the cache.
    private sealed class DecisionsFromCache : UnaryOnly
    {
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            new(Task.FromResult((TResponse)(object)new DecideResponse { Decision = new Decision { FromCache = true } }), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    // A channel of unary calls only: the modes these tests run make no other.
    private abstract class UnaryOnly : CallInvoker
    {
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
