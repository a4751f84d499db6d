using System.Diagnostics;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>
/// Governance across a real restart of the server process on one data directory: a catalog published through
/// the API, its version number and the rollback history come back, and a rollback after the restart works.
/// </summary>
public sealed class GovernanceRestartProcessTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-governance-process-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private int _port;

    private async Task<(Process Server, GrpcChannel Channel)> Start(params string[] more)
    {
        var port = _port = RealServerProcessTests.FreePort();
        var server = RealServerProcessTests.StartServer(port, [$"--Segmentation:DataDirectory={_dir}", $"--Segmentation:EncryptionKey={Key}", "--Segmentation:DemoData=false", .. more]);
        await RealServerProcessTests.WaitUntilListening(server, port);
        return (server, GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) }));
    }

    private static async Task Stop(Process server, GrpcChannel channel)
    {
        channel.Dispose();
        server.Kill(entireProcessTree: true); // no graceful shutdown: what was acknowledged must already be on disk
        await server.WaitForExitAsync();
    }

    [Fact]
    public async Task A_published_catalog_and_its_history_survive_a_restart_and_rollback_works_after_it()
    {
        var (server, channel) = await Start();
        try
        {
            var catalog = new CatalogService.CatalogServiceClient(channel);
            Assert.Equal(1, (await catalog.GetCatalogAsync(new GetCatalogRequest())).Version); // the embedded catalog
            var published = await catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { CatalogGovernanceServiceTests.WithExtraSegment("bought_anything") }, Comment = "spring campaign" });
            Assert.Equal(2, published.Version);
        }
        finally
        {
            await Stop(server, channel);
        }

        (server, channel) = await Start();
        try
        {
            var catalog = new CatalogService.CatalogServiceClient(channel);
            var restored = await catalog.GetCatalogAsync(new GetCatalogRequest());
            Assert.Equal(2, restored.Version); // not the embedded v1 again
            Assert.Contains(restored.Segments, s => s.Segment.Id == "bought_anything");
            Assert.Equal([2L, 1L], restored.History.Select(h => h.Version));
            Assert.Equal("spring campaign", restored.History[0].Comment);

            var rolledBack = await catalog.RollbackCatalogAsync(new RollbackCatalogRequest());
            Assert.Equal(3, rolledBack.Version);
            Assert.Equal(1, rolledBack.RestoredFrom);
            Assert.DoesNotContain((await catalog.GetCatalogAsync(new GetCatalogRequest())).Segments, s => s.Segment.Id == "bought_anything");
        }
        finally
        {
            await Stop(server, channel);
        }

        (server, channel) = await Start();
        try
        {
            var after = await new CatalogService.CatalogServiceClient(channel).GetCatalogAsync(new GetCatalogRequest());
            Assert.Equal(3, after.Version); // the rollback is durable too
            Assert.DoesNotContain(after.Segments, s => s.Segment.Id == "bought_anything");

            // The audit trail came through both restarts, and segctl reads it as an operator would.
            var (exit, stdout, stderr) = await ExternalTools.Run("dotnet", $"{ExternalTools.Segctl} --address http://127.0.0.1:{_port} --api-key {RealServerProcessTests.ApiKey} audit-log --json", AppContext.BaseDirectory, TimeSpan.FromSeconds(60));
            Assert.True(exit == 0, stderr);
            var entries = System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("entries").EnumerateArray()
                .Select(e => (Action: e.GetProperty("action").GetString(), Actor: e.GetProperty("actor").GetString(), Outcome: e.GetProperty("outcome").GetString(), Detail: e.GetProperty("detail").GetString()))
                .ToList();
            Assert.Equal(["catalog.rollback", "catalog.publish"], entries.Select(e => e.Action));
            Assert.All(entries, e => Assert.Equal(("test", "OK"), (e.Actor, e.Outcome)));
            Assert.Contains("comment: spring campaign", entries[1].Detail, StringComparison.Ordinal);
        }
        finally
        {
            await Stop(server, channel);
        }
    }

    [Fact]
    public async Task A_new_deployment_of_the_start_up_catalog_is_published_over_the_kept_versions()
    {
        var directory = Directory.CreateDirectory(Path.Combine(_dir, "..", Path.GetFileName(_dir) + "-catalog")).FullName;
        try
        {
            foreach (var file in new Core.Catalog.EmbeddedCatalogSource().ReadFiles())
            {
                var path = Path.Combine(directory, file.Name);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await File.WriteAllTextAsync(path, file.Text);
            }

            var (server, channel) = await Start($"--Segmentation:CatalogPath={directory}");
            await Stop(server, channel);

            // The files changed while the service was down (a new deployment): they become the next version.
            var extra = CatalogGovernanceServiceTests.WithExtraSegment("deployed_later").Single(f => f.Name == "segments/extra.yaml");
            await File.WriteAllTextAsync(Path.Combine(directory, "segments", "extra.yaml"), extra.Content);
            (server, channel) = await Start($"--Segmentation:CatalogPath={directory}");
            try
            {
                var catalog = await new CatalogService.CatalogServiceClient(channel).GetCatalogAsync(new GetCatalogRequest());
                Assert.Equal(2, catalog.Version);
                Assert.Contains(catalog.Segments, s => s.Segment.Id == "deployed_later");
                Assert.StartsWith("start-up: changed since v1", catalog.History[0].Comment, StringComparison.Ordinal);
            }
            finally
            {
                await Stop(server, channel);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
