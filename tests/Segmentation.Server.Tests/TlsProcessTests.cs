using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>Transport security against the real process: https with a configured certificate; no plaintext unless allowed.</summary>
public sealed class TlsProcessTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_server_serves_https_with_the_configured_certificate()
    {
        using var certificate = SelfSigned();
        var pfx = Path.Combine(_dir, "server.pfx");
        await File.WriteAllBytesAsync(pfx, certificate.Export(X509ContentType.Pkcs12, "test-password"));

        var port = RealServerProcessTests.FreePort();
        var httpPort = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServerProcess([
            $"--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:{port}",
            $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{httpPort}",
            $"--Segmentation:Security:CertificatePath={pfx}",
            "--Segmentation:Security:CertificatePassword=test-password",
            "--Segmentation:DemoData=false",
            .. RealServerProcessTests.KeyArguments(RealServerProcessTests.ApiKey)]);
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            await RealServerProcessTests.WaitUntilListening(server, httpPort); // the probes' endpoint, bound after the first
            var presented = "";
            var tls = new SocketsHttpHandler();
            tls.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) =>
            {
                presented = cert?.GetCertHashString(HashAlgorithmName.SHA256) ?? "";
                return presented == certificate.GetCertHashString(HashAlgorithmName.SHA256);
            };
            using var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey, inner: tls) });
            var echo = await new DiagnosticsService.DiagnosticsServiceClient(channel).EchoAsync(new EchoRequest { Payload = Google.Protobuf.ByteString.CopyFromUtf8("over tls") });

            Assert.Equal("over tls", echo.Payload.ToStringUtf8());
            Assert.Equal(certificate.GetCertHashString(HashAlgorithmName.SHA256), presented);

            // The HTTP/1.1-only endpoint of the probes and metrics may stay plaintext (no API call can cross it).
            using var probes = new HttpClient();
            Assert.Equal(System.Net.HttpStatusCode.OK, (await probes.GetAsync($"http://127.0.0.1:{httpPort}/healthz/ready")).StatusCode);
            Assert.Contains("segmentation_catalog_version", await probes.GetStringAsync($"http://127.0.0.1:{httpPort}/metrics"), StringComparison.Ordinal);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Without_a_certificate_and_without_AllowPlaintext_start_up_fails_with_a_clear_message()
    {
        var port = RealServerProcessTests.FreePort();
        var (exitCode, message, _) = await StartUpFailure([
            $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}",
            "--Segmentation:DemoData=false",
            .. RealServerProcessTests.KeyArguments(RealServerProcessTests.ApiKey)]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("is plaintext, but plaintext is not allowed", message, StringComparison.Ordinal);
        Assert.Contains("Segmentation:Security:CertificatePath", message, StringComparison.Ordinal);
        Assert.Contains("Segmentation:Security:AllowPlaintext=true", message, StringComparison.Ordinal);
        Assert.DoesNotContain("Kestrel:Endpoints:Http ", message, StringComparison.Ordinal); // HTTP/1.1 only: the probes' endpoint may be plaintext
    }

    [Fact]
    public async Task A_plaintext_endpoint_that_speaks_http2_needs_AllowPlaintext_even_for_the_probes()
    {
        var (exitCode, message, _) = await StartUpFailure([
            $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{RealServerProcessTests.FreePort()}",
            $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{RealServerProcessTests.FreePort()}",
            "--Kestrel:Endpoints:Http:Protocols=Http1AndHttp2",
            "--Segmentation:DemoData=false",
            .. RealServerProcessTests.KeyArguments(RealServerProcessTests.ApiKey)]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("Endpoint Kestrel:Endpoints:Http (", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_api_keys_start_up_fails_unless_authentication_is_disabled()
    {
        var port = RealServerProcessTests.FreePort();
        var (exitCode, message, _) = await StartUpFailure([
            $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{port}",
            "--Segmentation:Security:AllowPlaintext=true",
            "--Segmentation:DemoData=false"]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("No API keys are configured", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Segmentation:Security:CertificatePath", "--Segmentation:Security:CertificatePassword")]
    [InlineData("--Kestrel:Endpoints:Grpc:Certificate:Path", "--Kestrel:Endpoints:Grpc:Certificate:Password")]
    public async Task A_certificate_with_the_wrong_password_is_one_sentence_not_an_unhandled_exception(string pathKey, string passwordKey)
    {
        using var certificate = SelfSigned();
        var pfx = Path.Combine(_dir, "server.pfx");
        await File.WriteAllBytesAsync(pfx, certificate.Export(X509ContentType.Pkcs12, "right"));

        var (exitCode, message, log) = await StartUpFailure([
            $"--Kestrel:Endpoints:Grpc:Url=https://127.0.0.1:{RealServerProcessTests.FreePort()}",
            $"{pathKey}={pfx}",
            $"{passwordKey}=wrong",
            "--Segmentation:DemoData=false",
            .. RealServerProcessTests.KeyArguments(RealServerProcessTests.ApiKey)]);

        Assert.Equal(1, exitCode);
        Assert.StartsWith("Segmentation.Server did not start:", message, StringComparison.Ordinal);
        Assert.Contains("certificate", message, StringComparison.Ordinal);
        Assert.Contains("password", message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal);
    }

    // Starts the server with arguments it must refuse; returns its exit code, standard error and log.
    private static async Task<(int ExitCode, string Stderr, string Log)> StartUpFailure(string[] arguments)
    {
        using var server = RealServerProcessTests.StartServerProcess(arguments);
        return await RealServerProcessTests.RefusedStart(server);
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }
}
