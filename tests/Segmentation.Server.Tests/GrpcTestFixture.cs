using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Server.Security;

namespace Segmentation.Server.Tests;

/// <summary>
/// Hosts the real app in memory (with the default catalog and the demo import) and calls it over a real GrpcChannel.
/// <see cref="Channel"/> sends an API key with every scope; <see cref="CreateChannel"/> makes channels with other credentials.
/// </summary>
public sealed class GrpcTestFixture : WebApplicationFactory<Program>
{
    /// <summary>A key with every scope, sent by <see cref="Channel"/>.</summary>
    public const string AllScopesKey = "test-all-scopes-key";

    /// <summary>Keys with exactly one scope each.</summary>
    public const string DecideKey = "test-decide-key";
    public const string IngestKey = "test-ingest-key";
    public const string AdminKey = "test-admin-key";
    public const string WatchKey = "test-watch-key";
    public const string ReadKey = "test-read-key";

    private GrpcChannel? _channel;

    public GrpcChannel Channel => _channel ??= CreateChannel(AllScopesKey);

    /// <summary>A channel that sends <paramref name="apiKey"/> as <c>x-api-key</c> (null: no credentials), or as a bearer token.</summary>
    public GrpcChannel CreateChannel(string? apiKey, bool bearer = false) => CreateChannel(this, apiKey, bearer);

    /// <summary>A channel to <paramref name="factory"/>'s in-memory server sending <paramref name="apiKey"/>.</summary>
    public static GrpcChannel CreateChannel<T>(WebApplicationFactory<T> factory, string? apiKey = AllScopesKey, bool bearer = false)
        where T : class
    {
        HttpMessageHandler handler = factory.Server.CreateHandler();
        if (apiKey is not null)
        {
            handler = ApiKeyHandler.For(apiKey, bearer, handler);
        }

        return GrpcChannel.ForAddress(factory.Server.BaseAddress, new GrpcChannelOptions { HttpHandler = handler });
    }

    /// <summary>
    /// An in-process server without demo data that keeps its state in <paramref name="dataDirectory"/> (encrypted with
    /// <paramref name="encryptionKey"/>): two of them in turn on one directory are a restart.
    /// </summary>
    public static WebApplicationFactory<Program> DurableServer(string dataDirectory, string encryptionKey)
    {
        WaitUntilUnlocked(dataDirectory);
        return new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.UseSetting("Segmentation:DataDirectory", dataDirectory);
            b.UseSetting("Segmentation:EncryptionKey", encryptionKey);
        });
    }

    /// <summary>
    /// The test host disposes a host from two threads at once (its own dispose, and the application's run loop woken by
    /// the stopping signal); the second returns while the first may still be closing the data directory's files, so a
    /// server restarted in this process can find the directory locked for a moment, and a test deleting it can race the
    /// last writes. Production disposes once. Waits (up to 10 s) until the lock can be taken (the files are closed
    /// before it is released); a directory still locked after that fails the new server's start, explained.
    /// </summary>
    public static void WaitUntilUnlocked(string dataDirectory)
    {
        var lockPath = Path.Combine(dataDirectory, Segmentation.Storage.DataDirectory.LockName);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (File.Exists(lockPath) && DateTime.UtcNow < deadline)
        {
            try
            {
                using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>The test environment: plaintext allowed (the in-memory server has no TLS) and the test keys.</summary>
    public static void ConfigureTestHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("Segmentation:DemoData", "true"); // the tests' world is the demo's; a test may turn it off
        builder.UseSetting("Segmentation:Security:AllowPlaintext", "true");
        var keys = new (string Name, string Key, string[] Scopes)[]
        {
            ("test-all", AllScopesKey, ["decide", "ingest", "admin"]),
            ("test-decide", DecideKey, ["decide"]),
            ("test-ingest", IngestKey, ["ingest"]),
            ("test-admin", AdminKey, ["admin"]),
            ("test-watch", WatchKey, ["watch"]),
            ("test-read", ReadKey, ["read"]),
        };
        for (var i = 0; i < keys.Length; i++)
        {
            builder.UseSetting($"Segmentation:Security:ApiKeys:{i}:Name", keys[i].Name);
            builder.UseSetting($"Segmentation:Security:ApiKeys:{i}:Sha256", ApiKeyRing.Hash(keys[i].Key));
            for (var s = 0; s < keys[i].Scopes.Length; s++)
            {
                builder.UseSetting($"Segmentation:Security:ApiKeys:{i}:Scopes:{s}", keys[i].Scopes[s]);
            }
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ConfigureTestHost(builder);
        builder.UseSetting("Segmentation:DemoData", "true");
    }

    protected override void Dispose(bool disposing)
    {
        _channel?.Dispose();
        base.Dispose(disposing);
    }
}
