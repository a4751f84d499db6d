using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Segmentation.Contracts.V1;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

public sealed class ProfileAndCatalogServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private ProfileService.ProfileServiceClient Profiles => new(fixture.Channel);

    private static string NewUser() => "test-" + Guid.NewGuid().ToString("N");

    [Fact]
    public async Task GetProfile_returns_aggregates_and_attributes_with_layer_source_and_time()
    {
        var p = (await Profiles.GetProfileAsync(new GetProfileRequest { UserId = "12347" })).Profile;

        Assert.Equal(4, p.Aggregates.Orders);
        Assert.Equal(453.0, p.Aggregates.Revenue, 2);
        Assert.Equal((4, 4, 5), (p.Aggregates.RfmRecency, p.Aggregates.RfmFrequency, p.Aggregates.RfmMonetary));
        var country = Assert.Single(p.Attributes, a => a.Name == "country");
        Assert.Equal("Iceland", country.Value.StringValue);
        Assert.Equal(DataLayer.FirstParty, country.Layer);
        Assert.Equal("uci-online-retail", country.Source);
        Assert.NotNull(country.UpdatedAt);
        Assert.Equal(4, p.EventCounts["purchase"]);
    }

    [Fact]
    public async Task SetTraits_keeps_declared_values_over_lower_layers()
    {
        var user = NewUser();
        await Profiles.SetTraitsAsync(new SetTraitsRequest { UserId = user, Source = "quiz", Traits = { ["preferred_category"] = new AttributeValue { StringValue = "kitchen" } } });

        var derived = await Profiles.SetTraitsAsync(new SetTraitsRequest
        {
            UserId = user,
            Source = "model",
            Layer = DataLayer.Derived,
            Traits = { ["preferred_category"] = new AttributeValue { StringValue = "party" } },
        });

        Assert.Equal(["preferred_category"], derived.Ignored);
        var attribute = Assert.Single((await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user })).Profile.Attributes, a => a.Name == "preferred_category");
        Assert.Equal(("kitchen", DataLayer.ZeroParty, "quiz"), (attribute.Value.StringValue, attribute.Layer, attribute.Source));
    }

    [Fact]
    public async Task TrackEvent_with_bad_context_is_rejected_with_every_violation_and_stores_nothing()
    {
        var user = NewUser();
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Profiles.TrackEventAsync(new TrackEventRequest
        {
            Event = new Event
            {
                EventId = "e1",
                Type = "teleport",
                UserId = user,
                Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddDays(2)),
                Value = -5,
                Context = new EventContext { Source = "web" },
            },
        }));

        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        var fields = ex.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations.Select(v => v.Field).ToHashSet();
        Assert.Superset(new HashSet<string> { "event.type", "event.timestamp", "event.value", "event.context.device", "event.context.session_id", "event.context.page_type" }, fields);
        var notFound = await Assert.ThrowsAsync<RpcException>(async () => await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user }));
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
    }

    [Fact]
    public async Task Resending_an_event_id_is_accepted_and_not_counted_twice()
    {
        var user = NewUser();
        var e = ProtoEvents.Make(user, "buy-1", "purchase", value: 40);

        var first = await Profiles.TrackEventAsync(new TrackEventRequest { Event = e });
        var retry = await Profiles.TrackEventAsync(new TrackEventRequest { Event = e });

        Assert.False(first.Duplicate);
        Assert.True(retry.Duplicate);
        Assert.Equal(first.ProfileVersion, retry.ProfileVersion);
        var p = (await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user })).Profile;
        Assert.Equal(1, p.Aggregates.Orders);
        Assert.Equal(40, p.Aggregates.Revenue);
    }

    [Fact]
    public async Task GetCatalog_lists_segments_in_priority_order_with_the_fallback_last()
    {
        var c = await new CatalogService.CatalogServiceClient(fixture.Channel).GetCatalogAsync(new GetCatalogRequest());

        Assert.Equal(1, c.Version);
        Assert.Equal("embedded:default", c.Origin);
        Assert.Equal("general_audience", c.FallbackSegmentId);
        Assert.True(c.Segments[^1].Fallback);
        var priorities = c.Segments.SkipLast(1).Select(s => s.Segment.Priority).ToList();
        Assert.Equal(priorities.OrderByDescending(p => p), priorities);
        Assert.Equal(SegmentType.Intent, c.Segments[0].Segment.Type);
        var vip = Assert.Single(c.Segments, s => s.Segment.Id == "vip");
        Assert.Equal(["churned"], vip.Overrides);
        Assert.Equal(System.Enum.GetValues<SegmentType>().Length - 1, c.Segments.Select(s => s.Segment.Type).Distinct().Count());
    }

    [Fact]
    public async Task GetCatalog_gives_the_trait_schema_and_the_fields_each_segment_reads_with_their_data_layers()
    {
        var c = await new CatalogService.CatalogServiceClient(fixture.Channel).GetCatalogAsync(new GetCatalogRequest());

        var traits = c.Traits.ToDictionary(t => t.Name);
        Assert.Equal((DataLayer.Derived, "string"), (traits["rfm_segment"].Layer, traits["rfm_segment"].Type)); // derived by the service, not declared
        Assert.Equal((DataLayer.Derived, "number"), (traits["lead_score"].Layer, traits["lead_score"].Type));
        Assert.Equal(DataLayer.FirstParty, traits["country"].Layer); // observed from events
        Assert.Equal(DataLayer.ZeroParty, traits["company_size"].Layer);
        Assert.Contains(c.Traits, t => t.Pii);

        var overseas = Assert.Single(c.Segments, s => s.Segment.Id == "overseas_customer").FieldsRead;
        Assert.Contains(overseas, f => f.Field == "traits.country" && f.Layer == DataLayer.FirstParty);
        var visitor = Assert.Single(c.Segments, s => s.Segment.Id == "international_visitor").FieldsRead;
        Assert.Contains(visitor, f => f.Field == "context.country" && f.Layer == DataLayer.Unspecified);
        Assert.Empty(c.Segments[^1].FieldsRead); // the fallback has no rule
        Assert.All(c.Segments.SkipLast(1), s => Assert.NotEmpty(s.FieldsRead));
    }

    [Fact]
    public async Task Health_reports_serving()
    {
        var health = await new Health.HealthClient(fixture.Channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task Reflection_lists_the_public_services()
    {
        using var call = new ServerReflection.ServerReflectionClient(fixture.Channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());

        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("segmentation.v1.DecisionService", services);
        Assert.Contains("segmentation.v1.ProfileService", services);
        Assert.Contains("segmentation.v1.CatalogService", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }
}
