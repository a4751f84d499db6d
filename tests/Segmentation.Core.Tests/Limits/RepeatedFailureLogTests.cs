using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Segmentation.Core.Application.ChangeStream;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Rendering;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Limits;

/// <summary>A failure that repeats on every call or every tick is logged a few times a minute, not every time.</summary>
public sealed class RepeatedFailureLogTests
{
    [Fact]
    public void A_template_that_fails_on_every_render_is_logged_five_times_a_minute()
    {
        // Regression: every failed render logged a warning: up to five per Decide, one per user of a DecideBatch, at
        // whatever rate callers send (distinct contexts miss the decision cache).
        var logs = new Captured<TemplateRenderer>();
        var source = new string('x', 100);
        var template = TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors));
        var variant = new VariantTemplate(VariantKind.Content, "long", source, template, "fallback", ReadsNow: false);
        var renderer = new TemplateRenderer(new RenderLimits { OutputLimit = 50 }, logs);

        for (var i = 0; i < 50; i++)
        {
            Assert.True(renderer.Render(variant, new Scriban.Runtime.ScriptObject()).FallbackUsed);
        }

        Assert.Equal(5, logs.Entries.Count(e => e.Level == LogLevel.Warning));
        Assert.All(logs.Entries, e => Assert.Contains("long", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_change_stream_journal_that_cannot_write_is_logged_five_times_a_minute()
    {
        // Regression: the writer ticks every 100 ms and, on a full disk, logged an error with its stack trace at every
        // tick (36,000 an hour, often onto the same full disk).
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")));
        Application.Membership.ChangeStreamTests.SetScore(w, "u1", 80); // an entry to write
        var logs = new Captured<ChangeStreamService>();
        var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), new FullDisk(), w.Clock, logs);

        await service.StartAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // 15 ticks
        await Record.ExceptionAsync(() => service.StopAsync(CancellationToken.None)); // the shutdown write fails too

        var errors = logs.Entries.Count(e => e.Level == LogLevel.Error);
        Assert.InRange(errors, 1, 5);
    }

    private sealed class FullDisk : IChangeFeedJournal
    {
        public (IReadOnlyList<FeedEntry> Entries, long LastOffset) Load(DateTimeOffset notBefore, int max) => ([], 0);

        public void Append(IReadOnlyList<FeedEntry> entries) => throw new IOException("No space left on device");

        public void Trim(long oldest)
        {
        }

        public TriggerCheckpoint? LoadTriggers() => null;

        public void SaveTriggers(TriggerCheckpoint checkpoint)
        {
        }

        public MembershipCheckpoint? LoadMemberships() => null;

        public void SaveMemberships(MembershipCheckpoint checkpoint)
        {
        }

        public void Redact(IReadOnlySet<string> userIds, long throughOffset)
        {
        }
    }

    private sealed class Captured<T> : ILogger<T>
    {
        public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue((logLevel, formatter(state, exception)));
    }
}
