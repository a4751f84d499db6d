using Google.Protobuf.WellKnownTypes;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Products;

namespace Segmentation.Server.Tests;

/// <summary>Related products are derived data: after a restart on a data directory they are learned again from the restored profiles.</summary>
public sealed class RelatedProductsRestartTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-related-host-").FullName;

    public void Dispose()
    {
        GrpcTestFixture.WaitUntilUnlocked(_dir); // the last host's files closed
        Directory.Delete(_dir, recursive: true);
    }

    private WebApplicationFactory<Program> Server() => GrpcTestFixture.DurableServer(_dir, Key);

    private static Event Purchase(string user, string order, string product, DateTimeOffset at) => new()
    {
        EventId = order,
        Type = "purchase",
        UserId = user,
        Timestamp = Timestamp.FromDateTimeOffset(at),
        Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s-" + user, PageType = "checkout" },
        OrderId = order,
        ProductId = product,
        Value = 10,
    };

    [Fact]
    public async Task Related_products_are_learned_again_from_the_restored_profiles()
    {
        var start = DateTimeOffset.UtcNow.AddDays(-2);
        IReadOnlyList<string> before;
        using (var first = Server())
        {
            using var channel = GrpcTestFixture.CreateChannel(first);
            var profiles = new ProfileService.ProfileServiceClient(channel);
            for (var u = 0; u < 20; u++)
            {
                // Everyone buys the teapot, then the cups an hour later; a few buy honey after that.
                await profiles.TrackEventAsync(new TrackEventRequest { Event = Purchase($"tea-{u}", $"o-{u}-1", "teapot", start.AddMinutes(u)) });
                await profiles.TrackEventAsync(new TrackEventRequest { Event = Purchase($"tea-{u}", $"o-{u}-2", "cups", start.AddMinutes(u + 60)) });
                if (u % 4 == 0)
                {
                    await profiles.TrackEventAsync(new TrackEventRequest { Event = Purchase($"tea-{u}", $"o-{u}-3", "honey", start.AddMinutes(u + 120)) });
                }
            }

            before = first.Services.GetRequiredService<ProductRelations>().Related(["teapot"], new HashSet<string>(), 3, DateTimeOffset.UtcNow.UtcTicks, out _);
            Assert.Equal(["cups", "honey"], before);
        }

        using var second = Server();
        using var started = GrpcTestFixture.CreateChannel(second); // starts the host
        var relations = second.Services.GetRequiredService<ProductRelations>();
        for (var wait = 0; wait < 300 && relations.Relearned == 0; wait++)
        {
            await Task.Delay(100); // learned in the background after the restore and the membership rebuild
        }

        Assert.Equal(20, relations.Relearned);
        Assert.Equal(3, relations.Products);
        Assert.Equal(before, relations.Related(["teapot"], new HashSet<string>(), 3, DateTimeOffset.UtcNow.UtcTicks, out _));
    }
}
