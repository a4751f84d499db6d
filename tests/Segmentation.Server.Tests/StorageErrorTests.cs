using Google.Rpc;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Catalogs;

namespace Segmentation.Server.Tests;

/// <summary>A write the data directory refuses is UNAVAILABLE with a retry hint, whichever code path met it, and never names the server's files.</summary>
/// <remarks>Run alone: its host, started and disposed inside the test with a replaced store, shares the service's meters by name with the other hosts of this process.</remarks>
[Collection(Alone.Name)]
public sealed class StorageErrorTests
{
    [Fact]
    public async Task A_catalog_version_the_disk_refuses_is_unavailable_with_a_retry_hint_not_internal()
    {
        // Regression: the I/O exception of the version file reached the default case: INTERNAL, "see server logs".
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.ConfigureTestServices(services => services.AddSingleton<ICatalogVersionStore>(new FullDisk()));
        });
        var catalog = new CatalogService.CatalogServiceClient(GrpcTestFixture.CreateChannel(factory));

        var ex = await Assert.ThrowsAsync<RpcException>(async () => await catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { CatalogGovernanceServiceTests.WithExtraSegment("refused_by_the_disk") }, Comment = "disk full" }));

        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Equal("the data directory could not be written (no space left on the device): retry later", ex.Status.Detail);
        Assert.DoesNotContain(FullDisk.Path, ex.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromSeconds(5), ex.GetRpcStatus()!.GetDetail<RetryInfo>().RetryDelay.ToTimeSpan());
        Assert.Equal(1, (await catalog.GetCatalogAsync(new GetCatalogRequest())).Version); // nothing was published
    }

    // The version store of a data directory whose disk filled after start (the operating system's message names the file).
    private sealed class FullDisk : ICatalogVersionStore
    {
        public const string Path = "/srv/segmentation/data/catalog/v2.json.tmp";

        public IReadOnlyList<StoredCatalogVersion> Load() => [];

        public void Save(StoredCatalogVersion version, IReadOnlySet<long> keep)
        {
            if (version.Info.Version > 1) // the embedded catalog was kept at start; the disk filled since
            {
                throw new IOException($"No space left on device : '{Path}'", 28);
            }
        }
    }
}
