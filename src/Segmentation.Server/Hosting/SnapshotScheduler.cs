using Microsoft.Extensions.Options;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Writes a snapshot and compacts the change log when enough log has accumulated
/// (<see cref="SegmentationOptions.SnapshotLogBytes"/>) or enough time has passed with changes
/// (<see cref="SegmentationOptions.SnapshotIntervalMinutes"/>), which bounds restore time and disk use.
/// </summary>
public sealed class SnapshotScheduler(DurableStorage storage, IOptions<SegmentationOptions> options, TimeProvider time, Core.Application.Measurement.IMeasurementCheckpoint measurement, ServiceHealth health, ILogger<SnapshotScheduler> logger)
    : SupervisedBackgroundService(health, logger)
{
    protected override string Job => "snapshot";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        if (storage.Files is not var (_, compactor))
        {
            return;
        }

        // A failed snapshot leaves every change in the log (nothing is lost) and is retried by the base class.
        var last = time.GetUtcNow();
        var interval = TimeSpan.FromMinutes(options.Value.SnapshotIntervalMinutes);
        while (!stoppingToken.IsCancellationRequested)
        {
            if (!Recovering)
            {
                await Task.Delay(TimeSpan.FromSeconds(options.Value.SnapshotCheckSeconds), time, stoppingToken); // after a failure, the backoff was the wait
            }

            var pending = compactor.LogBytesSinceSnapshot();
            if (Recovering || pending >= options.Value.SnapshotLogBytes || (pending > 0 && time.GetUtcNow() - last >= interval))
            {
                await compactor.CompactAsync(stoppingToken);
                measurement.Save();
                last = time.GetUtcNow();
                Succeeded();
            }
        }
    }
}
