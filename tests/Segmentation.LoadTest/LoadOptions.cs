using System.Globalization;
using System.Net;

namespace Segmentation.LoadTest;

/// <summary>What to run, parsed from the command line.</summary>
internal sealed record LoadOptions
{
    public const string Usage = """
        Usage: Segmentation.LoadTest [options]
          --address URL        server address, loopback only (default http://127.0.0.1:5107)
          --api-key KEY        API key sent as x-api-key (default $SEGMENTATION_API_KEY, else the local development key)
          --mode MODE          echo | decide-hit | decide-miss | echo-pair | decide-with-event | decide-fresh | mixed | stream-ingest | echo-stream | stream-batch | decide-batch | all,
                               or several joined by commas (echo,decide-batch)
                               (default all: an unmeasured warm-up pass of every mode, then each mode measured)
          --duration SECONDS   measured time per mode (default 10)
          --warmup SECONDS     unmeasured time before each measured mode (default 2)
          --warmup-pass SECONDS  with several modes: unmeasured time per mode in the initial warm-up pass (default 3; 0 skips it)
          --connections N      HTTP/2 connections (default 16)
          --concurrency N      calls in flight across all connections (default 160)
          --users N            distinct users for decide-miss, decide-with-event and mixed (default 3000; demo customers first)
          --hot-users N        users decide-hit cycles through (default 100)
          --miss-percent P     mixed: share of iterations that track an event before deciding (default 20)
          --streams N          stream-ingest, echo-stream, stream-batch: concurrent StreamEvents (EchoStream) calls (default 4)
          --window N           stream-ingest, echo-stream, stream-batch: events in flight per stream (default 256)
          --stream-connections N   stream-ingest, echo-stream, stream-batch: HTTP/2 connections the streams share, at most
                               --connections (default 0: one per stream, up to --connections; 1: every stream on one)
          --stream-batch N     stream-batch: events per StreamEvents message (default 64; stream-ingest sends one per message)
          --ingest-users N     stream-ingest, stream-batch: distinct synthetic users the page views are spread over (default 100000)
          --batch-size N       decide-batch: users per DecideBatch call (default 10000)
          --batch-calls N      decide-batch: DecideBatch calls in flight (default 2)
          --batch-channel C    decide-batch: web (default) or email (contact verdicts and send times per user)
          --server-pid PID     the server's process id: report its CPU time per request (Linux /proc)
          --payload-bytes N    echo the same N bytes both ways (default: a Decide request's size, answered with a Decide response's)
          --write-h2load-bodies DIR   write gRPC-framed echo.bin and decide.bin request bodies for h2load and exit
        """;

    public Uri Address { get; init; } = new("http://127.0.0.1:5107");

    public string ApiKey { get; init; } = Environment.GetEnvironmentVariable("SEGMENTATION_API_KEY") is { Length: > 0 } key ? key : "dev-local-key-change-me";

    public string Mode { get; init; } = "all";

    public double DurationSeconds { get; init; } = 10;

    public double WarmupSeconds { get; init; } = 2;

    public double WarmupPassSeconds { get; init; } = 3;

    public int Connections { get; init; } = 16;

    public int Concurrency { get; init; } = 160;

    public int Users { get; init; } = 3000;

    public int HotUsers { get; init; } = 100;

    public int MissPercent { get; init; } = 20;

    public int Streams { get; init; } = 4;

    public int Window { get; init; } = 256;

    /// <summary>HTTP/2 connections the streams are spread over (0: one per stream, up to --connections).</summary>
    public int StreamConnections { get; init; }

    /// <summary>The HTTP/2 connections the streams actually use: <see cref="StreamConnections"/> (or one per stream), at most <see cref="Connections"/>.</summary>
    public int StreamConnectionsUsed => Math.Min(StreamConnections > 0 ? StreamConnections : Streams, Connections);

    public int IngestUsers { get; init; } = 100_000;

    public int StreamBatch { get; init; } = 64;

    public int BatchSize { get; init; } = 10_000;

