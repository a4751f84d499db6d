using BenchmarkDotNet.Attributes;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Requests;

namespace Segmentation.Benchmarks.Decisions;

/// <summary>
/// An email send in process: <c>DecideBatch</c> for 100,000 users in ten batches of 10,000 over the 50-segment
/// catalog with email contact policies (caps by engagement, suppression, quiet hours), each user's contact verdict
/// and send time computed; against the same users on the web channel (no policy, no send time). Users have a year of
/// purchases, email sends and opens at a habitual hour. Reported per user (OperationsPerInvoke); users per second is
/// 10^9 / ns. Target: at least 100,000 users/s with policies and send times (≤ 10 µs per user).
/// </summary>
[MemoryDiagnoser]
public class BatchBenchmark
{
    private const int Users = 100_000;
    private const int BatchSize = 10_000;
    private BenchWorld _world = null!;
    private string[][] _batches = null!;
    private RequestContext _email = null!;
    private RequestContext _web = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        var random = new Random(11);
        var ids = new string[Users];
        for (var u = 0; u < Users; u++)
        {
            var user = ids[u] = $"mail-{u}";
            var hour = 6 + random.Next(16);
            _world.Track(user, EventTypes.Purchase, _world.Now.AddDays(-random.Next(1, 365)), Math.Round(10 + (random.NextDouble() * 200), 2), $"{user}-o");
            for (var s = 0; s < 4; s++)
            {
                var sent = _world.Now.AddDays(-7 * (s + 1)).Date.AddHours(hour);
                _world.Track(user, EventTypes.EmailSend, new DateTimeOffset(sent, TimeSpan.Zero), campaign: $"c{s}");
                if (random.NextDouble() < 0.5)
                {
                    _world.Track(user, EventTypes.EmailOpen, new DateTimeOffset(sent.AddMinutes(20 + random.Next(40)), TimeSpan.Zero), campaign: $"c{s}");
                }
            }
        }

        _world.Rfm.Recompute(_world.Store);
        _world.Catalogs.Load(new InMemoryCatalogSource([.. _world.Catalogs.Current.Files, new CatalogFile("policies.yaml", BenchWorld.EmailPolicies)], "bench"));
        _batches = [.. ids.Chunk(BatchSize)];
        _email = _world.Request with { Channel = "email", PagePath = "" };
        _web = _world.Request with { PagePath = "" };

        var first = _world.Engine.DecideBatch(_batches[0], _email, _world.Now, explain: false).First();
        if (first.Decision?.Contact is null || first.SendTime is null)
        {
            throw new InvalidOperationException("an email batch should carry the contact verdict and the send time");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _world.Dispose();

    /// <summary>100,000 users on email: decision, contact verdict and send time each.</summary>
    [Benchmark(OperationsPerInvoke = Users)]
    public int EmailBatchWithPoliciesAndSendTimes() => Run(_email);

    /// <summary>The same users on the web channel: the decision alone.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Users)]
    public int WebBatch() => Run(_web);

    private int Run(RequestContext context)
    {
        var decided = 0;
        foreach (var batch in _batches)
        {
            foreach (var item in _world.Engine.DecideBatch(batch, context, _world.Now, explain: false))
            {
                decided += item.Decision is null ? 0 : 1;
            }
        }

        return decided;
    }
}
