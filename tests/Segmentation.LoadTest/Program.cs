using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;
using Segmentation.LoadTest;

LoadOptions options;
try
{
    options = LoadOptions.Parse(args);
}
catch (Exception ex) when (ex is ArgumentException or UriFormatException)
{
    Console.Error.WriteLine(ex.Message);
    Console.Error.WriteLine(LoadOptions.Usage);
    return 2;
}

// One channel per connection: a channel's handler keeps a single HTTP/2 connection.
var channels = Enumerable.Range(0, options.Connections)
    .Select(_ => GrpcChannel.ForAddress(options.Address, new GrpcChannelOptions
    {
        HttpHandler = new ApiKeyHandler(options.ApiKey) { InnerHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan } },
        MaxReceiveMessageSize = 4 * 1024 * 1024,
    }))
    .ToArray();
foreach (var channel in channels)
{
    await channel.ConnectAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
}

var users = DemoUsers.Load(options.Users);
var probe = await new DecisionService.DecisionServiceClient(channels[0]).DecideAsync(new DecideRequest { UserId = users[0], Context = Scenarios.Context });
var decideBytes = probe.CalculateSize();
var decideRequestBytes = new DecideRequest { UserId = users[0], Context = Scenarios.Context }.CalculateSize();

// The baseline moves what a Decide moves: a request of a Decide request's size, an answer of a Decide response's
// (--payload-bytes: the same payload both ways, as Echo did before it could answer another size).
var echoRequest = options.PayloadBytes is { } fixedBytes
    ? new EchoRequest { Payload = ByteString.CopyFrom(new byte[fixedBytes]) }
    : new EchoRequest { Payload = ByteString.CopyFrom(new byte[Math.Max(0, decideRequestBytes - 6)]), ResponseBytes = (uint)Math.Max(1, decideBytes - 3) };
var echoResponseBytes = new EchoResponse { Payload = echoRequest.ResponseBytes == 0 ? echoRequest.Payload : ByteString.CopyFrom(new byte[echoRequest.ResponseBytes]) }.CalculateSize();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"server {options.Address}  connections {options.Connections}  concurrency {options.Concurrency}  duration {options.DurationSeconds}s (+{options.WarmupSeconds}s warm-up)  users {users.Count}  Decide request {decideRequestBytes} B, response {decideBytes} B  Echo request {echoRequest.CalculateSize()} B, response {echoResponseBytes} B"));

if (options.H2LoadBodiesDirectory is { } dir)
{
    Directory.CreateDirectory(dir);
    await File.WriteAllBytesAsync(Path.Combine(dir, "echo.bin"), Frame(echoRequest));
    await File.WriteAllBytesAsync(Path.Combine(dir, "decide.bin"), Frame(new DecideRequest { UserId = users[0], Context = Scenarios.Context }));
    var echoBytes = echoResponseBytes;
    Console.WriteLine($"h2load bodies written to {dir}; response message bytes: echo {echoBytes} decide {decideBytes}");
    return 0;
}

var scenarios = new Scenarios(options, users, echoRequest);
var batches = new BatchDecide(options, DemoUsers.Load(Math.Max(options.Users, options.BatchSize)));
var ingest = new StreamIngest(options);
var modes = options.Mode == "all" ? LoadOptions.Modes : options.Mode.Split(',');
if (modes.Contains("decide-batch"))
{
    var seeded = await batches.SeedAsync(channels[0]);
    Console.WriteLine(FormattableString.Invariant($"decide-batch users: {Math.Max(options.Users, options.BatchSize) - seeded:N0} demo customers and {seeded:N0} given a generated history of their own (none is an empty profile)"));
}

if (modes.Length > 1 && options.WarmupPassSeconds > 0)
{
    // One unmeasured pass of every mode first, so the JIT, the server's caches and pools are warm for
    // every mode before any is measured (otherwise the first measured modes pay for tiering).
    Console.WriteLine(FormattableString.Invariant($"warm-up pass: {options.WarmupPassSeconds}s of each of {string.Join(", ", modes)} (not measured)"));
    foreach (var mode in modes)
    {
        await RunMode(mode, options.WarmupPassSeconds, 0);
    }
}

var results = new List<ModeResult>();
foreach (var mode in modes)
{
    var result = await RunMode(mode, options.DurationSeconds, options.WarmupSeconds);
    results.Add(result);
    Console.WriteLine(Line(result));
}

