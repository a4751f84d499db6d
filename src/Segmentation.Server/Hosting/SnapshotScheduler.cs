using Microsoft.Extensions.Options;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Writes a snapshot and compacts the change log when enough log has accumulated
/// (<see cref="SegmentationOptions.SnapshotLogBytes"/>) or enough time has passed with changes
/// (<see cref="SegmentationOptions.SnapshotIntervalMinutes"/>), which bounds restore time and disk use.
/// </summary>
internal sealed class SnapshotScheduler(DurableStorage storage, IOptions<SegmentationOptions> options, TimeProvider time, ILogger<SnapshotScheduler> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (storage.Files is not var (_, compactor))
        {
            return;
        }

        var last = time.GetUtcNow();
        var interval = TimeSpan.FromMinutes(options.Value.SnapshotIntervalMinutes);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromSeconds(options.Value.SnapshotCheckSeconds), time, stoppingToken);
                var pending = compactor.LogBytesSinceSnapshot();
                if (pending >= options.Value.SnapshotLogBytes || (pending > 0 && time.GetUtcNow() - last >= interval))
                {
                    try
                    {
                        await compactor.CompactAsync(stoppingToken);
                        last = time.GetUtcNow();
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        logger.LogError(ex, "Snapshot failed; the change log keeps every change and the next attempt follows");
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
