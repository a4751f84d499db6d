namespace Segmentation.Core.Application;

/// <summary>The loop of a background job that runs on a <see cref="PeriodicTimer"/>.</summary>
public static class PeriodicTimerExtensions
{
    /// <summary>
    /// Waits for the timer's next tick: true on a tick, false once <paramref name="stoppingToken"/> is cancelled or the
    /// timer disposed. Cancellation ends the job's loop instead of throwing, however the host stops it: a host disposed
    /// after a failed start cancels the token without first being stopped, and would otherwise log the cancellation as
    /// the job's failure, with its stack trace, beside the start-up failure's own message.
    /// </summary>
    public static async ValueTask<bool> NextTickAsync(this PeriodicTimer timer, CancellationToken stoppingToken)
    {
        ArgumentNullException.ThrowIfNull(timer);
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
