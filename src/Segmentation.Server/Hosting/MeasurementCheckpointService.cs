using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Measurement;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Saves measurement's state to the data directory every <see cref="SegmentationOptions.MeasurementCheckpointSeconds"/>
/// when decisions were served, outcomes counted, churn counted or segment sizes sampled differently since the last
/// save, and once more at shutdown (once, however often
/// the host stops it: <see cref="Core.Application.ShutdownSave"/>). What happened between two saves is in the decision
/// journal (fsynced every 20 ms), which each save shortens: a crash loses at most the journal's last 20 ms of decisions
/// and outcome credits; profiles (outcomes included, as events) are in the change log and never lost. A failing save
/// is reported to health and retried at once when the job starts again (after its backoff); health clears only after
/// a save succeeded.
/// </summary>
public sealed class MeasurementCheckpointService(
    IMeasurementCheckpoint checkpoint,
    DecisionMeasurement measurement,
    IOptions<SegmentationOptions> options,
    ServiceHealth health,
    ILogger<MeasurementCheckpointService> logger,
    IHostApplicationLifetime? lifetime = null,
    ChurnHistory? churn = null,
    SegmentSizeHistory? sizes = null) : SupervisedBackgroundService(health, logger)
{
    private readonly Core.Application.ShutdownSave _shutdown = new();
    private (long Issued, long Outcomes, long Churn, long Sizes) _saved = (-1, -1, -1, -1);

    protected override string Job => "measurement checkpoint";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        if (checkpoint is NoMeasurementCheckpoint)
        {
            return;
        }

        if (Recovering)
        {
            SaveIfChanged(); // the save that failed, now rather than a whole interval later
            Succeeded();
        }
        else
        {
            _saved = State();
        }

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.MeasurementCheckpointSeconds));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            SaveIfChanged();
            Succeeded();
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (checkpoint is NoMeasurementCheckpoint || lifetime?.ApplicationStarted.IsCancellationRequested == false)
        {
            // A host whose start failed leaves the data directory as it found it: its measurement state may be empty or
            // half restored, and the directory may even belong to another server (the one holding its lock).
            return;
        }

        try
        {
            _shutdown.Run(SaveIfChanged);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Saving measurement's state at shutdown failed ({Reason}); the last saved state will be restored", ex.Message);
        }
    }

    private void SaveIfChanged()
    {
        var now = State();
        if (now != _saved)
        {
            checkpoint.Save();
            _saved = now;
        }
    }

    private (long, long, long, long) State() => (measurement.Ledger.Issued, measurement.Kpis.OutcomesCounted, churn?.Counted ?? 0, sizes?.Changes ?? 0);
}
