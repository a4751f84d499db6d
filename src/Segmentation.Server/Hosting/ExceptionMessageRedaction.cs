using System.Text;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Keeps exception messages out of the log outside Development: a message can quote what it failed on (a user id, an
/// e-mail address, a trait value), and an exception logged by any component — ours, a library's, the host's — would
/// print it. Every logger of the process passes its exceptions on as their type, the types of the exceptions inside
/// them and their stack traces.
/// </summary>
internal static class ExceptionMessageRedaction
{
    /// <summary>Wraps the process's logger factory unless the host runs in Development, where messages help.</summary>
    public static ILoggingBuilder RedactExceptionMessagesOutside(this ILoggingBuilder logging, IHostEnvironment environment)
    {
        if (environment.IsDevelopment())
        {
            return logging;
        }

        // The providers are read when the factory is built, so a provider added after this call is wrapped as well.
        logging.Services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(services =>
            new RedactingLoggerFactory(ActivatorUtilities.CreateInstance<LoggerFactory>(services))));
        return logging;
    }

    private sealed class RedactingLoggerFactory(ILoggerFactory inner) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose() => inner.Dispose();
    }

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (exception is null)
            {
                inner.Log(logLevel, eventId, state, null, formatter); // the common case: nothing to wrap
                return;
            }

            var redacted = new MessageNotLoggedException(exception);
            inner.Log(logLevel, eventId, state, redacted, (s, _) => formatter(s, redacted));
        }
    }
}

/// <summary>An exception as the log shows it outside Development: its type and stack trace, and those of its inner exceptions.</summary>
internal sealed class MessageNotLoggedException(Exception original)
    : Exception($"{original.GetType().FullName} (message not logged: it may contain personal data)")
{
    public override string? StackTrace => original.StackTrace;

    public override string ToString()
    {
        var text = new StringBuilder();
        Describe(original, text, depth: 0);
        return text.ToString();
    }

    private static void Describe(Exception exception, StringBuilder text, int depth)
    {
        if (depth > 8)
        {
            text.Append(" ---> (more inner exceptions not shown)");
            return;
        }

        text.Append(exception.GetType().FullName).Append(" (message not logged: it may contain personal data)");
        IReadOnlyList<Exception> inners = exception is AggregateException aggregate ? aggregate.InnerExceptions : exception.InnerException is { } one ? [one] : [];
        foreach (var inner in inners)
        {
            text.Append(" ---> ");
            Describe(inner, text, depth + 1);
            text.AppendLine().Append("   --- End of inner exception stack trace ---");
        }

        if (exception.StackTrace is { } trace)
        {
            text.AppendLine().Append(trace);
        }
    }
}
