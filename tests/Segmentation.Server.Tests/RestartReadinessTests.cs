using Google.Rpc;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Membership;

namespace Segmentation.Server.Tests;

/// <summary>
/// While the segment membership index is rebuilt after a restart, decisions and ingestion are served and report
/// ready, and the calls that read the index answer UNAVAILABLE with a retry delay; readiness says which.
/// Runs its own in-memory server: the index is put into the rebuilding state by hand.
/// </summary>
public sealed class RestartReadinessTests : IDisposable
{
    private readonly WebApplicationFactory<Program> _server = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
    {
        GrpcTestFixture.ConfigureTestHost(b);
        b.UseSetting("Segmentation:DemoData", "true");
    });

    public void Dispose() => _server.Dispose();

    [Fact]
    public async Task During_the_rebuild_decide_is_served_and_the_index_readers_answer_unavailable_with_a_retry_delay()
    {
        using var channel = GrpcTestFixture.CreateChannel(_server);
        var memberships = _server.Services.GetRequiredService<MembershipIndex>();
        var catalog = new CatalogService.CatalogServiceClient(channel);
        var health = new Health.HealthClient(channel);
        Assert.NotEmpty((await catalog.ListSegmentsAsync(new ListSegmentsRequest())).Segments);

        memberships.BeginRebuild(4_000);
        memberships.RebuildStep();

        var decision = await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "12347" });
        Assert.Equal("champions", decision.Decision.Segment.Id);
        foreach (var call in new Func<Task>[]
        {
            async () => await catalog.ListSegmentsAsync(new ListSegmentsRequest()),
            async () => await catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "champions" }),
            async () =>
            {
                using var watch = catalog.WatchSegmentChanges(new WatchSegmentChangesRequest());
                await watch.ResponseStream.MoveNext();
            },
        })
        {
            var refused = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
            Assert.Contains("1 of 4,000 profiles evaluated", refused.Status.Detail);
            var retry = refused.GetRpcStatus()!.GetDetail<RetryInfo>();
            Assert.True(retry.RetryDelay.ToTimeSpan() > TimeSpan.Zero);
        }

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "segmentation.v1.DecisionService" })).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "segmentation.v1.ProfileService" })).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = "segmentation.v1.CatalogService" })).Status);

        memberships.EndRebuild(TimeSpan.FromSeconds(2));

        Assert.True((await catalog.ListSegmentsAsync(new ListSegmentsRequest())).Population > 0);
        await catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "champions" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "segmentation.v1.CatalogService" })).Status);
    }
}