var echo = results.FirstOrDefault(r => r.Mode == "echo");
var pair = results.FirstOrDefault(r => r.Mode == "echo-pair");
var echoStream = results.FirstOrDefault(r => r.Mode == "echo-stream");
if (echo is not null && results.Count > 1)
{
    Console.WriteLine();
    Console.WriteLine("summary (same server, same run; ratios are to the bare Echo RPC moving a Decide's request and response sizes)");
    Console.WriteLine("(decide-batch: users/s, latencies of whole batches; stream-ingest, stream-batch: events/s; echo-stream: messages/s, one per event; server and load-generator CPU per request, event or batch user - decide-miss: per TrackEvent and Decide pair, mixed: per RPC, its TrackEvents counted; they share the cores)");
    Console.WriteLine("mode            req/s    p50 ms   p90 ms   p99 ms p99.9 ms   max ms   errors  cache hits  throughput % of echo  p99 x echo  server CPU us  client CPU us");
    foreach (var r in results)
    {
        var share = r.IsIngest || r.IsBatch ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{100 * r.Throughput / echo.Throughput:0} %");
        var ratio = r.IsBatch ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{r.P99Ms / echo.P99Ms:0.00}x");
        var cpu = r.ServerCpuMicrosReported is { } micros ? string.Create(CultureInfo.InvariantCulture, $"{micros:0.0}") : "-";
        var clientCpu = r.ClientCpuMicrosReported is { } clientMicros ? string.Create(CultureInfo.InvariantCulture, $"{clientMicros:0.0}") : "-";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{r.Mode,-14} {r.Throughput,8:0}  {r.P50Ms,8:0.00} {r.P90Ms,8:0.00} {r.P99Ms,8:0.00} {r.P999Ms,8:0.00} {r.MaxMs,8:0.00} {r.Errors,8}  {HitShare(r),10}  {share,20}  {ratio,10}  {cpu,12}  {clientCpu,13}"));
    }

    Console.WriteLine();
    Console.WriteLine("targets (ratios from this run)");
    foreach (var r in results)
    {
        var verdict = r.Mode switch
        {
            "decide-hit" => Verdict($"throughput {100 * r.Throughput / echo.Throughput:0} % of echo (target >= 80 %)", r.Throughput >= 0.8 * echo.Throughput)
                + "; " + Verdict($"p99 {r.P99Ms / echo.P99Ms:0.00}x echo's (target <= 1.3x)", r.P99Ms <= 1.3 * echo.P99Ms)
                + "; " + Verdict($"cache hits {HitShare(r)} of its Decides (the mode measures hits: at least 95 %)", r.CacheHits >= 0.95 * r.Ok) + ServerCost(r, echo),
            "decide-miss" => Verdict($"Decide throughput {100 * r.Throughput / echo.Throughput:0} % of echo (target >= 50 %)", r.Throughput >= 0.5 * echo.Throughput)
                + string.Create(CultureInfo.InvariantCulture, $"; with the TrackEvent before each Decide {100 * (r.Throughput + r.TrackThroughput) / echo.Throughput:0} % of echo's RPC rate; p99 {r.P99Ms / echo.P99Ms:0.00}x echo's (no target)")
                + (pair is not { Throughput: > 0 } ? "" : string.Create(CultureInfo.InvariantCulture, $"; {100 * r.Throughput / pair.Throughput:0} % of echo-pair's rate (the ceiling of two RPCs per iteration)")),
            "decide-with-event" => string.Create(CultureInfo.InvariantCulture, $"decide-miss's page view and Decide in one call (DecideRequest.events): {100 * r.Throughput / echo.Throughput:0} % of echo, p99 {r.P99Ms / echo.P99Ms:0.00}x echo's (no target: decide-miss's is for the two calls)"),
            "echo-pair" => string.Create(CultureInfo.InvariantCulture, $"two Echo calls per iteration, the second counted: {100 * r.Throughput / echo.Throughput:0} % of echo - what decide-miss would reach if TrackEvent and Decide cost the server nothing"),
            "decide-fresh" => Verdict($"throughput {100 * r.Throughput / echo.Throughput:0} % of echo (every Decide computed in full; target >= 70 %)", r.Throughput >= 0.7 * echo.Throughput)
                + "; " + Verdict($"p99 {r.P99Ms / echo.P99Ms:0.00}x echo's (target <= 1.5x)", r.P99Ms <= 1.5 * echo.P99Ms) + ServerCost(r, echo),
            "mixed" => string.Create(CultureInfo.InvariantCulture, $"throughput {100 * r.Throughput / echo.Throughput:0} % of echo (no target); ")
                + Verdict($"p99 {r.P99Ms / echo.P99Ms:0.00}x echo's (target <= 1.2x)", r.P99Ms <= 1.2 * echo.P99Ms) + ServerCost(r, echo),
            "stream-ingest" or "stream-batch" => Verdict($"{r.Throughput:0} events/s over {options.Streams} streams, {(r.Mode == "stream-ingest" ? 1 : options.StreamBatch)} per message (target >= 150,000 events/s)", r.Throughput >= 150_000)
                + "; " + Verdict($"result p99 {r.P99Ms / echo.P99Ms:0.00}x echo's p99 (target <= 2x)", r.P99Ms <= 2 * echo.P99Ms)
                + (r.Mode != "stream-ingest" || echoStream is not { Throughput: > 0 } ? "" : string.Create(CultureInfo.InvariantCulture, $"; {100 * r.Throughput / echoStream.Throughput:0} % of echo-stream's rate (the ceiling of one event per message)"))
                // The target's p99 is unary Echo's (160 in flight); echo-stream holds the same streams and window as
                // stream-ingest (about 1,024 in flight), the like-for-like comparison, given beside it.
                + (echoStream is not { P99Ms: > 0 } ? "" : string.Create(CultureInfo.InvariantCulture, $"; result p99 {r.P99Ms / echoStream.P99Ms:0.00}x echo-stream's (the same streams and window; no target)"))
                + CoreBound(r),
            "echo-stream" => string.Create(CultureInfo.InvariantCulture, $"{r.Throughput:0} messages/s over {options.Streams} streams, one per message, result p99 {r.P99Ms / echo.P99Ms:0.00}x echo's - what stream-ingest would reach if recording an event cost the server nothing") + CoreBound(r),
            "decide-batch" => Verdict($"{r.Throughput:0} users/s (target >= 150,000)", r.Throughput >= 150_000)
                + (r.ServerCpuMicrosPerUnit is { } perUser ? "; " + Verdict($"server CPU {perUser:0.0} us per user (target <= 8)", perUser <= 8) : "; server CPU not measured (--server-pid)"),
            _ => null,
        };
        if (verdict is not null)
        {
            Console.WriteLine($"  {r.Mode,-14} {verdict}");
        }
    }
}

