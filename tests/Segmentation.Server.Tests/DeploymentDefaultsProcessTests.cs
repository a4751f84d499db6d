using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>
/// The server as an operator deploys it: the production configuration (no Development settings), listen
/// addresses from the ASP.NET Core conventions a container sets, and no demo data.
/// </summary>
public sealed class DeploymentDefaultsProcessTests
{
    [Theory]
    [InlineData("ASPNETCORE_HTTP_PORTS")] // what the .NET container images set
    [InlineData("ASPNETCORE_URLS")]
    public async Task The_production_configuration_listens_where_the_conventions_say_and_starts_empty(string variable)
    {
        var port = RealServerProcessTests.FreePort();
        var value = variable == "ASPNETCORE_URLS" ? $"http://127.0.0.1:{port}" : port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var server = Start(new Dictionary<string, string>
        {
            [variable] = value,
            ["Kestrel__EndpointDefaults__Protocols"] = "Http2", // plaintext gRPC (no TLS here) needs HTTP/2 only
            ["Segmentation__Security__AllowPlaintext"] = "true",
        });
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });

            var segments = await new CatalogService.CatalogServiceClient(channel).ListSegmentsAsync(new ListSegmentsRequest());
            Assert.Equal(0, segments.Population); // no demo import outside Development
            Assert.NotEmpty(segments.Segments); // but the embedded default catalog is served
            var missing = await Assert.ThrowsAsync<RpcException>(() => new ProfileService.ProfileServiceClient(channel).GetProfileAsync(new GetProfileRequest { UserId = "12347" }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Settings_can_come_from_secret_files_named_like_the_setting()
    {
        var secrets = Directory.CreateTempSubdirectory("seg-secrets-").FullName;
        try
        {
            // As Docker and Kubernetes mount secrets: one file per setting, the value inside (a trailing newline is ignored).
            await File.WriteAllTextAsync(Path.Combine(secrets, "Segmentation__Security__ApiKeys__0__Name"), "from-secret-file\n");
            await File.WriteAllTextAsync(Path.Combine(secrets, "Segmentation__Security__ApiKeys__0__Sha256"), Security.ApiKeyRing.Hash("key-from-a-secret") + "\n");
            await File.WriteAllTextAsync(Path.Combine(secrets, "Segmentation__Security__ApiKeys__0__Scopes__0"), "read");
            var port = RealServerProcessTests.FreePort();
            using var server = Start(
                new Dictionary<string, string>
                {
                    ["ASPNETCORE_HTTP_PORTS"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["Kestrel__EndpointDefaults__Protocols"] = "Http2",
                    ["Segmentation__Security__AllowPlaintext"] = "true",
                    ["SEGMENTATION_SECRETS_DIR"] = secrets,
                },
                withKey: false);
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For("key-from-a-secret") });
                Assert.NotEmpty((await new CatalogService.CatalogServiceClient(channel).ListSegmentsAsync(new ListSegmentsRequest())).Segments);
                var denied = await Assert.ThrowsAsync<RpcException>(() => new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "u" }).ResponseAsync);
                Assert.Contains("API key 'from-secret-file'", denied.Status.Detail, StringComparison.Ordinal);
            }
            finally
            {
                server.Kill(entireProcessTree: true);
                await server.WaitForExitAsync();
            }
        }
        finally
        {
            Directory.Delete(secrets, recursive: true);
        }
    }

    [Fact]
    public async Task A_configuration_error_is_one_sentence_and_exit_code_1_not_a_stack_trace()
    {
        using var server = Start(new Dictionary<string, string> { ["ASPNETCORE_HTTP_PORTS"] = RealServerProcessTests.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture) }, withKey: false);
        var message = await FailedStart(server);

        Assert.StartsWith("Segmentation.Server did not start: invalid configuration:", message, StringComparison.Ordinal);
        Assert.Contains("No API keys are configured", message, StringComparison.Ordinal);
        Assert.Contains("Endpoint http_ports (http://*:", message, StringComparison.Ordinal); // plaintext refused without AllowPlaintext
    }

    [Fact]
    public async Task A_port_already_taken_is_one_paragraph_naming_the_address_and_exit_code_1_with_no_stack_trace_in_the_log()
    {
        // Another process holds the port. The operator reads the console (the log on standard output, the reason on
        // standard error): a sentence that names the address, not a file error, and no stack dump anywhere, not even
        // from background services stopped before they ever ran.
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        var port = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false");
        var message = await FailedStart(server);

        Assert.StartsWith("Segmentation.Server did not start: cannot listen: ", message, StringComparison.Ordinal);
        Assert.Contains($"http://127.0.0.1:{port}", message, StringComparison.Ordinal);
        Assert.Contains("Another process holds the port", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Segmentation:DecisionCacheSize=lots", "'lots' at 'Segmentation:DecisionCacheSize'")] // a word where a number belongs
    [InlineData("--Kestrel:Endpoints:Grpc:Url=localhost-5000", "'localhost-5000'); give one such as http://")] // says what a listen address looks like
    [InlineData("--Segmentation:Telemetry:OtlpEndpoint=localhost-4317", "Segmentation:Telemetry:OtlpEndpoint")]
    [InlineData("--Segmentation:RedisIngestion:Enabled=true", "Segmentation:RedisIngestion:Enabled needs Segmentation:DataDirectory")] // acknowledged, then lost at a restart
    [InlineData("--Segmentation:Telemetry:Prometheus=maybe", "'maybe' at 'Segmentation:Telemetry:Prometheus'")] // read while services are registered
    [InlineData("--Segmentation:Privacy:Retention:SweepInterval=60.00:00:00", "Segmentation:Privacy:Retention:SweepInterval must be from 1 second to 30 days")] // past 49.7 days its timer failed after a start that looked fine
    [InlineData("--Segmentation:Privacy:Retention:EventTypes:page_veiw=1.00:00:00", "Segmentation:Privacy:Retention:EventTypes:page_veiw is not an event type")] // regression: page views were kept 730 days without a word
    public async Task A_bad_setting_is_one_sentence_naming_it_not_an_unhandled_exception(string argument, string named)
    {
        using var server = RealServerProcessTests.StartServer(RealServerProcessTests.FreePort(), "--Segmentation:DemoData=false", argument);
        var message = await FailedStart(server);

        Assert.StartsWith("Segmentation.Server did not start: invalid configuration:", message, StringComparison.Ordinal);
        Assert.Contains(named, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_misspelt_redis_configuration_is_refused_at_start()
    {
        // Regression (review): the string was parsed at each connection only: the consumer retried a keyword error
        // forever (Degraded), and every erasure answered INTERNAL until a restart.
        using var server = RealServerProcessTests.StartServer(
            RealServerProcessTests.FreePort(),
            "--Segmentation:DemoData=false",
            $"--Segmentation:DataDirectory={Directory.CreateTempSubdirectory("seg-redis-config-").FullName}",
            "--Segmentation:EncryptionKey=" + Convert.ToBase64String(new byte[32]),
            "--Segmentation:RedisIngestion:Enabled=true",
            "--Segmentation:RedisIngestion:Configuration=127.0.0.1:6379,pasword=secret");
        var message = await FailedStart(server);

        Assert.Contains("Segmentation:RedisIngestion: Configuration is not a StackExchange.Redis configuration string", message, StringComparison.Ordinal);
        Assert.Contains("pasword", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_configured_twice_or_with_a_negative_rate_is_refused_at_start()
    {
        // Regressions: a negative RequestsPerSecond silently meant the default rate, and a second entry with the same
        // hash gave the key whichever entry matched last: here the test key with only the read scope, or all of them.
        using var server = RealServerProcessTests.StartServer(
            RealServerProcessTests.FreePort(),
            "--Segmentation:DemoData=false",
            "--Segmentation:Security:ApiKeys:0:RequestsPerSecond=-5",
            "--Segmentation:Security:ApiKeys:1:Name=copied",
            $"--Segmentation:Security:ApiKeys:1:Sha256={Security.ApiKeyRing.Hash(RealServerProcessTests.ApiKey).ToUpperInvariant()}",
            "--Segmentation:Security:ApiKeys:1:Scopes:0=read");
        var message = await FailedStart(server);

        Assert.Contains("Segmentation:Security:ApiKeys:0:RequestsPerSecond must be 0", message, StringComparison.Ordinal);
        Assert.Contains("is configured for 'test' and 'copied'", message, StringComparison.Ordinal);
    }

    // Waits for a server that must not start: exit code 1, one paragraph on standard error (returned) and no stack trace
    // there or in its log.
    private static async Task<string> FailedStart(Process server)
    {
        var (exitCode, message, log) = await RealServerProcessTests.RefusedStart(server);
        Assert.Equal(1, exitCode);
        Assert.DoesNotContain("   at ", message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
        return message;
    }

    // The server from the test's output directory in Production, configured only by environment variables
    // (and the one test key as arguments): no Kestrel:Endpoints, no demo-data setting.
    private static Process Start(Dictionary<string, string> environment, bool withKey = true)
    {
        var info = RealServerProcessTests.ServerStartInfo();
        info.Environment.Remove("ASPNETCORE_URLS");
        info.Environment.Remove("ASPNETCORE_HTTP_PORTS");
        info.Environment.Remove("ASPNETCORE_HTTPS_PORTS");
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        if (withKey)
        {
            foreach (var argument in RealServerProcessTests.KeyArguments(RealServerProcessTests.ApiKey))
            {
                info.ArgumentList.Add(argument);
            }
        }

        return RealServerProcessTests.Start(info);
    }
}
