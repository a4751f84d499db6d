using System.Text.Json;

namespace Segmentation.Server.Tests;

/// <summary>
/// A client in another language generated from the public protos: Python, with Debian's python3-grpcio and
/// python3-grpc-tools, against the real server process — Decide, TrackEvent, DecideBatch and the rich error details
/// of an invalid call. The packages are installed when missing (as root, or with password-less sudo); never skipped.
/// </summary>
public sealed class PythonClientProcessTests
{
    private const string Python = "/usr/bin/python3"; // Debian's, whose dist-packages hold the apt-installed modules

    [Fact]
    public async Task A_python_client_generated_from_the_protos_decides_tracks_batches_and_reads_field_violations()
    {
        await EnsurePythonGrpc();
        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port);
        string stdout, stderr;
        int exit;
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            var client = Path.Combine(ExternalTools.RepoRoot, "tests", "clients", "python", "client.py");
            (exit, stdout, stderr) = await ExternalTools.Run(Python, $"{client} 127.0.0.1:{port} 12415 {RealServerProcessTests.ApiKey} {GoogleCommonProtos()}", ExternalTools.RepoRoot, TimeSpan.FromMinutes(2));
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        Assert.True(exit == 0, $"python client failed ({exit}): {stderr}\n{stdout}");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var root = json.RootElement;
        Assert.Equal("vip", root.GetProperty("decision").GetProperty("segment").GetString());
        Assert.Contains(root.GetProperty("decision").GetProperty("matched").EnumerateArray(), m => m.GetString() == "repeat_buyer:MATCH_STATUS_EXCLUDED");
        Assert.False(root.GetProperty("track").GetProperty("duplicate").GetBoolean());
        Assert.Equal(["12415", "python-user", "nobody-known"], root.GetProperty("batch").EnumerateArray().Select(u => u.GetString()));
        var recorded = Assert.Single(root.GetProperty("decideWithEvents").EnumerateArray());
        Assert.Equal(["EVENT_STATUS_ACCEPTED", "python-user"], recorded.EnumerateArray().Select(v => v.GetString()));
        var invalid = root.GetProperty("invalid");
        Assert.Equal("INVALID_ARGUMENT", invalid.GetProperty("code").GetString());
        Assert.Contains(invalid.GetProperty("violations").EnumerateArray(), v => v.GetString() == "event.context.session_id");
    }

    // google/rpc/status.proto, error_details.proto and google/api/*.proto, from the Google.Api.CommonProtos package the build restored.
    private static string GoogleCommonProtos()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var found = Directory.Exists(Path.Combine(packages, "google.api.commonprotos"))
            ? Directory.GetDirectories(Path.Combine(packages, "google.api.commonprotos"))
                .Select(d => Path.Combine(d, "content", "protos"))
                .Where(d => File.Exists(Path.Combine(d, "google", "rpc", "error_details.proto")))
                .OrderBy(d => Version.TryParse(Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(d))), out var v) ? v : new Version())
                .LastOrDefault()
            : null;
        Assert.True(found is not null, $"the Google.Api.CommonProtos package was not found under {packages} (the build restores it)");
        return found;
    }

    private static Task EnsurePythonGrpc() => ExternalTools.EnsureDebianPackages(
        async () => (await ExternalTools.TryRun(Python, "-c \"import grpc, grpc_tools.protoc\"", ExternalTools.RepoRoot)).Exit == 0,
        "The Python client test",
        "python3-grpcio",
        "python3-grpc-tools");
}
