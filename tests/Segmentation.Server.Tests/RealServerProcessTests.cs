using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

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
            (exit, stdout, stderr) = await ExternalTools.Run("node", $"client.mjs 127.0.0.1:{port} 12415", clientDir, TimeSpan.FromSeconds(60));
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
    }

    internal static Process StartServer(int port, params string[] arguments)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Segmentation.Server.dll");
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add($"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}");
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the server");
        process.OutputDataReceived += static (_, _) => { }; // drain the log so the server never blocks on a full pipe
        process.BeginOutputReadLine();
        return process;
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

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
