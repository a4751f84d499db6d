using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Contracts.V1;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

/// <summary>The demo data is imported once, into an empty store: a restart on a data directory brings back nothing erased and simulates nothing again.</summary>
public sealed class DemoDataRestartTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-demo-restart-").FullName;

    public void Dispose()
    {
        GrpcTestFixture.WaitUntilUnlocked(_dir); // the last host's files closed
        Directory.Delete(_dir, recursive: true);
    }

    private WebApplicationFactory<Program> Server() =>
        GrpcTestFixture.DurableServer(_dir, Key).WithWebHostBuilder(b => b.UseSetting("Segmentation:DemoData", "true"));

    private static async Task<long> Decisions(GrpcChannel channel)
    {
        var now = DateTimeOffset.UtcNow;
        var kpis = await new InsightsService.InsightsServiceClient(channel).GetKpisAsync(new GetKpisRequest
        {
            Start = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(now.AddDays(-30)),
            End = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(now.AddHours(1)),
        });
        return kpis.Total.Decisions;
    }

    [Fact]
    public async Task A_demo_customer_erased_stays_erased_after_a_restart_and_the_simulation_is_not_run_again()
    {
        // Regression: the demo import ran at every start and took it for a first import when any event was new: the
        // erased customer's events were, so the customer came back and another three weeks of decisions were simulated.
        long before;
        using (var first = Server())
        {
            using var channel = GrpcTestFixture.CreateChannel(first);
            var profiles = new ProfileService.ProfileServiceClient(channel);
            Assert.NotNull((await profiles.GetProfileAsync(new GetProfileRequest { UserId = "12347" })).Profile);
            await new PrivacyService.PrivacyServiceClient(channel).ForgetUserAsync(new ForgetUserRequest { UserId = "12347" });
            before = await Decisions(channel);
            Assert.True(before > 0);
        }

        using var second = Server();
        using var again = GrpcTestFixture.CreateChannel(second);
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await new ProfileService.ProfileServiceClient(again).GetProfileAsync(new GetProfileRequest { UserId = "12347" }));
        Assert.Equal(StatusCode.NotFound, refused.StatusCode);
        Assert.NotNull((await new ProfileService.ProfileServiceClient(again).GetProfileAsync(new GetProfileRequest { UserId = "12348" })).Profile); // the rest restored
        Assert.Equal(before, await Decisions(again));
    }

    [Fact]
    public async Task A_first_import_stopped_part_way_is_finished_at_the_next_start_and_a_stopped_simulation_is_not_run_twice()
    {
        // Regression: a first demo import stopped part-way (the process killed during its second of work) left a store
        // with some profiles, and every later start took it for a finished import: the demo stayed half there for good.
        using (var stopped = GrpcTestFixture.DurableServer(_dir, Key)) // the profiles the stopped import had stored
        {
            using var channel = GrpcTestFixture.CreateChannel(stopped);
            await new ProfileService.ProfileServiceClient(channel).TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make("12347", "stopped-1", "page_view") });
        }

        var marker = Path.Combine(_dir, "demo-import.unfinished");
        await File.WriteAllTextAsync(marker, "importing"); // what the stopped import left
        long decisions;
        using (var resumed = Server())
        {
            using var channel = GrpcTestFixture.CreateChannel(resumed);
            Assert.NotNull((await new ProfileService.ProfileServiceClient(channel).GetProfileAsync(new GetProfileRequest { UserId = "12348" })).Profile); // the rest imported
            decisions = await Decisions(channel);
            Assert.True(decisions > 0); // and simulated
        }

        Assert.False(File.Exists(marker));

        // Stopped during the simulation: its decisions are new ones each time, so it is not run a second time.
        await File.WriteAllTextAsync(marker, "simulating");
        using var again = Server();
        using var more = GrpcTestFixture.CreateChannel(again);
        Assert.Equal(decisions, await Decisions(more));
        Assert.False(File.Exists(marker));
    }
}
