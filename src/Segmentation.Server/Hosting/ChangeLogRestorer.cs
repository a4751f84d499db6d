using System.Diagnostics;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// At start-up, before anything else writes (when <see cref="SegmentationOptions.DataDirectory"/> is
/// set): restores the store exactly as it was acknowledged (<see cref="ProfileIngestion.Restore"/>), after
/// which decisions are served, then evaluates the memberships of the restored profiles in the background
/// (the membership index reports itself incomplete meanwhile). A torn log tail is truncated with a
/// warning; a damaged snapshot, corruption before the tail, or a file the manifest expects but cannot find
/// stops start-up.
/// </summary>
internal sealed class ChangeLogRestorer(
    DurableStorage storage,
    ProfileIngestion ingestion,
    IProfileStore store,
    MembershipIndex memberships,
    Core.Application.Measurement.IMeasurementCheckpoint measurement,
    Core.Application.ChangeStream.ChangeStreamReconciler reconciler,
    Core.Application.Products.ProductRelations relations,
    ServiceHealth health,
    ILogger<ChangeLogRestorer> logger) : IHostedService, IDisposable
{
    private const string Job = "membership rebuild";
    private readonly CancellationTokenSource _stopping = new();
    private Task _rebuild = Task.CompletedTask;
    private StoreCapture? _restoredProfiles;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (storage.Store is not { } files)
        {
            logger.LogInformation("Durability is off (Segmentation:DataDirectory is not set): profiles are kept in memory only");
            return Task.CompletedTask;
        }

        var started = Stopwatch.GetTimestamp();
        var (snapshot, recovery, model, _) = ingestion.Restore(files);
        var restoredAt = Stopwatch.GetElapsedTime(started);
        if (measurement.Restore())
        {
            logger.LogInformation("Restored the remembered decisions, KPIs, segment size and churn histories in {Elapsed} ms", (long)(Stopwatch.GetElapsedTime(started) - restoredAt).TotalMilliseconds);
        }

        // Decide reads profiles and RFM, both restored: it is served from here on. The membership index is
        // rebuilt in the background; the calls that read it answer UNAVAILABLE until it is complete.
        // Related products are derived data, not saved: they are learned again from the profiles as restored (a capture
        // begun now, before any new event is accepted and learned live, so nothing counts twice; it is read in the
        // background, a write meanwhile keeping for it the profile it replaces; nothing writes before start-up ends).
        memberships.BeginRebuild(store.Count);
        logger.LogInformation(
            "Restored {Profiles} profiles from {Directory} in {Elapsed} ms: snapshot of {SnapshotProfiles} profiles ({SnapshotMs} ms), {Records} log records replayed ({Bytes} bytes, {Dropped} bytes of torn tail dropped); RFM over {RfmCustomers} customers. Decisions are served now; segment memberships are being rebuilt",
            store.Count,
            files.Data.Path,
            (long)restoredAt.TotalMilliseconds,
            snapshot?.Profiles ?? 0,
            (long)(snapshot?.Elapsed.TotalMilliseconds ?? 0),
            recovery.Records,
            recovery.Bytes,
            recovery.DroppedBytes,
            model.Customers);
        _restoredProfiles = store.BeginCapture();
        _rebuild = Task.Run(() => Rebuild(started), CancellationToken.None);

        if (files.Lost.Count > 0)
        {
            // The operator accepted losing the missing files: a snapshot now makes the directory whole again
            // (and the loss permanent), so the next start does not stop on the same files.
            files.CompactAsync(cancellationToken).GetAwaiter().GetResult();
            logger.LogWarning("Data directory {Directory}: compacted after starting without {Lost}; it is consistent again", files.Data.Path, string.Join(", ", files.Lost));
        }

        return Task.CompletedTask;
    }

    private void Rebuild(long started)
    {
        Profile[] restoredProfiles = [];
        try
        {
            var reading = Stopwatch.GetTimestamp();
            using (var capture = Interlocked.Exchange(ref _restoredProfiles, null))
            {
                restoredProfiles = capture?.Take(_stopping.Token) ?? []; // ended whatever happens: the store keeps nothing for it after
            }

            logger.LogInformation("Captured the {Profiles} restored profiles for relearning related products in {Ms} ms", restoredProfiles.Length, (long)Stopwatch.GetElapsedTime(reading).TotalMilliseconds);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Capturing the restored profiles failed; related products are learned from new events only");
        }

        // Memberships first (the change stream and the catalog calls wait for them), then related products; a rebuild
        // that failed is retried after the relearning, which then does not wait for it.
        var rebuilt = RebuildMemberships(started, retry: false);
        Relearn(restoredProfiles);
        restoredProfiles = []; // not kept while a failing rebuild retries
        if (!rebuilt)
        {
            RebuildMemberships(started, retry: true);
        }
    }

    // Until it succeeds: a failed rebuild leaves the index incomplete (the calls that read it answer UNAVAILABLE with a
    // retry hint; decisions and ingestion, which do not read it, stay ready, so health is degraded, not unready) and is
    // tried again after 1 s, doubling to 30 s, each time evaluating only the profiles still left out.
    // True once the rebuild succeeded (or the service stops); with retry false, after one failed attempt returns false.
    private bool RebuildMemberships(long started, bool retry)
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var evaluated = ingestion.EvaluateNewMemberships(_stopping.Token);
                var announced = reconciler.Reconcile(); // what changed while the server was down reaches the change stream
                if (announced > 0)
                {
                    logger.LogInformation("Change stream: {Entries} membership changes since the last saved state announced with cause 'restart'", announced);
                }

                health.Clear(Job);
                logger.LogInformation(
                    "Segment memberships of {Evaluated} profiles rebuilt in {Ms} ms; fully ready {Total} ms after the restore began",
                    evaluated,
                    (long)(memberships.LastRebuildTime ?? TimeSpan.Zero).TotalMilliseconds,
                    (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                return true;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return true;
            }
            catch (Exception ex)
            {
                health.ReportDegraded(Job, $"the rebuild after the restore failed ({ex.GetType().Name}: {ex.Message}); the calls that read segment memberships answer UNAVAILABLE until a retry succeeds");
                logger.LogError(ex, "Rebuilding segment memberships after the restore failed; retrying in {Backoff}", backoff);
            }

            if (!retry)
            {
                return false;
            }

            if (_stopping.Token.WaitHandle.WaitOne(backoff))
            {
                return true;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
        }

        return true;
    }

    // Related products, after the memberships (which decisions and the change stream wait for): derived data, so a
    // failure here is logged and the relations learn from new events as they arrive.
    private void Relearn(Profile[] restoredProfiles)
    {
        try
        {
            var learning = Stopwatch.GetTimestamp();
            var learned = relations.Learn(restoredProfiles, _stopping.Token);
            logger.LogInformation("Related products learned again from {Profiles} restored profiles in {Ms} ms: {Products} products", learned, (long)Stopwatch.GetElapsedTime(learning).TotalMilliseconds, relations.Products);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Learning related products again from the restored profiles failed; they are learned from new events");
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_rebuild.IsCompleted)
        {
            await _stopping.CancelAsync();
            await _rebuild.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public void Dispose()
    {
        Interlocked.Exchange(ref _restoredProfiles, null)?.Dispose();
        _stopping.Dispose();
    }
}
