using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;
using Segmentation.Server.Security;

namespace Segmentation.Server.Tests;

/// <summary>
/// Starts the real server process on 127.0.0.1 (as the README's run command does) and calls it from
/// a Node.js client built from our protos with @grpc/grpc-js and @grpc/proto-loader. The test installs
/// the npm packages itself (npm ci in tests/clients/node); without Node it fails with the install command.
/// </summary>
public sealed class RealServerProcessTests
{
    [Fact]
    public async Task Node_client_generated_from_the_protos_gets_a_real_decision_from_the_server_process()
    {
        var clientDir = Path.Combine(ExternalTools.RepoRoot, "tests", "clients", "node");
        await ExternalTools.EnsureNodePackages(clientDir, "@grpc/grpc-js", "@grpc/proto-loader");

        var port = FreePort();
        using var server = StartServer(port);
        string stdout, stderr;
        int exit;
        try
        {
            await WaitUntilListening(server, port);
            (exit, stdout, stderr) = await ExternalTools.Run("node", $"client.mjs 127.0.0.1:{port} 12415 {ApiKey}", clientDir, TimeSpan.FromSeconds(60));
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        Assert.True(exit == 0, $"node client failed ({exit}): {stderr}\n{stdout}");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var root = json.RootElement;
        Assert.Equal("general_audience", root.GetProperty("catalog").GetProperty("fallback").GetString());
        Assert.True(root.GetProperty("catalog").GetProperty("segments").GetInt32() >= 18);
        var decision = root.GetProperty("decision");
        Assert.Equal("vip", decision.GetProperty("segment").GetString());
        Assert.Equal("SEGMENT_TYPE_VALUE", decision.GetProperty("type").GetString());
        foreach (var variant in new[] { "content", "offer", "cta", "journey", "messaging" })
        {
            Assert.False(string.IsNullOrWhiteSpace(decision.GetProperty(variant).GetString()));
        }

        Assert.Contains(decision.GetProperty("matched").EnumerateArray(), m => m.GetString() == "mobile_shopper:MATCH_STATUS_OUTRANKED");
        Assert.Equal("INVALID_ARGUMENT", root.GetProperty("invalid").GetProperty("codeName").GetString());
        var tracked = root.GetProperty("tracked"); // five product views sent with the Decide, seen by it
        Assert.Equal("product_explorer", tracked.GetProperty("segment").GetString());
        Assert.Equal(Enumerable.Repeat("EVENT_STATUS_ACCEPTED", 5), tracked.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task A_batch_whose_client_stops_reading_is_ended_after_the_stall_limit()
    {
        // Regression (review): a DecideBatch waited for its client for as long as the connection lived: a client that
        // stopped reading held the batch (its ids, the results not taken) in the server indefinitely.
        var port = FreePort();
        using var server = StartServer(port, "--Segmentation:Limits:WriteStallSeconds=2");
        try
        {
            await WaitUntilListening(server, port);
            var transport = new SocketsHttpHandler { InitialHttp2StreamWindowSize = 65_535 }; // the window a client that reads nothing fills first
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(ApiKey, inner: transport) });
            var request = new DecideBatchRequest { Explain = true };
            request.UserIds.Add(Enumerable.Range(0, 10_000).Select(i => $"stall-{i}"));
            using var batch = new DecisionService.DecisionServiceClient(channel).DecideBatch(request);
            await Task.Delay(TimeSpan.FromSeconds(8)); // nothing read: the server's writes wait for the window

            var read = 0;
            var ended = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () =>
            {
                while (await batch.ResponseStream.MoveNext(CancellationToken.None))
                {
                    read++;
                }
            });
            Assert.True(read < 10_000, $"all {read} results were there: the batch waited for the client");
            Assert.NotEqual(Grpc.Core.StatusCode.OK, ended.StatusCode);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_system_without_time_zone_data_is_told_so_at_start_up_and_serves()
    {
        // Regression (found in review): without time zone data (a machine without tzdata) contact policies read every
        // user's quiet hours in UTC and nothing said so. TZDIR names the folder the runtime reads zones from: here empty.
        var empty = Directory.CreateTempSubdirectory("seg-no-tzdata-").FullName;
        var port = FreePort();
        using var server = StartServerProcess(
            [$"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}", "--Segmentation:Security:AllowPlaintext=true", "--Segmentation:DemoData=false", .. KeyArguments(ApiKey)],
            new Dictionary<string, string> { ["TZDIR"] = empty });
        try
        {
            await WaitUntilListening(server, port);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(ApiKey) });
            Assert.Equal("general_audience", (await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "no-tzdata" })).Decision.Segment.Id);
            Assert.Contains("No time zone data: the zone Europe/London cannot be read", OutputOf(server), StringComparison.Ordinal);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
            Directory.Delete(empty, recursive: true);
        }
    }

    /// <summary>The key the server processes started by tests accept (every scope).</summary>
    internal const string ApiKey = GrpcTestFixture.AllScopesKey;

    /// <summary>Starts the server on plaintext 127.0.0.1:<paramref name="port"/> accepting <see cref="ApiKey"/>, with more <paramref name="arguments"/>.</summary>
    internal static Process StartServer(int port, params string[] arguments) =>
        StartServerProcess([
            $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}",
            "--Segmentation:Security:AllowPlaintext=true",
            .. arguments.Any(a => a.StartsWith("--Segmentation:DemoData=", StringComparison.Ordinal)) ? [] : new[] { "--Segmentation:DemoData=true" },
            .. KeyArguments(ApiKey),
            .. arguments]);

    /// <summary>The configuration arguments for one key named <c>test</c> with every scope.</summary>
    internal static string[] KeyArguments(string key) =>
    [
        "--Segmentation:Security:ApiKeys:0:Name=test",
        $"--Segmentation:Security:ApiKeys:0:Sha256={ApiKeyRing.Hash(key)}",
        "--Segmentation:Security:ApiKeys:0:Scopes:0=decide",
        "--Segmentation:Security:ApiKeys:0:Scopes:1=ingest",
        "--Segmentation:Security:ApiKeys:0:Scopes:2=admin",
    ];

    /// <summary>Starts the server process (Production environment, from the test's output directory) with exactly <paramref name="arguments"/>.</summary>
    internal static Process StartServerProcess(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = ServerStartInfo();
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var list = arguments.ToList();
        if (!list.Any(a => a.StartsWith("--Kestrel:Endpoints:Http:", StringComparison.Ordinal)))
        {
            list.Add($"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{FreePort()}"); // the HTTP endpoint (metrics, health): never the configured port, which parallel tests would share
        }

        // The production defaults leave protocols to Kestrel (HTTP/1.1 and HTTP/2, chosen by ALPN over TLS); plaintext
        // gRPC has no ALPN, so a plaintext gRPC endpoint is HTTP/2 only, and the probes' endpoint HTTP/1.1 only.
        if (!list.Any(a => a.StartsWith("--Kestrel:Endpoints:Http:Protocols=", StringComparison.Ordinal)))
        {
            list.Add("--Kestrel:Endpoints:Http:Protocols=Http1");
        }

        if (list.Any(a => a.StartsWith("--Kestrel:Endpoints:Grpc:Url=http://", StringComparison.Ordinal))
            && !list.Any(a => a.StartsWith("--Kestrel:Endpoints:Grpc:Protocols=", StringComparison.Ordinal)))
        {
            list.Add("--Kestrel:Endpoints:Grpc:Protocols=Http2");
        }

        foreach (var argument in list)
        {
            info.ArgumentList.Add(argument);
        }

        return Start(info);
    }

    /// <summary>How to run the server from the test's output directory in the Production environment, with no arguments yet.</summary>
    internal static ProcessStartInfo ServerStartInfo()
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Segmentation.Server.dll"));
        return info;
    }

    /// <summary>Starts a server process from <paramref name="info"/>, its log kept for <see cref="OutputOf"/>.</summary>
    internal static Process Start(ProcessStartInfo info)
    {
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the server");
        var output = Outputs.GetValue(process, static _ => new System.Collections.Concurrent.ConcurrentQueue<string>());
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && output.Count < 100_000)
            {
                output.Enqueue(line); // kept for tests that read the log; drained so the server never blocks on a full pipe
            }
        };
        process.BeginOutputReadLine();
        return process;
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Process, System.Collections.Concurrent.ConcurrentQueue<string>> Outputs = new();

    /// <summary>What a server started by <see cref="StartServerProcess"/> has written to standard output (its log) so far.</summary>
    internal static string OutputOf(Process server) =>
        Outputs.TryGetValue(server, out var lines) ? string.Join('\n', lines) : "";

    /// <summary>Waits (at most 60 s) for a server that must refuse to start: its exit code, standard error and log.</summary>
    internal static async Task<(int ExitCode, string Stderr, string Log)> RefusedStart(Process server)
    {
        var stderr = server.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await server.WaitForExitAsync(timeout.Token);
        return (server.ExitCode, await stderr, OutputOf(server));
    }

    internal static async Task WaitUntilListening(Process server, int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (server.HasExited)
            {
                Assert.Fail($"server exited early ({server.ExitCode}): {await server.StandardError.ReadToEndAsync()}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(200);
            }
        }

        Assert.Fail("server did not start listening within 60 s");
    }

    // The next port FreePort tries: below Linux's ephemeral range (32768 and up), from a random start per test run.
    private static int s_nextPort = LowPorts + Random.Shared.Next(0, 6_000);

    private const int LowPorts = 20_000;
    private const int HighPorts = 32_000;

    /// <summary>
    /// A port free now for a server the test starts. Never one the kernel hands out to outgoing connections: a port
    /// picked from that range and released could be taken by one of the thousands of connections the tests open
    /// before the server binds it (seen once: "address already in use"). Unique within the test run.
    /// </summary>
    internal static int FreePort()
    {
        for (var tries = 0; tries < 2 * (HighPorts - LowPorts); tries++)
        {
            var port = Interlocked.Increment(ref s_nextPort);
            if (port >= HighPorts)
            {
                Interlocked.CompareExchange(ref s_nextPort, LowPorts, port);
                continue;
            }

            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // taken by another program: the next one
            }
        }

        throw new InvalidOperationException($"no free port between {LowPorts} and {HighPorts}");
    }
}
