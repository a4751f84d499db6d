using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Tests;

/// <summary>A start-up that fails stops the background jobs that did start, so none is logged as a critical failure.</summary>
public sealed class HostRunningTests
{
    // A job that ends cancelled when its token is: what any job is, in .NET 10, whose first step is still queued on a
    // busy thread pool when the token is cancelled.
    private sealed class JobEndingCancelled : BackgroundService
    {
        protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Delay(Timeout.Infinite, stoppingToken);
    }

    // Kestrel's place in the real host: a service started after the jobs, failing as a port already taken does.
    private sealed class FailingStart : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => throw new IOException("Failed to bind to address http://127.0.0.1:1: address already in use.");

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class KeptLog : ILoggerProvider, ILogger
    {
        public ConcurrentQueue<(LogLevel Level, Exception? Exception)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue((logLevel, exception));

        public void Dispose()
        {
        }
    }

    [Fact]
    public async Task A_failed_start_stops_the_jobs_that_started_so_none_is_logged_as_failing_and_the_failure_is_rethrown()
    {
        var log = new KeptLog();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Logging.AddProvider(log);
        builder.Services.AddSingleton<JobEndingCancelled>();
        builder.Services.AddHostedService(services => services.GetRequiredService<JobEndingCancelled>());
        builder.Services.AddHostedService<FailingStart>();
        var host = builder.Build();
        var job = host.Services.GetRequiredService<JobEndingCancelled>();

        var failure = await Assert.ThrowsAsync<IOException>(() => HostRunning.RunAsync(host));

        Assert.Contains("address already in use", failure.Message, StringComparison.Ordinal);
        var stoppedBeforeReturning = job.ExecuteTask is { IsCompleted: true }; // the stop waited for it
        await Task.WhenAny(job.ExecuteTask!, Task.Delay(TimeSpan.FromSeconds(10)));
        await Task.Delay(200); // the host's own watch over the job logs after the job's task ends
        Assert.DoesNotContain(log.Entries, e => e.Exception is OperationCanceledException);
        Assert.DoesNotContain(log.Entries, e => e.Level == LogLevel.Critical); // the host's "stopping" entry: the server lets these through
        Assert.True(stoppedBeforeReturning);
    }

