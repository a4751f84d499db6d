using System.Diagnostics;

namespace Segmentation.Server.Tests;

/// <summary>
/// segctl as people expect a command-line tool to behave, run as a real process: no secret in help, a key read from
/// standard input, a usable message for a bad address, an unreachable service or a refused key, and the documented
/// exit codes (0 ok, 1 failure, 2 usage, 3 invalid or rejected input).
/// </summary>
public sealed class CliProcessTests
{
    private static async Task<(int Exit, string Stdout, string Stderr)> Segctl(string arguments, string? stdin = null, Dictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet", $"{ExternalTools.Segctl} {arguments}")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment.Remove("SEGMENTATION_API_KEY");
        info.Environment.Remove("SEGCTL_ADDRESS");
        foreach (var (name, value) in environment ?? [])
        {
            info.Environment[name] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Help_never_prints_the_key_from_the_environment()
    {
        const string secret = "a-very-secret-key-from-the-environment";
        var (exit, stdout, stderr) = await Segctl("--help", environment: new() { ["SEGMENTATION_API_KEY"] = secret });
        Assert.Equal(0, exit);
        Assert.Contains("--api-key", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, stdout + stderr, StringComparison.Ordinal);

        (exit, stdout, stderr) = await Segctl("segments --help", environment: new() { ["SEGMENTATION_API_KEY"] = secret });
        Assert.Equal(0, exit);
        Assert.DoesNotContain(secret, stdout + stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hash_key_reads_the_key_from_standard_input()
    {
        var (exit, stdout, _) = await Segctl("hash-key", stdin: "my-key\n");
        Assert.Equal(0, exit);
        Assert.Equal(Security.ApiKeyRing.Hash("my-key"), stdout.Trim());

        (exit, _, var stderr) = await Segctl("hash-key", stdin: "");
        Assert.Equal(2, exit);
        Assert.Contains("standard input", stderr, StringComparison.Ordinal);

        (exit, _, _) = await Segctl("hash-key my-key-as-argument");
        Assert.Equal(2, exit); // never as an argument: it would stay in shell history and process lists
    }

    [Fact]
    public async Task Usage_errors_exit_2_with_a_message_not_a_stack_trace()
    {
        var (exit, _, stderr) = await Segctl("segments --address 127.0.0.1:5107");
        Assert.Equal(2, exit);
        Assert.Contains("--address '127.0.0.1:5107' is not a service address", stderr, StringComparison.Ordinal);
        Assert.Contains("http://127.0.0.1:5107", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await Segctl("segments --no-such-option");
        Assert.Equal(2, exit);
        Assert.Contains("--no-such-option", stderr, StringComparison.Ordinal);

        (exit, _, stderr) = await Segctl("members champions --page-size 5000", environment: new() { ["SEGCTL_ADDRESS"] = "http://127.0.0.1:1" });
        Assert.Equal(2, exit);
        Assert.Contains("--page-size", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_service_or_a_refused_key_says_which_address_and_key_source_and_what_to_try()
    {
        var closed = RealServerProcessTests.FreePort();
        var (exit, _, stderr) = await Segctl($"segments --address http://127.0.0.1:{closed}");
        Assert.Equal(1, exit);
        Assert.Contains($"could not reach http://127.0.0.1:{closed}", stderr, StringComparison.Ordinal);
        Assert.Contains("SEGCTL_ADDRESS", stderr, StringComparison.Ordinal);

        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            (exit, _, stderr) = await Segctl($"segments --address http://127.0.0.1:{port}", environment: new() { ["SEGMENTATION_API_KEY"] = "not-the-right-key" });
            Assert.Equal(1, exit);
            Assert.Contains("refused the API key from SEGMENTATION_API_KEY", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("not-the-right-key", stderr, StringComparison.Ordinal);

            // An invalid catalog is rejected input: exit 3.
            var catalog = Directory.CreateTempSubdirectory("seg-cli-invalid-").FullName;
            try
            {
                await File.WriteAllTextAsync(Path.Combine(catalog, "bad.yaml"), "segments:\n  - id: broken\n    rule: { field: orders.count, gte: not-a-number }\n");
                (exit, _, _) = await Segctl($"validate {catalog} --address http://127.0.0.1:{port}", environment: new() { ["SEGMENTATION_API_KEY"] = RealServerProcessTests.ApiKey });
                Assert.Equal(3, exit);
                (exit, var stdout, _) = await Segctl($"segments --json --address http://127.0.0.1:{port}", environment: new() { ["SEGMENTATION_API_KEY"] = RealServerProcessTests.ApiKey });
                Assert.Equal(0, exit);

                // One JSON style: proto field names, default values included (an empty population is 0, not left out).
                using var json = System.Text.Json.JsonDocument.Parse(stdout);
                Assert.Equal("0", json.RootElement.GetProperty("population").GetString()); // int64: a string in the proto3 JSON mapping
                Assert.True(json.RootElement.GetProperty("catalog_version").GetString() is "1");
                Assert.True(json.RootElement.GetProperty("segments")[0].TryGetProperty("member_count", out _));
            }
            finally
            {
                Directory.Delete(catalog, recursive: true);
            }
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }
}
