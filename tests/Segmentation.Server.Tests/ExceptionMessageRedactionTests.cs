using System.Collections.Concurrent;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Segmentation.Server.Tests;

/// <summary>Outside Development no logged exception shows its message, whichever component logs it.</summary>
[Collection(Alone.Name)] // starts and stops a host of its own (see ErrorLogLimitTests)
public sealed class ExceptionMessageRedactionTests
{
    private const string Personal = "alice@example.com";
    private const string InnerPersonal = "trait value 1975-04-12";

    [Fact]
    public async Task A_logged_exception_shows_its_types_and_stack_trace_but_no_message()
    {
        // Regression: a background job that failed unexpectedly, a Redis batch that failed and several restore steps
        // logged the exception itself, and the console printed its message (and its inner exceptions' messages), which
        // can quote the user or value it failed on; only the gRPC error mapper left messages out.
        var logs = await LogFromHostAsync("Testing");

        var entry = Assert.Single(logs);
        Assert.DoesNotContain(Personal, entry, StringComparison.Ordinal);
        Assert.DoesNotContain(InnerPersonal, entry, StringComparison.Ordinal);
        Assert.Contains("a job failed", entry, StringComparison.Ordinal); // the entry's own text is kept
        Assert.Contains(typeof(InvalidOperationException).FullName!, entry, StringComparison.Ordinal);
        Assert.Contains(typeof(FormatException).FullName!, entry, StringComparison.Ordinal);
        Assert.Contains(nameof(Fail), entry, StringComparison.Ordinal); // the stack trace names the method that threw
    }

    [Fact]
    public async Task In_Development_messages_are_logged()
    {
        var logs = await LogFromHostAsync("Development");

        var entry = Assert.Single(logs);
        Assert.Contains(Personal, entry, StringComparison.Ordinal);
        Assert.Contains(InnerPersonal, entry, StringComparison.Ordinal);
    }

    private static async Task<IReadOnlyList<string>> LogFromHostAsync(string environment)
    {
        var logs = new CapturedExceptions();
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseEnvironment(environment);
            b.UseSetting("Segmentation:DemoData", "false");
            b.ConfigureTestServices(services => services.AddSingleton<ILoggerProvider>(logs));
        });
        var logger = factory.Services.GetRequiredService<ILogger<ExceptionMessageRedactionTests>>();
        try
        {
            Fail();
        }
        catch (InvalidOperationException ex)
        {
            logger.LogError(ex, "a job failed");
        }

        return [.. logs.Entries];
    }

    private static void Fail()
    {
        try
        {
            throw new FormatException(InnerPersonal);
        }
        catch (FormatException inner)
        {
            throw new InvalidOperationException($"could not update {Personal}", inner);
        }
    }

    // Records what a console or file provider would print of this test's entries: the text and the exception.
    private sealed class CapturedExceptions : ILoggerProvider
    {
        public ConcurrentQueue<string> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturedExceptions logs, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (exception is not null && category == typeof(ExceptionMessageRedactionTests).FullName) // the host's own entries aside
                {
                    logs.Entries.Enqueue(formatter(state, exception) + Environment.NewLine + exception + Environment.NewLine + exception.Message);
                }
            }
        }
    }
}
