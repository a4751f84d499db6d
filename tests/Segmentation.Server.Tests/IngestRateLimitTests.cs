using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>Unary ingestion shares the per-key events-per-second budget with streams.</summary>
public sealed class IngestRateLimitTests
{
    [Fact]
    public async Task Unary_track_calls_beyond_the_keys_event_rate_are_resource_exhausted_with_a_retry_delay()
    {
        using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.UseSetting("Segmentation:Limits:StreamEventsPerSecond", "5");
        });
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var profiles = new ProfileService.ProfileServiceClient(channel);
        var request = new TrackEventsRequest();
        for (var i = 0; i < 8; i++)
        {
            request.Events.Add(new Event
            {
                EventId = $"rate-{i}",
                Type = "page_view",
                UserId = "u1",
                Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1)),
                Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s1", PageType = "home" },
            });
        }

        var ex = await Assert.ThrowsAsync<RpcException>(async () => await profiles.TrackEventsAsync(request));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.NotNull(ex.GetRpcStatus()?.GetDetail<RetryInfo>());

        await profiles.TrackEventAsync(new TrackEventRequest { Event = request.Events[0] }); // within the budget
        for (var i = 0; i < 10; i++)
        {
            try
            {
                await profiles.TrackEventAsync(new TrackEventRequest { Event = request.Events[i % 8] });
            }
            catch (RpcException limited) when (limited.StatusCode == StatusCode.ResourceExhausted)
            {
                return; // the budget ran out: unary calls are limited too
            }
        }

        Assert.Fail("ten unary calls within a second passed a budget of five events per second");
    }
}