    // A job failing with a defect, as the server's jobs do: it sets the exit code and stops the host.
    private sealed class DefectiveJob() : SupervisedBackgroundService(new ServiceHealth(), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
    {
        protected override string Job => "defective job";

        protected override Task RunAsync(CancellationToken stoppingToken) => throw new InvalidOperationException("a defect");
    }

    [Fact]
    public async Task A_job_that_fails_with_a_defect_makes_the_run_end_with_its_exit_code()
    {
        // Regression (review): the job set Environment.ExitCode to 70, and Main returned 0, which a Main returning a value
        // makes the exit code: a supervisor restarting on failure saw a clean exit.
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddHostedService<DefectiveJob>();
        var host = builder.Build();
        try
        {
            Assert.Equal(SupervisedBackgroundService.FailedExitCode, await HostRunning.RunAsync(host).WaitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            Environment.ExitCode = 0;
        }
    }

    private sealed class CountingCheckpoint : Segmentation.Core.Application.Measurement.IMeasurementCheckpoint
    {
        private int _saves;

        public int Saves => Volatile.Read(ref _saves);

        // When set, each save waits for it (a slow disk), after counting itself.
        public ManualResetEventSlim? Hold { get; init; }

        public ManualResetEventSlim Entered { get; } = new();

        public void DeleteSetAside()
        {
        }

        // The first saves that fail as a full disk does (each counted).
        public int Failing { get; init; }

        public void Save()
        {
            var n = Interlocked.Increment(ref _saves);
            Entered.Set();
            Hold?.Wait(TimeSpan.FromSeconds(30));
            if (n <= Failing)
            {
                throw new IOException("No space left on device");
            }
        }

        public bool Restore() => false;
    }

    private sealed class Lifetime : IHostApplicationLifetime
    {
        public CancellationTokenSource Started { get; } = new();

        public CancellationToken ApplicationStarted => Started.Token;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }

    [Fact]
    public async Task Measurement_state_is_saved_at_shutdown_only_when_the_host_had_started()
    {
        // A failed start stops every hosted service, also a job that never ran (its first step still queued): its state
        // was never restored, and the data directory may be another server's, so it must not be saved over the file.
        var checkpoint = new CountingCheckpoint();
        var measurement = new Segmentation.Core.Application.Measurement.DecisionMeasurement(new Segmentation.Core.Application.Measurement.MeasurementOptions { RememberedDecisions = 16 });
        var lifetime = new Lifetime();
        MeasurementCheckpointService Job() => new(checkpoint, measurement, Microsoft.Extensions.Options.Options.Create(new SegmentationOptions()), new ServiceHealth(), Microsoft.Extensions.Logging.Abstractions.NullLogger<MeasurementCheckpointService>.Instance, lifetime);

        await Job().StopAsync(CancellationToken.None);
        Assert.Equal(0, checkpoint.Saves);

        lifetime.Started.Cancel();
        await Job().StopAsync(CancellationToken.None);
        Assert.Equal(1, checkpoint.Saves); // a normal shutdown saves
    }

    [Fact]
    public async Task Measurement_state_is_saved_once_when_the_host_stops_the_service_twice_and_the_second_stop_waits_for_it()
    {
        // The test host stops a host twice at once (its dispose and the application's run loop): both stops found the
        // state changed and saved it, the later one still writing after the other had returned.
        using var hold = new ManualResetEventSlim();
        var checkpoint = new CountingCheckpoint { Hold = hold };
        var measurement = new Segmentation.Core.Application.Measurement.DecisionMeasurement(new Segmentation.Core.Application.Measurement.MeasurementOptions { RememberedDecisions = 16 });
        var lifetime = new Lifetime();
        lifetime.Started.Cancel();
        var job = new MeasurementCheckpointService(checkpoint, measurement, Microsoft.Extensions.Options.Options.Create(new SegmentationOptions()), new ServiceHealth(), Microsoft.Extensions.Logging.Abstractions.NullLogger<MeasurementCheckpointService>.Instance, lifetime);

        var first = Task.Run(() => job.StopAsync(CancellationToken.None));
        Assert.True(checkpoint.Entered.Wait(TimeSpan.FromSeconds(10)));
        var second = Task.Run(() => job.StopAsync(CancellationToken.None));
        var finishedEarly = await Task.WhenAny(second, Task.Delay(300)) == second;

        hold.Set();
        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(finishedEarly);
        Assert.Equal(1, checkpoint.Saves);
    }

    private static MeasurementCheckpointService CheckpointJob(CountingCheckpoint checkpoint, ServiceHealth health, Segmentation.Core.Application.Measurement.ChurnHistory churn, Lifetime lifetime) =>
        new(checkpoint, new Segmentation.Core.Application.Measurement.DecisionMeasurement(new Segmentation.Core.Application.Measurement.MeasurementOptions { RememberedDecisions = 16 }),
            Microsoft.Extensions.Options.Options.Create(new SegmentationOptions { MeasurementCheckpointSeconds = 1 }), health,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<MeasurementCheckpointService>.Instance, lifetime, churn)
        {
            InitialBackoff = TimeSpan.FromMilliseconds(10),
        };

    // Counts a churn move every 200 ms until a save was tried (at most 5 s): the job reads the state it starts from on a
    // thread of its own, so one move could come before it and count as already saved.
    private static async Task ChurnUntilSaved(Segmentation.Core.Application.Measurement.ChurnHistory churn, CountingCheckpoint checkpoint)
    {
        for (var i = 0; i < 25 && checkpoint.Saves == 0; i++)
        {
            churn.Moved(["vip"], ["lost"], DateTimeOffset.UtcNow);
            await Eventually(() => checkpoint.Saves > 0, null, attempts: 4);
        }

        Assert.True(checkpoint.Saves > 0, "the churn counted was not saved");
    }

    private static async Task Eventually(Func<bool> condition, string? what, int attempts = 100)
    {
        for (var i = 0; i < attempts && !condition(); i++)
        {
            await Task.Delay(50);
        }

        if (what is not null)
        {
            Assert.True(condition(), what);
        }
    }

    [Fact]
    public async Task Churn_counted_without_any_decision_or_outcome_is_saved()
    {
        // Regression: the job saved only when decisions were served or outcomes counted; churn (time moving users into
        // a lapsed segment on a quiet night) and segment sizes changed neither, so they were not saved, at shutdown either.
        var checkpoint = new CountingCheckpoint();
        var churn = new Segmentation.Core.Application.Measurement.ChurnHistory(["lost"]);
        var lifetime = new Lifetime();
        lifetime.Started.Cancel();
        var job = CheckpointJob(checkpoint, new ServiceHealth(), churn, lifetime);
        await job.StartAsync(CancellationToken.None);

        await ChurnUntilSaved(churn, checkpoint); // a move counted before the job read the state it starts from is not new to it
        await job.StopAsync(CancellationToken.None);
        Assert.Equal(1, checkpoint.Saves); // nothing new since: no second save at shutdown
    }

    [Fact]
    public async Task A_failed_save_is_retried_when_the_job_starts_again_and_health_clears_only_after_it_succeeded()
    {
        // Regression: the restarted job took the state whose save had failed as saved, waited a whole interval (a minute
        // by default, up to a day), found nothing new and cleared health without saving anything.
        var checkpoint = new CountingCheckpoint { Failing = 1 };
        var churn = new Segmentation.Core.Application.Measurement.ChurnHistory(["lost"]);
        var health = new ServiceHealth();
        var lifetime = new Lifetime();
        lifetime.Started.Cancel();
        var job = CheckpointJob(checkpoint, health, churn, lifetime);
        await job.StartAsync(CancellationToken.None);

        await ChurnUntilSaved(churn, checkpoint); // the first save fails; nothing changes after it
        await Eventually(() => checkpoint.Saves == 2, "the failed save was not tried again");
        await Eventually(() => health.Problems.Count == 0, "health did not clear after the save succeeded");
        await job.StopAsync(CancellationToken.None);
    }
}
