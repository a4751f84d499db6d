using System.ComponentModel.DataAnnotations;

namespace Segmentation.Server.Hosting;

/// <summary>Request and rendering limits, section <c>Segmentation:Limits</c>.</summary>
public sealed class LimitsOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation:Limits";

    /// <summary>Largest request message accepted, in bytes; larger ones fail with RESOURCE_EXHAUSTED.</summary>
    [Range(1024, 256 * 1024 * 1024)]
    public int MaxRequestBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Events per second one API key may send over <c>TrackEvent</c>, <c>TrackEvents</c>, <c>StreamEvents</c> (all its streams) and the events a <c>Decide</c> carries, together; beyond it a call is refused and a stream ends, with RESOURCE_EXHAUSTED.</summary>
    [Range(1, 100_000_000)]
    public int StreamEventsPerSecond { get; set; } = 200_000;

    /// <summary>
    /// Unary calls per second one API key may make, all unary methods (gRPC and HTTP/JSON) together, as a token bucket
    /// holding one second's allowance; beyond it a call is answered RESOURCE_EXHAUSTED (HTTP 429) with a
    /// <c>google.rpc.RetryInfo</c> delay. A key's own <c>RequestsPerSecond</c> overrides it; 0 turns the limit off.
    /// </summary>
    [Range(0, int.MaxValue)]
    public int UnaryRequestsPerSecond { get; set; } = 100_000;

    /// <summary>Longest rendered variant, in characters; a longer render serves the variant's fallback text.</summary>
    [Range(64, 1_048_576)]
    public int TemplateOutputChars { get; set; } = 8192;

    /// <summary>Loop iterations per render (all loops together); beyond it the render stops and the fallback is served. Bounds render time.</summary>
    [Range(1, 1_000_000)]
    public int TemplateLoopLimit { get; set; } = 1000;

    /// <summary>Function recursion depth per render; beyond it the render stops and the fallback is served.</summary>
    [Range(1, 1000)]
    public int TemplateRecursionLimit { get; set; } = 16;

    /// <summary>Longest render of one variant, in milliseconds; past it the render is abandoned and the fallback is served.</summary>
    [Range(1, 10_000)]
    public int TemplateRenderMilliseconds { get; set; } = 20;

    /// <summary>
    /// Most TCP connections served at once; a connection beyond it is closed as soon as it is accepted.
    /// 0 (the default) derives it from the process's open-file limit (that limit minus
    /// <see cref="ReservedFileDescriptors"/>, at most 10,000), so connections can never use up the
    /// descriptors the service needs for its own files: running out is a refused connection, not a dead process.
    /// </summary>
    [Range(0, 1_000_000)]
    public int MaxConnections { get; set; }

    /// <summary>
    /// File descriptors kept for the service's own later files (log segments, snapshots, assemblies loaded on first
    /// use) when <see cref="MaxConnections"/> is derived, on top of those already open when it is derived (about 250:
    /// every loaded assembly holds descriptors). Without that headroom a flood of connections could use up the
    /// descriptors the runtime itself needs, and it stops the process.
    /// </summary>
    [Range(16, 100_000)]
    public int ReservedFileDescriptors { get; set; } = 192;

    /// <summary>
    /// Seconds a new connection may stay silent before sending its first bytes (the HTTP/2 preface or a TLS
    /// hello); past it the connection is closed. Idle connections cost a descriptor each and need no key.
    /// </summary>
    [Range(1, 3_600)]
    public int HandshakeSeconds { get; set; } = 10;

    /// <summary>Seconds a connection may stay open without any request in flight before it is closed.</summary>
    [Range(1, 86_400)]
    public int IdleConnectionSeconds { get; set; } = 120;

    /// <summary>Seconds between HTTP/2 pings on a silent connection; a peer that does not answer within 20 s is dropped.</summary>
    [Range(1, 86_400)]
    public int KeepAlivePingSeconds { get; set; } = 60;

    /// <summary>
    /// Seconds a graceful stop lets a connection's calls end before the connection is closed. Calls end at a stop by
    /// themselves (watches and event streams within moments, other calls when done); a client that stops reading its
    /// answers cannot take the last ones, and its connection would otherwise hold the stop until the host's own
    /// timeout (30 s), when a supervisor's kill races the final saves.
    /// </summary>
    [Range(1, 25)]
    public int StopDrainSeconds { get; set; } = 10;

    /// <summary>
    /// Seconds one flush of a <c>DecideBatch</c> answer (up to 128 results; each one over HTTP/JSON) may wait for its
    /// client to take it before the call is reset: a client that stops reading would otherwise hold the batch (its ids,
    /// its results not yet taken) for as long as its connection lives. A gRPC client must so take about 128 results
    /// (over 100 KB; more with explanations or email blocks) per this many seconds, beyond what its flow-control window
    /// holds — about one a second at the default.
    /// </summary>
    [Range(1, 3_600)]
    public int WriteStallSeconds { get; set; } = 120;

    /// <summary>The connection limit in force: <see cref="MaxConnections"/>, or derived from the open-file limit.</summary>
    public int EffectiveMaxConnections() =>
        MaxConnections > 0 ? MaxConnections : Math.Clamp((OpenFileLimit() ?? 10_256) - (OpenFilesNow() + ReservedFileDescriptors), 32, 10_000);

    // Descriptors the process holds now (Linux: /proc/self/fd), or a typical start-up count where it cannot be read.
    private static int OpenFilesNow()
    {
        try
        {
            return Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 256;
        }
    }

    // The soft limit on open files (Linux: /proc/self/limits), or null where it cannot be read.
    private static int? OpenFileLimit()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return fields.Length > 0 && int.TryParse(fields[0], out var soft) ? soft : null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }
}

/// <summary>Registers <see cref="LimitsOptions"/> once, bound and validated at start-up, for every part of the host that reads it.</summary>
internal static class LimitsOptionsRegistration
{
    /// <summary>Binds <see cref="LimitsOptions.Section"/> (once, however many parts ask).</summary>
    public static IServiceCollection AddLimitsOptions(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(Registered)))
        {
            return services;
        }

        services.AddSingleton<Registered>();
        services.AddOptions<LimitsOptions>()
            .BindConfiguration(LimitsOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        return services;
    }

    private sealed class Registered;
}
