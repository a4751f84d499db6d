using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

public sealed class DecisionServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private DecisionService.DecisionServiceClient Decisions => new(fixture.Channel);

    private ProfileService.ProfileServiceClient Profiles => new(fixture.Channel);

    private static string NewUser() => "test-" + Guid.NewGuid().ToString("N");

    [Fact]
    public async Task Decide_returns_the_demo_customers_segment_and_five_rendered_variants()
    {
        var d = (await Decisions.DecideAsync(new DecideRequest { UserId = "12415", Context = new RequestContext { Device = "desktop" } })).Decision;

        Assert.Equal("vip", d.Segment.Id);
        Assert.Equal(SegmentType.Value, d.Segment.Type);
        Assert.Equal(MatchStatus.Winner, d.MatchedSegments[0].Status);
        Assert.Contains(d.MatchedSegments, m => m.Segment.Id == "champions" && m.Status == MatchStatus.Outranked);
        foreach (var v in new[] { d.Content, d.Offer, d.Cta, d.Journey, d.Messaging })
        {
            Assert.StartsWith("vip.", v.VariantId, StringComparison.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(v.Text));
        }

        Assert.Equal(1, d.CatalogVersion);
        Assert.NotEmpty(d.DecisionId);
    }

    [Fact]
    public async Task Unknown_user_gets_the_fallback_segment()
    {
        var d = (await Decisions.DecideAsync(new DecideRequest { AnonymousId = NewUser() })).Decision;

        Assert.True(d.FallbackUsed);
        Assert.Equal("general_audience", d.Segment.Id);
        Assert.Empty(d.MatchedSegments);
    }

    [Fact]
    public async Task Decide_without_a_user_is_invalid_argument_with_field_violations()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Decisions.DecideAsync(new DecideRequest
        {
            Context = new RequestContext { PagePath = new string('x', 3000) },
        }));

        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        var badRequest = ex.GetRpcStatus()!.GetDetail<BadRequest>();
        Assert.Contains(badRequest.FieldViolations, v => v.Field == "user_id");
        Assert.Contains(badRequest.FieldViolations, v => v.Field == "context.page_path" && v.Description.Contains("2048", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Repeat_decide_is_cached_and_a_tracked_event_invalidates_it()
    {
        var user = NewUser();
        var first = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
        await Decisions.DecideAsync(new DecideRequest { UserId = user }); // asked again: cached
        var second = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal("general_audience", second.Segment.Id);

        for (var i = 0; i < 5; i++)
        {
            await Profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make(user, $"pv-{i}", "product_view") });
        }

        var after = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
        Assert.False(after.FromCache);
        Assert.Equal("product_explorer", after.Segment.Id);
    }

    [Fact]
    public async Task Cart_left_for_over_an_hour_makes_a_cart_abandoner()
    {
        var user = NewUser();
        var addedAt = DateTimeOffset.UtcNow.AddMinutes(-1);
        await Profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make(user, "atc-1", "add_to_cart", addedAt) });

        var now = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
        var later = (await Decisions.DecideAsync(new DecideRequest { UserId = user, Timestamp = Timestamp.FromDateTimeOffset(addedAt.AddHours(2)) })).Decision;

        Assert.NotEqual("cart_abandoner", now.Segment.Id);
        Assert.Equal("cart_abandoner", later.Segment.Id);
    }

    [Fact]
    public async Task Declared_vip_overrides_churned()
    {
        var user = NewUser();
        await Profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make(user, "old-order", "purchase", DateTimeOffset.UtcNow.AddDays(-400), value: 20) });
        var before = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
        Assert.Contains(before.MatchedSegments, m => m.Segment.Id == "churned" && m.Status != MatchStatus.Overridden);

        await Profiles.SetTraitsAsync(new SetTraitsRequest { UserId = user, Source = "crm", Traits = { ["vip"] = new AttributeValue { BoolValue = true } } });
        var after = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;

        Assert.Equal("vip", after.Segment.Id);
        var churned = Assert.Single(after.MatchedSegments, m => m.Segment.Id == "churned");
        Assert.Equal(MatchStatus.Overridden, churned.Status);
        Assert.Equal("vip", churned.SuppressedBy);
    }

    [Fact]
    public async Task Explain_returns_the_rule_by_rule_trace()
    {
        var d = (await Decisions.DecideAsync(new DecideRequest { UserId = "12347", Explain = true, Context = new RequestContext { Device = "mobile" } })).Decision;

        Assert.False(d.FromCache);
        Assert.NotNull(d.Explanation);
        Assert.Contains("'champions' won", d.Explanation.Summary, StringComparison.Ordinal);
        var vip = Assert.Single(d.Explanation.Segments, s => s.Segment.Id == "vip");
        Assert.False(vip.Matched);
        Assert.NotEmpty(vip.FirstFailingClause);
        Assert.Contains(vip.Clauses, c => c.Description.StartsWith("orders.revenue >= 1000", StringComparison.Ordinal) && c.ActualValue == "453");
        Assert.Contains("device", d.Explanation.ContextFieldsRead);
    }

    [Fact]
    public async Task DecideBatch_streams_every_user_in_order_with_per_user_errors()
    {
        // An email batch needs email-marketing consent (an unknown user has none and is skipped).
        var privacy = new PrivacyService.PrivacyServiceClient(fixture.Channel);
        foreach (var customer in new[] { "12415", "12347" })
        {
            await privacy.RecordConsentAsync(new RecordConsentRequest { UserId = customer, Purpose = ConsentPurpose.EmailMarketing, Granted = true, Source = "test" });
        }

        using var call = Decisions.DecideBatch(new DecideBatchRequest
        {
            UserIds = { "12415", "", "12347", NewUser() },
            Channel = Channel.Email,
        });
        var items = new List<DecideBatchResponse>();
        await foreach (var item in call.ResponseStream.ReadAllAsync())
        {
            items.Add(item);
        }

        Assert.Equal([0, 1, 2, 3], items.Select(i => i.Index));
        Assert.Equal("vip", items[0].Decision.Segment.Id);
        Assert.Equal("INVALID_ARGUMENT", items[1].Error.Code);
        Assert.Contains("user_ids[1]", items[1].Error.Message, StringComparison.Ordinal);
        Assert.Equal("champions", items[2].Decision.Segment.Id);

        // Champions declare two email blocks: the last order to reorder, and products related to the customer's (learned from the demo orders).
        Assert.Equal(["reorder", "upsell"], items[2].EmailBlocks.Select(b => b.Name));
        Assert.Matches("^Running low\\? Reorder \\S+ in one click\\.$", items[2].EmailBlocks[0].Text);
        Assert.Matches("^Customers who buy what you buy also chose: \\S+(, \\S+){4}\\.$", items[2].EmailBlocks[1].Text);
        Assert.False(items[2].EmailBlocks[1].FallbackUsed);
        Assert.NotNull(items[2].SendTime);
        Assert.Equal(ConsentPurpose.EmailMarketing, items[3].Skipped.Purpose);
        Assert.Single(items.Where(i => i.Decision is not null).Select(i => i.Decision.EvaluatedAt).Distinct());
        Assert.Single(items.Where(i => i.Decision is not null).Select(i => i.Decision.CatalogVersion).Distinct());
    }

    [Fact]
    public async Task Decide_records_the_events_it_carries_first_and_decides_on_them_in_one_call()
    {
        // The storefront's page render: the page's product views go with the Decide, which sees them.
        var user = NewUser();
        var request = new DecideRequest { UserId = user };
        for (var i = 0; i < 5; i++)
        {
            var view = ProtoEvents.Make("", $"pv-{i}", "product_view"); // naming no user: recorded for the request's
            request.Events.Add(view);
        }

        request.Events.Add(ProtoEvents.Make(NewUser(), "pv-other", "product_view")); // another user's: rejected
        request.Events.Add(ProtoEvents.Make(user, "pv-0", "product_view")); // a repeat of the first: a duplicate

        var response = await Decisions.DecideAsync(request);

        Assert.Equal("product_explorer", response.Decision.Segment.Id);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6], response.EventResults.Select(r => r.Index));
        Assert.All(response.EventResults.Take(5), r => Assert.Equal(EventStatus.Accepted, r.Status));
        Assert.Equal(EventStatus.Rejected, response.EventResults[5].Status);
        Assert.Equal("events[5].user_id", Assert.Single(response.EventResults[5].Violations).Field);
        Assert.Equal(EventStatus.Duplicate, response.EventResults[6].Status);
        var profile = (await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user })).Profile;
        Assert.Equal(5, profile.EventCounts["product_view"]);
        Assert.Equal(profile.Version, response.EventResults[4].ProfileVersion);
    }

    [Fact]
    public async Task Decide_with_more_events_than_a_page_sends_is_invalid_and_records_none()
    {
        var user = NewUser();
        var request = new DecideRequest { UserId = user };
        for (var i = 0; i < 101; i++)
        {
            request.Events.Add(ProtoEvents.Make(user, $"pv-{i}", "product_view"));
        }

        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Decisions.DecideAsync(request));

        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        var violation = Assert.Single(ex.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations);
        Assert.Equal("events", violation.Field);
        Assert.Contains("at most 100 events per decision", violation.Description, StringComparison.Ordinal);
        Assert.Equal("general_audience", (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision.Segment.Id);
    }

    [Fact]
    public async Task DecideBatch_rejects_an_empty_batch()
    {
        using var call = Decisions.DecideBatch(new DecideBatchRequest());
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
    }
}
