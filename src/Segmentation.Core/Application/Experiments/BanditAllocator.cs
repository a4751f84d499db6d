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
    /// <summary>Reallocates every running bandit of <paramref name="catalog"/> (the serving one when null); returns how many.</summary>
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
        foreach (var e in bandits)
        {
            var summary = measurement.Exposures.Summarize(e.Id);
            var sums = e.Arms.Select(a => summary?.Arm(a.Id).Of(e.PrimaryMetric) ?? default).ToList();
            e.Allocate(ThompsonSampling.Allocate(sums, ExperimentMetric.Named(e.PrimaryMetric), e.BanditFloor!.Value, new Random()));
        }

        return bandits.Count;
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
