using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;

namespace Segmentation.Server.Hosting;

/// <summary>
/// At start-up, before anything else writes (when <see cref="SegmentationOptions.DataDirectory"/> is
/// set): loads the latest snapshot into the in-memory store, replays the change log segments written
/// after it, opens the log for appending, recomputes RFM and evaluates the memberships of the restored
/// profiles. A torn log tail is truncated with a warning; a damaged snapshot or corruption before the
/// tail stops start-up.
/// </summary>
internal sealed class ChangeLogRestorer(
    DurableStorage storage,
    ProfileIngestion ingestion,
    IProfileStore store,
    RfmModelProvider rfm,
    ILogger<ChangeLogRestorer> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (storage.Files is not var (log, compactor))
        {
            logger.LogInformation("Durability is off (Segmentation:DataDirectory is not set): profiles are kept in memory only");
            return Task.CompletedTask;
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var snapshot = compactor.Restore();
        var recovery = log.Recover(ingestion.Replay, snapshot?.Segment ?? 1);
        var model = rfm.Recompute(store);
        var restoredAt = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        var evaluated = ingestion.EvaluateNewMemberships();
        logger.LogInformation(
            "Restored {Profiles} profiles from {Directory} in {Elapsed} ms: snapshot of {SnapshotProfiles} profiles ({SnapshotMs} ms), {Records} log records replayed ({Bytes} bytes, {Dropped} bytes of torn tail dropped); RFM over {RfmCustomers} customers; memberships of {Evaluated} profiles evaluated in {MembershipMs} ms",
            store.Count,
            log.Directory,
            (long)restoredAt.TotalMilliseconds,
            snapshot?.Profiles ?? 0,
            (long)(snapshot?.Elapsed.TotalMilliseconds ?? 0),
            recovery.Records,
            recovery.Bytes,
            recovery.DroppedBytes,
            model.Customers,
            evaluated,
            (long)(System.Diagnostics.Stopwatch.GetElapsedTime(started) - restoredAt).TotalMilliseconds);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