foreach (var channel in channels)
{
    channel.Dispose();
}

// Every event a run sends has an id of its own: a duplicate is a fault that would count toward events/s, not a success.
return results.Any(r => r.Errors > 0 || r.Ok == 0 || r.Rejected > 0 || r.Duplicate > 0) ? 1 : 0;

async Task<ModeResult> RunMode(string mode, double durationSeconds, double warmupSeconds)
{
    var frequency = Stopwatch.Frequency;
    var measureFrom = Stopwatch.GetTimestamp() + (long)(warmupSeconds * frequency);
    var stopAt = measureFrom + (long)(durationSeconds * frequency);
    var cpu = ProcessCpu.Between(options.ServerPid, measureFrom, stopAt);
    var clientCpu = ProcessCpu.Between(Environment.ProcessId, measureFrom, stopAt);
    var stats = mode switch
    {
        "stream-ingest" => await ingest.RunAsync(channels, measureFrom, stopAt, batch: 1),
        "stream-batch" => await ingest.RunAsync(channels, measureFrom, stopAt, options.StreamBatch),
        "echo-stream" => await ingest.RunAsync(channels, measureFrom, stopAt, batch: 1, echo: true),
        "decide-batch" => await batches.RunAsync(channels, measureFrom, stopAt),
        _ => await RunCalls(mode, measureFrom, stopAt),
    };
    return ModeResult.From(mode, durationSeconds, stats) with { ServerCpuSeconds = await cpu, ClientCpuSeconds = await clientCpu };
}

async Task<WorkerStats[]> RunCalls(string mode, long measureFrom, long stopAt)
{

    var stats = Enumerable.Range(0, options.Concurrency).Select(_ => new WorkerStats()).ToArray();
    var workers = Enumerable.Range(0, options.Concurrency).Select(w => Task.Run(async () =>
    {
        var random = new Random(w);
        var invoker = channels[w % channels.Length].CreateCallInvoker();
        for (long i = 0; ; i++)
        {
            var now = Stopwatch.GetTimestamp();
            if (now >= stopAt)
            {
                break;
            }

            await scenarios.RunOnceAsync(mode, invoker, w, i, random, stats[w], measured: now >= measureFrom);
        }
    }));
    await Task.WhenAll(workers);
    return stats;
}

