namespace Segmentation.Server.Hosting;

/// <summary>Runs the host until it shuts down, and stops what did start when start-up fails.</summary>
public static class HostRunning
{
    /// <summary>How long the hosted services that did start get to stop after a failed start-up.</summary>
    public static readonly TimeSpan StopAfterFailedStart = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Starts <paramref name="host"/>, waits for it to shut down and disposes it, as the host's own <c>RunAsync</c>
    /// does, except that a failed start-up first stops the hosted services that had started (the background jobs, the
    /// change stream's last journal flush) and then rethrows the failure. Disposing without a stop, as <c>RunAsync</c>
    /// does, cancels the jobs behind the host's back: it then logs a job whose task ended cancelled as a critical
    /// failure with a stack trace, beside the start-up failure's own message. Since .NET 10 that happens even to a
    /// job written to end quietly on cancellation, when its first step was still queued on the thread pool (a busy
    /// machine), because the job's task is then cancelled before it runs. The host stops every hosted service, started
    /// or not; the services that save at shutdown (measurement's checkpoint, the change stream's journal) skip that when
    /// the application never started, so a failed start leaves the data directory as it found it.
    /// </summary>
    /// <returns>
    /// The process exit code: <see cref="Environment.ExitCode"/> once the host has stopped (70 when a background job
    /// failed with a defect and stopped it; 0 after an ordinary shutdown). A <c>Main</c> that returns a value decides the
    /// exit code itself, so it must return this: returning 0 turned a failed job's stop into a clean exit that a
    /// supervisor restarting on failure did not restart.
    /// </returns>
    public static async Task<int> RunAsync(IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        try
        {
            try
            {
                await host.StartAsync().ConfigureAwait(false);
            }
            catch
            {
                await StopQuietlyAsync(host).ConfigureAwait(false);
                throw;
            }

            await host.WaitForShutdownAsync().ConfigureAwait(false);
            return Environment.ExitCode;
        }
        finally
        {
            if (host is IAsyncDisposable asyncDisposable)
            {
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                host.Dispose();
            }
        }
    }

    // The start-up failure is what the operator needs to read; a service that also fails to stop adds nothing to it.
    private static async Task StopQuietlyAsync(IHost host)
    {
        using var timeout = new CancellationTokenSource(StopAfterFailedStart);
        try
        {
            await host.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Deliberately ignored: see above.
        }
    }
}
