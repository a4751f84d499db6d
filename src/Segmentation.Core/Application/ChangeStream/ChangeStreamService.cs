using Segmentation.Core.Application.Membership;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Segmentation.Core.Application.ChangeStream;

/// <summary>
/// Keeps the change stream durable and the triggers firing while the host runs: every 100 ms it writes the new
/// entries to the journal (then fsyncs), every second it fires the triggers that came due (once start-up is over),
/// every 10 seconds it saves the pending triggers if they changed (the entries after the save are read again after a
/// restart), every minute it drops what the retention window no longer keeps, every 5 minutes and at shutdown it saves
/// every user's memberships (<see cref="ChangeStreamReconciler"/> compares them after a restart). On shutdown it
/// writes everything (once, however often the host stops it: <see cref="ShutdownSave"/>), so a graceful restart loses
/// nothing; after a crash, at most the last 100 ms of entries can be missing from the journal.
/// </summary>
public sealed class ChangeStreamService(ChangeFeed feed, TriggerScheduler triggers, IChangeFeedJournal journal, TimeProvider time, ILogger<ChangeStreamService>? logger = null, IHostApplicationLifetime? lifetime = null, ChangeStreamReconciler? reconciler = null, Membership.MembershipIndex? memberships = null) : BackgroundService
{
    /// <summary>How often new entries are written to the journal.</summary>
    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(100);

    private readonly ILogger _logger = logger ?? NullLogger<ChangeStreamService>.Instance;
    private readonly Lock _gate = new();
    private readonly ShutdownSave _shutdown = new();
    private readonly Validation.RepeatedLogLimit _failureLog = new(perMinute: 5); // a full disk fails every 100 ms tick

    /// <summary>Writes unwritten entries to the journal and, when <paramref name="saveTriggers"/>, the pending triggers if they changed.</summary>
    public void Flush(bool saveTriggers = true)
    {
        lock (_gate)
        {
            while (feed.Unwritten(4096) is { Count: > 0 } entries)
            {
                journal.Append(entries);
                feed.MarkJournaled(entries[^1].Offset);
            }

            if (saveTriggers && triggers.Capture(feed.Journaled) is { } checkpoint)
            {
                journal.SaveTriggers(checkpoint);
            }
        }
    }

    /// <summary>Saves what consumers have been told (the memberships with the offset they account for), after writing the entries up to it.</summary>
    public void SaveMemberships() => reconciler?.Save(() => Flush(saveTriggers: false));

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(FlushInterval);
        var ticks = 0;
        while (await timer.NextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                // Triggers fire once start-up is over (profiles restored): a due trigger checked against a store not yet
                // restored would find no user and be dropped.
                if (++ticks % 10 == 0 && (lifetime is null || lifetime.ApplicationStarted.IsCancellationRequested))
                {
                    triggers.Tick(time.GetUtcNow());
                }

                Flush(saveTriggers: ticks % 100 == 0);
                if (ticks % 600 == 0)
                {
                    journal.Trim(feed.Oldest);
                }

                if (ticks % 3000 == 0 && Ready())
                {
                    SaveMemberships(); // every 5 minutes: what consumers have been told, for the next restart to compare with
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                if (_failureLog.ShouldLog(ex.GetType(), nameof(ExecuteAsync), out var suppressed))
                {
                    _logger.LogError(ex, "Writing the change stream journal or firing triggers failed; retrying every {Interval} ms ({Suppressed} more of the same in the last minute not logged)", FlushInterval.TotalMilliseconds, suppressed);
                }
            }
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (lifetime?.ApplicationStarted.IsCancellationRequested == false)
        {
            return; // a host whose start failed writes nothing to a data directory that may not even be its own
        }

        _shutdown.Run(() =>
        {
            Flush();
            if (Ready())
            {
                SaveMemberships();
            }
        });
    }

    // Memberships are worth saving once start-up is over and they are rebuilt (a partial index would announce noise).
    private bool Ready() => (lifetime is null || lifetime.ApplicationStarted.IsCancellationRequested) && (memberships?.IsComplete ?? true);
}