    public int BatchCalls { get; init; } = 2;

    public string BatchChannel { get; init; } = "web";

    public int? ServerPid { get; init; }

    public int? PayloadBytes { get; init; }

    public string? H2LoadBodiesDirectory { get; init; }

    public static readonly string[] Modes = ["echo", "decide-hit", "decide-miss", "echo-pair", "decide-with-event", "decide-fresh", "mixed", "stream-ingest", "echo-stream", "stream-batch", "decide-batch"];

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> with the reason on bad input.</summary>
    public static LoadOptions Parse(string[] args)
    {
        var o = new LoadOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value");
            o = name switch
            {
                "--address" => o with { Address = new Uri(Value()) },
                "--api-key" => o with { ApiKey = Value() },
                "--mode" => o with { Mode = Value() },
                "--duration" => o with { DurationSeconds = Number(name, Value(), 0.1, 3600) },
                "--warmup" => o with { WarmupSeconds = Number(name, Value(), 0, 600) },
                "--warmup-pass" => o with { WarmupPassSeconds = Number(name, Value(), 0, 600) },
                "--streams" => o with { Streams = (int)Number(name, Value(), 1, 1024) },
                "--stream-connections" => o with { StreamConnections = (int)Number(name, Value(), 0, 1024) },
                "--window" => o with { Window = (int)Number(name, Value(), 1, 100_000) },
                "--stream-batch" => o with { StreamBatch = (int)Number(name, Value(), 1, 1000) },
                "--ingest-users" => o with { IngestUsers = (int)Number(name, Value(), 1, 100_000_000) },
                "--connections" => o with { Connections = (int)Number(name, Value(), 1, 1024) },
                "--concurrency" => o with { Concurrency = (int)Number(name, Value(), 1, 100_000) },
                "--users" => o with { Users = (int)Number(name, Value(), 1, 10_000_000) },
                "--hot-users" => o with { HotUsers = (int)Number(name, Value(), 1, 100_000) },
                "--miss-percent" => o with { MissPercent = (int)Number(name, Value(), 0, 100) },
                "--batch-size" => o with { BatchSize = (int)Number(name, Value(), 1, 10_000) },
                "--batch-calls" => o with { BatchCalls = (int)Number(name, Value(), 1, 64) },
                "--batch-channel" => o with { BatchChannel = Value() switch { "web" => "web", "email" => "email", _ => throw new ArgumentException("--batch-channel is web or email") } },
                "--server-pid" => o with { ServerPid = (int)Number(name, Value(), 1, int.MaxValue) },
                "--payload-bytes" => o with { PayloadBytes = (int)Number(name, Value(), 0, 4_000_000) },
                "--write-h2load-bodies" => o with { H2LoadBodiesDirectory = Value() },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        if (o.Mode != "all" && o.Mode.Split(',').FirstOrDefault(m => !Modes.Contains(m)) is { } unknown)
        {
            throw new ArgumentException($"unknown mode '{unknown}'");
        }

        // decide-miss and decide-with-event give each worker users of its own (a user two workers shared could have one's
        // Decide answered from the cache the other's had just filled, a hit counted as a miss): one each at least.
        var modes = o.Mode == "all" ? Modes : o.Mode.Split(',');
        if (o.Users < o.Concurrency && modes.FirstOrDefault(m => m is "decide-miss" or "decide-with-event") is { } owning)
        {
            throw new ArgumentException($"--users ({o.Users}) must be at least --concurrency ({o.Concurrency}) for {owning}: each worker decides for users of its own");
        }

        // A load generator must not be pointed at someone else's server by mistake.
        if (!(o.Address.IsLoopback || (IPAddress.TryParse(o.Address.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip))))
        {
            throw new ArgumentException($"--address must be a loopback address (got {o.Address})");
        }

        return o;
    }

    private static double Number(string name, string text, double min, double max) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max
            ? v
            : throw new ArgumentException($"{name} must be a number from {min} to {max} (got '{text}')");
}
