using Microsoft.Extensions.Options;
using Segmentation.Core.Profiles;
using Segmentation.Core.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Applies event retention (F9) at start-up and then every <see cref="RetentionOptions.SweepInterval"/>:
/// expired events are removed from every profile (<see cref="ProfileIngestion.ApplyRetention"/>), and when
/// any were, durable storage is compacted so they leave the disk too.
/// </summary>
internal sealed class RetentionService(ProfileIngestion ingestion, IStoreCompaction compaction, IOptions<PrivacyOptions> options, ILogger<RetentionService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (ingestion.Retention.IsKeepForever)
        {
            logger.LogInformation("Event retention is off: events are kept forever");
            return;
        }

        using var timer = new PeriodicTimer(options.Value.Retention.SweepInterval);
        try
        {
            do
            {
                var result = await Task.Run(() => ingestion.ApplyRetention(stoppingToken), stoppingToken);
                if (result.EventsRemoved > 0)
                {
                    await compaction.CompactAsync(stoppingToken);
                    logger.LogInformation("Retention removed {Events} expired events from {Profiles} profiles; storage compacted", result.EventsRemoved, result.ProfilesChanged);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
