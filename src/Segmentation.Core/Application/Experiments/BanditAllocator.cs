using Microsoft.Extensions.Hosting;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Experiments;

namespace Segmentation.Core.Application.Experiments;

/// <summary>
/// Reallocates bandit experiments' new users by Thompson sampling on their primary metric (<see cref="ThompsonSampling"/>),
/// from every exposed user's outcomes so far: at the cadence of <see cref="MeasurementOptions.BanditInterval"/>, and at
/// once when a catalog is published (its experiments start from their declared weights otherwise). Users already
/// assigned keep their arm.
/// </summary>
public sealed class BanditAllocator(CatalogProvider catalogs, DecisionMeasurement measurement, TimeProvider time)
{
    /// <summary>Reallocates every running bandit of <paramref name="catalog"/> (the serving one when null) with at least two arms on; returns how many.</summary>
    public int Reallocate(CatalogSnapshot? catalog = null)
    {
        catalog ??= catalogs.Current;
        var now = time.GetUtcNow().UtcTicks;
        var bandits = catalog.Experiments.Where(e => e.IsBandit && e.RunsAt(now)).ToList();
        if (bandits.Count == 0)
        {
            return 0;
        }

        measurement.Drain();
        var reallocated = 0;
        foreach (var e in bandits)
        {
            // An arm declared with weight 0 is off for new users: it takes no part in the draw (with no data its
            // posterior is flat, and would win most draws against a low rate) and keeps a share of 0.
            var live = Enumerable.Range(0, e.Arms.Count).Where(i => e.Arms[i].Weight > 0).ToList();
            if (live.Count < 2)
            {
                continue; // one arm on: the declared weights already send everyone to it
            }

            var summary = measurement.Exposures.Summarize(e.Id);
            var sums = live.Select(i => summary?.Arm(e.Arms[i].Id).Of(e.PrimaryMetric) ?? default).ToList();
            var shares = ThompsonSampling.Allocate(sums, ExperimentMetric.Named(e.PrimaryMetric), e.BanditFloor!.Value, new Random());
            var allocation = new double[e.Arms.Count];
            for (var k = 0; k < live.Count; k++)
            {
                allocation[live[k]] = shares[k];
            }

            e.Allocate(allocation);
            reallocated++;
        }

        return reallocated;
    }
}

/// <summary>Runs <see cref="BanditAllocator"/> at its cadence while the host runs.</summary>
public sealed class BanditAllocationService(BanditAllocator allocator, MeasurementOptions options) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        allocator.Reallocate();
        using var timer = new PeriodicTimer(options.BanditInterval);
        while (await timer.NextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            allocator.Reallocate();
        }
    }
}
