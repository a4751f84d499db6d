using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Profiles;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Applies event retention (data is kept only as long as needed) at start-up and then every <see cref="RetentionOptions.SweepInterval"/>:
/// expired events are removed from every profile (<see cref="ProfileIngestion.ApplyRetention"/>), and when
/// any were, durable storage is compacted so they leave the disk too.
/// </summary>
internal sealed class RetentionService(ProfileIngestion ingestion, IStoreCompaction compaction, IOptions<PrivacyOptions> options, ServiceHealth health, ILogger<RetentionService> logger)
    : SupervisedBackgroundService(health, logger)
{
    // Events were removed in memory and the compaction that takes them off the disk has not succeeded yet.
    private bool _compactionOwed;

    // What the restore found is read once, when the job first runs (after the restore: services start in order); a job
    // restarted after a failure owes only what it had not compacted yet.
    private bool _restoreRead;

    protected override string Job => "retention";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        if (ingestion.Retention.IsKeepForever)
        {
            logger.LogInformation("Event retention is off: events are kept forever");
            return;
        }

        // A failed sweep or compaction is retried by the base class; events removed in memory are logged as
        // removed, so a restart never brings them back, and the retry's compaction takes them off the disk.
        if (!_restoreRead)
        {
            _compactionOwed |= ingestion.CompactionOwedAtRestore;
            _restoreRead = true;
        }

        using var timer = new PeriodicTimer(options.Value.Retention.SweepInterval);
        do
        {
            var result = await Task.Run(() => ingestion.ApplyRetention(stoppingToken), stoppingToken);
            _compactionOwed |= result.EventsRemoved > 0;
            if (_compactionOwed)
            {
                await compaction.CompactAsync(stoppingToken);
                _compactionOwed = false;
            }

            if (result.EventsRemoved > 0)
            {
                logger.LogInformation("Retention removed {Events} expired events from {Profiles} profiles; storage compacted", result.EventsRemoved, result.ProfilesChanged);
            }

            Succeeded();
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
