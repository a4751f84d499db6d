using Microsoft.Extensions.Logging.Abstractions;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Tests;

/// <summary>A failing background job never stops the process for a recoverable error, and never stops it with exit code 0.</summary>
public sealed class SupervisedBackgroundServiceTests
{
    private sealed class TestJob(ServiceHealth health, Func<int, Task> run) : SupervisedBackgroundService(health, NullLogger.Instance)
    {
        public int Runs { get; private set; }

        public void Success() => Succeeded();

        protected override string Job => "test job";

        protected override Task RunAsync(CancellationToken stoppingToken) => run(++Runs);
    }

    [Fact]
    public async Task A_recoverable_io_error_is_reported_unhealthy_and_retried_until_the_job_succeeds()
    {
        var health = new ServiceHealth();
        var done = new TaskCompletionSource();
        TestJob? job = null;
        job = new TestJob(health, run =>
        {
            if (run < 3)
            {
                Assert.True(run == 1 || health.Problems.ContainsKey("test job"));
                throw new IOException("No space left on device");
            }

            job!.Success();
            done.SetResult();
            return Task.CompletedTask;
        })
        { InitialBackoff = TimeSpan.FromMilliseconds(10), SetExitCode = _ => Assert.Fail("a recoverable failure set an exit code") };

        await job.StartAsync(CancellationToken.None);
        await done.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await job.StopAsync(CancellationToken.None);

        Assert.Equal(3, job.Runs);
        Assert.Empty(health.Problems);
    }

    [Fact]
    public async Task An_unexpected_failure_sets_a_non_zero_exit_code_before_the_host_stops()
    {
        var exitCode = 0;
        var job = new TestJob(new ServiceHealth(), _ => throw new InvalidOperationException("a defect"))
        {
            SetExitCode = code => exitCode = code,
        };

        await job.StartAsync(CancellationToken.None);
        await Assert.ThrowsAsync<InvalidOperationException>(() => job.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(SupervisedBackgroundService.FailedExitCode, exitCode);
    }
}
