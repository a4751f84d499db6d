using Segmentation.Core.Application.Changes;

namespace Segmentation.Server.Hosting;

/// <summary>
/// A background job that a recoverable failure never takes down: an I/O error (a full disk, a directory
/// that refuses writes) or storage that cannot write is logged, reported to <see cref="ServiceHealth"/>
/// (health turns NOT_SERVING) and the job starts again after a backoff (1 s doubling to 30 s, so health recovers within 30 s of the cause going away); it clears
/// its report when <see cref="Succeeded"/> is called. Any other failure is a defect: it is logged as
/// critical, the process exit code is set to 70 (EX_SOFTWARE) and the host stops, so a supervisor that
/// restarts on failure does restart it.
/// </summary>
public abstract class SupervisedBackgroundService(ServiceHealth health, ILogger logger) : BackgroundService
{
    /// <summary>Exit code of a process stopped by a failed background job.</summary>
    public const int FailedExitCode = 70;

    private static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LastBackoff = TimeSpan.FromSeconds(30);

    /// <summary>The job's name in logs and health reports.</summary>
    protected abstract string Job { get; }

    /// <summary>Backoff before the first restart (tests shorten it).</summary>
    public TimeSpan InitialBackoff { get; init; } = FirstBackoff;

    /// <summary>Sets the process exit code (tests observe it instead).</summary>
    public Action<int> SetExitCode { get; init; } = static code => Environment.ExitCode = code;

    /// <summary>The job; returns when there is nothing (more) to do.</summary>
    protected abstract Task RunAsync(CancellationToken stoppingToken);

    /// <summary>
    /// True while the job runs again after a failure and has not succeeded since: the job then retries the work
    /// that failed at once, instead of waiting for its next scheduled turn, so health reflects the cause going away.
    /// </summary>
    protected bool Recovering { get; private set; }

    /// <summary>
    /// Failures of this job's own dependencies that clear by themselves (a network service unreachable): reported in
    /// health and retried with backoff, like a storage failure, instead of stopping the service.
    /// </summary>
    protected virtual bool IsTransient(Exception exception) => false;

    /// <summary>A failure of the disk or the change log (retried with backoff by every job; never a reason to drop data).</summary>
    protected static bool IsStorageFailure(Exception exception) => exception is IOException or UnauthorizedAccessException or StorageUnavailableException;

    /// <summary>Whether the service is not ready while this job fails (true), or only degraded (an optional adapter).</summary>
    protected virtual bool NeededToServe => true;

    /// <summary>Clears the job's health report: call after each iteration that worked.</summary>
    protected void Succeeded()
    {
        Recovering = false;
        health.Clear(Job);
    }

    /// <summary>
    /// Reports the job degraded (health Degraded, the service still ready) for a problem it works around without failing:
    /// cleared by <see cref="NoLongerDegraded"/> or <see cref="Succeeded"/>.
    /// </summary>
    protected void Degraded(string reason) => health.ReportDegraded(Job, reason);

    /// <summary>
    /// Clears what <see cref="Degraded"/> reported, leaving a failure the job reported — for a job the service needs
    /// (<see cref="NeededToServe"/>); a job it does not need reports its failures as degraded too, and this clears them.
    /// </summary>
    protected void NoLongerDegraded() => health.ClearDegraded(Job);

    /// <inheritdoc />
    protected sealed override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = InitialBackoff;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunAsync(stoppingToken);
                return;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (IsStorageFailure(ex) || IsTransient(ex))
            {
                if (NeededToServe)
                {
                    health.Report(Job, ex.Message);
                }
                else
                {
                    health.ReportDegraded(Job, ex.Message);
                }

                if (!Recovering)
                {
                    backoff = InitialBackoff; // a new failure after a success starts the backoff over
                }

                Recovering = true;
                logger.LogError("{Job} failed ({Reason}); health reports it and the job starts again in {Backoff:0.#} s", Job, ex.Message, backoff.TotalSeconds);
            }
            catch (Exception ex)
            {
                logger.LogCritical(ex, "{Job} failed with an unexpected error; the service stops with exit code {Code}", Job, FailedExitCode);
                SetExitCode(FailedExitCode);
                throw;
            }

            try
            {
                await Task.Delay(backoff, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, LastBackoff.Ticks));
        }
    }
}
