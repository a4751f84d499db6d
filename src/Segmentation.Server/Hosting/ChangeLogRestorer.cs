using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;
using Segmentation.Core.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// At start-up, before anything else writes, replays the change log into the in-memory store (when
/// <see cref="SegmentationOptions.DataDirectory"/> is set) and opens it for appending. A torn tail is
/// truncated with a warning; corruption before the tail stops start-up.
/// </summary>
internal sealed class ChangeLogRestorer(
    IChangeLog changeLog,
    ProfileIngestion ingestion,
    IProfileStore store,
    RfmModelProvider rfm,
    ILogger<ChangeLogRestorer> logger) : IHostedService
{
    /// <summary>Name of the log file in the data directory.</summary>
    public const string FileName = "changes.log";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (changeLog is not FileChangeLog file)
        {
            logger.LogInformation("Durability is off (Segmentation:DataDirectory is not set): profiles are kept in memory only");
            return Task.CompletedTask;
        }

        var recovery = file.Recover(ingestion.Replay);
        var model = rfm.Recompute(store);
        logger.LogInformation(
            "Restored {Records} change records ({Bytes} bytes, {Dropped} bytes of torn tail dropped) from {Path} in {Elapsed} ms: {Profiles} profiles, RFM over {RfmCustomers} customers",
            recovery.Records,
            recovery.Bytes,
            recovery.DroppedBytes,
            file.FilePath,
            (long)recovery.Elapsed.TotalMilliseconds,
            store.Count,
            model.Customers);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
