using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// At start-up, before anything else writes (when <see cref="SegmentationOptions.DataDirectory"/> is
/// set): restores the store exactly as it was acknowledged (<see cref="ProfileIngestion.Restore"/>) and
/// evaluates the memberships of the profiles restored from the snapshot. A torn log tail is truncated with a
/// warning; a damaged snapshot, corruption before the tail, or a file the manifest expects but cannot find
/// stops start-up.
/// </summary>
internal sealed class ChangeLogRestorer(
    DurableStorage storage,
    ProfileIngestion ingestion,
    IProfileStore store,
    ILogger<ChangeLogRestorer> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (storage.Store is not { } files)
        {
            logger.LogInformation("Durability is off (Segmentation:DataDirectory is not set): profiles are kept in memory only");
            return Task.CompletedTask;
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var (snapshot, recovery, model, _) = ingestion.Restore(files);
        var restoredAt = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        var evaluated = ingestion.EvaluateNewMemberships();
        logger.LogInformation(
            "Restored {Profiles} profiles from {Directory} in {Elapsed} ms: snapshot of {SnapshotProfiles} profiles ({SnapshotMs} ms), {Records} log records replayed ({Bytes} bytes, {Dropped} bytes of torn tail dropped); RFM over {RfmCustomers} customers; memberships of {Evaluated} profiles evaluated in {MembershipMs} ms",
            store.Count,
            files.Data.Path,
            (long)restoredAt.TotalMilliseconds,
            snapshot?.Profiles ?? 0,
            (long)(snapshot?.Elapsed.TotalMilliseconds ?? 0),
            recovery.Records,
            recovery.Bytes,
            recovery.DroppedBytes,
            model.Customers,
            evaluated,
            (long)(System.Diagnostics.Stopwatch.GetElapsedTime(started) - restoredAt).TotalMilliseconds);
        if (files.Lost.Count > 0)
        {
            // The operator accepted losing the missing files: a snapshot now makes the directory whole again
            // (and the loss permanent), so the next start does not stop on the same files.
            files.CompactAsync(cancellationToken).GetAwaiter().GetResult();
            logger.LogWarning("Data directory {Directory}: compacted after starting without {Lost}; it is consistent again", files.Data.Path, string.Join(", ", files.Lost));
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