string Line(ModeResult r)
{
    var errors = r.Errors > 0 ? $" ({r.ErrorDetail})" : "";
    var cpu = (r.ServerCpuMicrosReported is { } micros ? FormattableString.Invariant($" server_cpu_us={micros:0.0}") : "")
        + (r.ClientCpuMicrosReported is { } clientMicros ? FormattableString.Invariant($" client_cpu_us={clientMicros:0.0}") : "");
    if (r.IsBatch)
    {
        return FormattableString.Invariant(
            $"mode={r.Mode} users/s={r.Throughput:0} batches={r.Ok} batch_size={options.BatchSize} calls={options.BatchCalls} batch_p50={r.P50Ms:0.0}ms batch_p99={r.P99Ms:0.0}ms max={r.MaxMs:0.0}ms first_result_p99={r.FirstResultP99Ms:0.00}ms errors={r.Errors}{errors}{cpu}");
    }

    if (r.IsIngest)
    {
        return FormattableString.Invariant(
            $"mode={r.Mode} events/s={r.Throughput:0} result_p50={r.P50Ms:0.00}ms result_p90={r.P90Ms:0.00}ms result_p99={r.P99Ms:0.00}ms result_p99.9={r.P999Ms:0.00}ms max={r.MaxMs:0.00}ms results={r.Ok} accepted={r.Accepted} duplicate={r.Duplicate} rejected={r.Rejected} stream_errors={r.Errors}{errors} streams={options.Streams} stream_connections={options.StreamConnectionsUsed} window={options.Window} per_message={(r.Mode == "stream-batch" ? options.StreamBatch : 1)}{cpu}");
    }

    var tracks = r.Tracks == 0 ? ""
        : r.TrackP99Ms > 0 ? FormattableString.Invariant($" track_events={r.Tracks} track_p99={r.TrackP99Ms:0.00}ms")
        : FormattableString.Invariant($" track_events={r.Tracks}"); // recorded inside the measured call (decide-with-event): no latency of their own
    return FormattableString.Invariant(
        $"mode={r.Mode} req/s={r.Throughput:0} p50={r.P50Ms:0.00}ms p90={r.P90Ms:0.00}ms p99={r.P99Ms:0.00}ms p99.9={r.P999Ms:0.00}ms max={r.MaxMs:0.00}ms ok={r.Ok} errors={r.Errors}{errors} cache_hits={HitShare(r)}{tracks}{cpu}");
}

// What the machine allows: the server and the load generator share its cores, so together their CPU per unit bounds the rate.
static string CoreBound(ModeResult r) => r.ServerCpuMicrosPerUnit is { } server && r.ClientCpuMicrosPerUnit is { } client
    ? string.Create(CultureInfo.InvariantCulture, $"; server {server:0.0} + load generator {client:0.0} us of CPU per unit: at most {Environment.ProcessorCount * 1e6 / (server + client):0}/s on {Environment.ProcessorCount} cores")
    : "";

// The throughput ratio counts the load generator's CPU on both sides (it shares the cores); the server's own cost per
// call against Echo's, beside it, is the ratio without that.
// Per RPC: mixed's TrackEvents cost the server too, and its throughput counts only its Decides.
static string ServerCost(ModeResult r, ModeResult echo) => r.ServerCpuMicrosPerRpc is { } server && echo.ServerCpuMicrosPerUnit is { } baseline && baseline > 0
    ? string.Create(CultureInfo.InvariantCulture, $"; server CPU per RPC {server / baseline:0.00}x echo's ({server:0.0} against {baseline:0.0} us; no target)")
    : "";

static string Verdict(FormattableString what, bool met) => what.ToString(CultureInfo.InvariantCulture) + (met ? ": met" : ": MISSED");

static string HitShare(ModeResult r) => r.Mode is "echo" or "echo-pair" or "stream-ingest" or "echo-stream" or "stream-batch" or "decide-batch" || r.Ok == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{(double)r.CacheHits / r.Ok:P0}");

// gRPC length-prefixed message framing (uncompressed), as h2load must send it.
static byte[] Frame(IMessage message)
{
    var body = message.ToByteArray();
    var framed = new byte[5 + body.Length];
    BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)body.Length);
    body.CopyTo(framed, 5);
    return framed;
}
