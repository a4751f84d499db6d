using System.Diagnostics;
using System.Globalization;
using Segmentation.Core.Privacy;
using Segmentation.Core.Application.Decisions;

namespace Segmentation.Benchmarks.Decisions;

/// <summary>
/// What remembering decisions (the ledger behind attribution and KPIs) adds to a cache hit, measured as a paired
/// comparison: the same cached decision through the engine with measurement and through one without, alternating in
/// blocks of <see cref="Block"/> calls in one process, so that the machine's slow and fast phases fall on both alike. A
/// difference of a few nanoseconds is below what two sequential BenchmarkDotNet runs of ~120 ns can separate on a
/// shared machine (the same pair measured +3 % to +16 % there). Run with
/// <c>dotnet run -c Release --project tests/Segmentation.Benchmarks -- --paired-hit [rounds]</c>.
/// </summary>
internal static class PairedCacheHit
{
    private const int Block = 500_000;

    public static void Run(int rounds)
    {
        using var world = new BenchWorld();
        var request = new DecisionRequest(BenchWorld.ShopperId, "", world.Request, world.Now);
        world.Engine.Decide(request);
        world.Engine.Decide(request); // asked twice: cached
        var unmeasured = new DecisionEngine(world.Catalogs, world.Store, world.Rfm, world.Cache, world.Decider, world.Clock, world.Get<ConsentPolicy>(), measurement: null);
        var (measured, plain, ratios) = (new List<double>(), new List<double>(), new List<double>());
        for (var round = 0; round <= rounds; round++)
        {
            // Two plain loops (no delegate between the timer and the call).
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < Block; i++)
            {
                world.Engine.Decide(request);
            }

            var withLedger = watch.Elapsed.TotalNanoseconds / Block;
            watch.Restart();
            for (var i = 0; i < Block; i++)
            {
                unmeasured.Decide(request);
            }

            var without = watch.Elapsed.TotalNanoseconds / Block;
            if (round > 0)
            {
                // The first round warms both up.
                measured.Add(withLedger);
                plain.Add(without);
                ratios.Add(withLedger / without);
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cache hit, {rounds} alternating rounds of {Block:N0} calls each"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  with measurement     {Quartiles(measured, "F1")} ns"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  without measurement  {Quartiles(plain, "F1")} ns"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  paired ratio         {Quartiles(ratios, "F3")} (target <= 1.05)"));
    }

    private static string Quartiles(List<double> values, string format)
    {
        var sorted = values.Order().ToList();
        string At(double q) => sorted[(int)(q * (sorted.Count - 1))].ToString(format, CultureInfo.InvariantCulture);
        return $"median {At(0.5)} (p25 {At(0.25)}, p75 {At(0.75)})";
    }
}
