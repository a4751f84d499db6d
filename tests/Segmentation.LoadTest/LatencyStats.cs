using System.Diagnostics;
using Grpc.Core;

namespace Segmentation.LoadTest;

/// <summary>What one worker saw; merged into a <see cref="ModeResult"/> at the end of a mode.</summary>
internal sealed class WorkerStats
{
    public List<long> Latencies { get; } = new(16_384);

    public List<long> TrackLatencies { get; } = [];

    public Dictionary<StatusCode, long> Errors { get; } = [];

    public long CacheHits { get; set; }

    public long Tracks { get; set; }

    /// <summary>stream-ingest, stream-batch: results per status.</summary>
    public long Accepted { get; set; }

    public long Duplicate { get; set; }

    public long Rejected { get; set; }

    /// <summary>decide-batch: users decided in the recorded batches.</summary>
    public long Items { get; set; }

    /// <summary>decide-batch: per recorded batch, the time from the call to its first result.</summary>
    public List<long> FirstResultLatencies { get; } = [];

    public void Error(StatusCode code) => Errors[code] = Errors.GetValueOrDefault(code) + 1;
}

/// <summary>Throughput and latency of one mode.</summary>
internal sealed record ModeResult(
    string Mode,
    double Seconds,
    long Ok,
    long Errors,
    string ErrorDetail,
    double Throughput,
    double P50Ms,
    double P90Ms,
    double P99Ms,
    double MaxMs,
    long CacheHits,
    long Tracks,
    double TrackP99Ms,
    long Accepted,
    long Duplicate,
    long Rejected,
    long Items,
    double P999Ms,
    double FirstResultP99Ms)
{
    /// <summary>Results of a stream-ingest, stream-batch or echo-stream run are events (or stand for them), not requests.</summary>
    public bool IsIngest => IsIngestMode(Mode);

    private static bool IsIngestMode(string mode) => mode is "stream-ingest" or "stream-batch" or "echo-stream";

    /// <summary>A decide-batch run counts users decided per second; its latencies are whole batches.</summary>
    public bool IsBatch => Mode == "decide-batch";

    /// <summary>Server CPU time over the measured window (when the server's process id was given), in seconds.</summary>
    public double? ServerCpuSeconds { get; init; }

    /// <summary>Server CPU per unit of throughput (per request, event or batch user), in microseconds.</summary>
    public double? ServerCpuMicrosPerUnit => Per(ServerCpuSeconds, Throughput);

    /// <summary>Server CPU per RPC, Decides and the TrackEvents sent before some of them together, in microseconds.</summary>
    public double? ServerCpuMicrosPerRpc => Per(ServerCpuSeconds, Throughput + TrackThroughput);

    /// <summary>
    /// The server CPU the summary and the mode's line print, in microseconds: per unit of throughput, except for mixed,
    /// per RPC (its TrackEvents are RPCs of their own, sent before some Decides; decide-miss's pair is its unit).
    /// </summary>
    public double? ServerCpuMicrosReported => Per(ServerCpuSeconds, ReportedRate);

    /// <summary>The load generator's own CPU seconds over the measured time: the client shares the machine's cores.</summary>
    public double? ClientCpuSeconds { get; init; }

    /// <summary>The load generator's CPU per request, event or batch user, in microseconds.</summary>
    public double? ClientCpuMicrosPerUnit => Per(ClientCpuSeconds, Throughput);

    /// <summary>The load generator's CPU the summary and the mode's line print, counted as <see cref="ServerCpuMicrosReported"/> is.</summary>
    public double? ClientCpuMicrosReported => Per(ClientCpuSeconds, ReportedRate);

    // What the printed CPU figures are per: RPCs for mixed, the mode's unit otherwise.
    private double ReportedRate => Mode == "mixed" ? Throughput + TrackThroughput : Throughput;

    // CPU seconds over the measured window as microseconds per unit of a rate (per second); none without both.
    private double? Per(double? cpuSeconds, double rate) => cpuSeconds is { } cpu && rate > 0 ? cpu * 1e6 / (rate * Seconds) : null;

    /// <summary>TrackEvent calls per second (decide-miss and mixed send one before some Decides).</summary>
    public double TrackThroughput => Seconds > 0 ? Tracks / Seconds : 0;

    public static ModeResult From(string mode, double seconds, IReadOnlyList<WorkerStats> workers)
    {
        var latencies = workers.SelectMany(w => w.Latencies).ToArray();
        var tracks = workers.SelectMany(w => w.TrackLatencies).ToArray();
        Array.Sort(latencies);
        Array.Sort(tracks);
        var errors = workers.SelectMany(w => w.Errors).GroupBy(e => e.Key).ToDictionary(g => g.Key, g => g.Sum(e => e.Value));
        var errorCount = errors.Values.Sum();
        return new ModeResult(
            mode,
            seconds,
            latencies.Length,
            errorCount,
            errorCount == 0 ? "" : string.Join(", ", errors.Select(e => $"{e.Key}={e.Value}")),
            // Stream modes count events accepted, not results: a duplicate or rejected event is cheap and no ingestion.
            (mode == "decide-batch" ? workers.Sum(w => w.Items) : IsIngestMode(mode) ? workers.Sum(w => w.Accepted) : latencies.Length) / seconds,
            Percentile(latencies, 0.50),
            Percentile(latencies, 0.90),
            Percentile(latencies, 0.99),
            latencies.Length == 0 ? 0 : Ms(latencies[^1]),
            workers.Sum(w => w.CacheHits),
            workers.Sum(w => w.Tracks),
            Percentile(tracks, 0.99),
            workers.Sum(w => w.Accepted),
            workers.Sum(w => w.Duplicate),
            workers.Sum(w => w.Rejected),
            workers.Sum(w => w.Items),
            Percentile(latencies, 0.999),
            Percentile(Sorted(workers.SelectMany(w => w.FirstResultLatencies)), 0.99));
    }

    private static long[] Sorted(IEnumerable<long> values)
    {
        var array = values.ToArray();
        Array.Sort(array);
        return array;
    }

    private static double Percentile(long[] sorted, double q) =>
        sorted.Length == 0 ? 0 : Ms(sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)]);

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
