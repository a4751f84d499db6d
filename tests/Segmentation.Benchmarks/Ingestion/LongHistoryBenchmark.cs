using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;

namespace Segmentation.Benchmarks.Ingestion;

/// <summary>
/// One page view written to a profile that already holds <see cref="History"/> events (a bot, a busy B2B
/// account): the whole write path, derivation and membership included. The cost must not grow with the
/// history: compare the rows. The history is written through the same path first (in time order, a new
/// session every 20 events) and kept; every iteration starts again from it, so a row's history grows by at
/// most 1,024 events (16 invocations of 64 writes) while it is measured.
/// </summary>
[MemoryDiagnoser]
[InvocationCount(16)]
public class LongHistoryBenchmark
{
    private const int WritesPerInvocation = 64;

    private BenchWorld _world = null!;
    private Profile _history = null!;
    private DateTimeOffset _at;
    private DateTimeOffset _historyEnd;
    private long _next;

    /// <summary>Events the profile holds before the measured writes.</summary>
    [Params(100, 10_000, 100_000)]
    public int History { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld(populationCustomers: 0);
        // The history ends an hour before the clock's now (the Decide's time): recent activity, as a storefront's user
        // has; the measured writes after it stay in the past for 360,000 writes per iteration.
        _at = _world.Clock.GetUtcNow().AddHours(-1).AddMilliseconds(-10.0 * History);
        for (var i = 0; i < History; i++)
        {
            Write();
        }

        _history = _world.Store.Get("long-history")!;
        _historyEnd = _at;
    }

    /// <summary>Puts the profile back to its history alone.</summary>
    [IterationSetup]
    public void Reset()
    {
        _world.Store.Remove("long-history"); // a restore keeps the later of two versions: the profile goes first
        _world.Store.Restore(_history);
        _at = _historyEnd;
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>Writes more page views to the long profile (the time is per write).</summary>
    [Benchmark(OperationsPerInvoke = WritesPerInvocation)]
    public TrackResult TrackOnLongHistory()
    {
        TrackResult last = default;
        for (var i = 0; i < WritesPerInvocation; i++)
        {
            last = Write();
        }

        return last;
    }

    /// <summary>
    /// A page view, then a Decide for the same user (what a storefront does when a view changes what to show): the
    /// write derives the lead score and evaluates memberships, then the decision evaluates the catalog again over the
    /// same events (time per pair). The Decide is served now, as a storefront's is (counted, remembered, cached): given
    /// the history's own time it was a preview, which skips those costs.
    /// </summary>
    [Benchmark(OperationsPerInvoke = WritesPerInvocation)]
    public Core.Decisions.Decision TrackThenDecideOnLongHistory()
    {
        Core.Decisions.Decision last = null!;
        for (var i = 0; i < WritesPerInvocation; i++)
        {
            Write();
            last = _world.Engine.Decide(new Core.Application.Decisions.DecisionRequest("long-history", "", _world.Request));
        }

        return last;
    }

    private TrackResult Write()
    {
        var n = _next++;
        _at = _at.AddMilliseconds(10);
        var e = _world.PageView("long-history", $"lh-{n}");
        return _world.Ingestion.Track(e with { Timestamp = _at, Context = e.Context with { SessionId = $"lh-s{n / 20}" } });
    }
}
