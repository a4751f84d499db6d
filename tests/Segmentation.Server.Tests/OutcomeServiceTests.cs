using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>Outcomes and KPIs over gRPC, against the default catalog.</summary>
public sealed class OutcomeServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private DecisionService.DecisionServiceClient Decisions => new(fixture.Channel);

    private OutcomeService.OutcomeServiceClient Outcomes => new(fixture.Channel);

    private InsightsService.InsightsServiceClient Insights => new(fixture.Channel);

    private static Outcome Make(string eventId, OutcomeType type, string decisionId, string user, VariantKind variant = VariantKind.Offer) => new()
    {
        EventId = eventId,
        Type = type,
        DecisionId = decisionId,
        UserId = user,
        Variant = variant,
        Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
    };

    [Fact]
    public async Task Outcomes_of_a_decision_show_in_its_segments_kpis()
    {
        var user = "kpi-" + Guid.NewGuid().ToString("N");
        var before = await Insights.GetKpisAsync(new GetKpisRequest { GroupBy = { KpiDimension.Segment, KpiDimension.Channel } });
        var decision = (await Decisions.DecideAsync(new DecideRequest { UserId = user, Channel = Channel.App })).Decision;
        var conversion = Make(user + "-c", OutcomeType.Conversion, decision.DecisionId, user);
        conversion.Conversion = new Conversion { OrderId = "order-1", Value = 25.5, Currency = "GBP" };

        var response = await Outcomes.RecordOutcomesAsync(new RecordOutcomesRequest
        {
            Outcomes = { Make(user + "-i", OutcomeType.Impression, decision.DecisionId, user), Make(user + "-k", OutcomeType.Click, decision.DecisionId, user), conversion, Make(user + "-i", OutcomeType.Impression, decision.DecisionId, user) },
        });
        var after = await Insights.GetKpisAsync(new GetKpisRequest { SegmentId = decision.Segment.Id, GroupBy = { KpiDimension.Segment, KpiDimension.Channel } });

        Assert.Equal([Attribution.Decision, Attribution.Decision, Attribution.Decision, Attribution.Duplicate], response.Results.Select(r => r.Attribution));
        Assert.All(response.Results.Take(3), r => Assert.Equal(decision.Segment.Id, r.SegmentId));
        var row = Assert.Single(after.Rows, r => r.Channel == "app");
        var old = before.Rows.SingleOrDefault(r => r.Channel == "app" && r.SegmentId == decision.Segment.Id)?.Kpis ?? new Kpis();
        Assert.Equal(decision.Segment.Id, row.SegmentId);
        Assert.Equal((1L, 1L, 1L, 1L), (row.Kpis.Decisions - old.Decisions, row.Kpis.Impressions - old.Impressions, row.Kpis.Clicks - old.Clicks, row.Kpis.Conversions - old.Conversions));
        Assert.Equal(25.5, row.Kpis.Revenue - old.Revenue, 6);
        Assert.True(after.End.ToDateTimeOffset() - after.Start.ToDateTimeOffset() >= TimeSpan.FromDays(30));
    }

    [Fact]
    public async Task An_invalid_outcome_is_rejected_in_its_own_result_and_an_unknown_decision_is_unattributed()
    {
        var response = await Outcomes.RecordOutcomesAsync(new RecordOutcomesRequest
        {
            Outcomes =
            {
                Make("bad-1", OutcomeType.Unspecified, "x", "u-bad"),
                Make("unknown-1", OutcomeType.Click, Guid.CreateVersion7().ToString(), "u-unknown"),
            },
        });

        Assert.Equal(Attribution.Rejected, response.Results[0].Attribution);
        Assert.Contains("outcomes[0].type", response.Results[0].Error, StringComparison.Ordinal);
        Assert.Equal(Attribution.Unattributed, response.Results[1].Attribution);
    }

    [Fact]
    public async Task Too_many_outcomes_or_a_bad_kpi_query_is_invalid_argument_with_field_violations()
    {
        var tooMany = new RecordOutcomesRequest();
        tooMany.Outcomes.AddRange(Enumerable.Range(0, 1001).Select(i => Make($"m{i}", OutcomeType.Click, "d", "u")));

        var many = await Assert.ThrowsAsync<RpcException>(() => Outcomes.RecordOutcomesAsync(tooMany).ResponseAsync);
        var range = await Assert.ThrowsAsync<RpcException>(() => Insights.GetKpisAsync(new GetKpisRequest
        {
            Start = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
            End = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddDays(-1)),
        }).ResponseAsync);
        var dimension = await Assert.ThrowsAsync<RpcException>(() => Insights.GetKpisAsync(new GetKpisRequest { GroupBy = { KpiDimension.Unspecified } }).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, many.StatusCode);
        Assert.Equal("outcomes", Violation(many));
        Assert.Equal("end", Violation(range));
        Assert.Equal("group_by[0]", Violation(dimension));
    }

    [Fact]
    public async Task Segment_sizes_have_a_point_for_the_current_hour_for_every_segment()
    {
        var response = await Insights.GetSegmentSizesAsync(new GetSegmentSizesRequest());
        var one = await Insights.GetSegmentSizesAsync(new GetSegmentSizesRequest { SegmentId = "champions" });

        Assert.NotEmpty(response.Segments);
        Assert.All(response.Segments, s => Assert.NotEmpty(s.Points)); // sampled when the host started
        Assert.True(Assert.Single(one.Segments).Points[^1].Members > 0);
    }

    [Fact]
    public async Task Segment_sizes_come_a_page_at_a_time_and_a_bad_page_or_an_unknown_segment_is_refused()
    {
        var all = await Insights.GetSegmentSizesAsync(new GetSegmentSizesRequest());
        var paged = new List<string>();
        var request = new GetSegmentSizesRequest { PageSize = 7 };
        do
        {
            var page = await Insights.GetSegmentSizesAsync(request);
            Assert.InRange(page.Segments.Count, 1, 7);
            paged.AddRange(page.Segments.Select(s => s.SegmentId));
            request.PageToken = page.NextPageToken;
        }
        while (request.PageToken.Length > 0);

        var tooLarge = await Assert.ThrowsAsync<RpcException>(() => Insights.GetSegmentSizesAsync(new GetSegmentSizesRequest { PageSize = 101 }).ResponseAsync);
        var badToken = await Assert.ThrowsAsync<RpcException>(() => Insights.GetSegmentSizesAsync(new GetSegmentSizesRequest { PageToken = "no-such-segment" }).ResponseAsync);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => Insights.GetSegmentSizesAsync(new GetSegmentSizesRequest { SegmentId = "no-such-segment" }).ResponseAsync);

        Assert.Equal("", all.NextPageToken); // the default catalog fits one page
        Assert.Equal(all.Segments.Select(s => s.SegmentId), paged);
        Assert.Equal(("page_size", "page_token"), (Violation(tooLarge), Violation(badToken)));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Data_quality_describes_the_demo_population_and_counts_a_rejected_event_by_its_reason()
    {
        var profiles = new ProfileService.ProfileServiceClient(fixture.Channel);
        var user = "quality-" + Guid.NewGuid().ToString("N");
        var before = await Insights.GetDataQualityAsync(new GetDataQualityRequest());
        var bad = new Event { EventId = user, Type = "page_view", UserId = user, Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow), Context = new EventContext { Source = "web", SessionId = "s", PageType = "home" } };
        Assert.Equal(1, (await profiles.TrackEventsAsync(new TrackEventsRequest { Events = { bad } })).Rejected); // no device

        var after = await Insights.GetDataQualityAsync(new GetDataQualityRequest());

        Assert.True(after.Profiles > 1000, "the demo import's customers");
        Assert.Equal(after.Profiles, after.Freshness.Sum(b => b.Profiles));
        Assert.Equal(8, after.Freshness.Count);
        Assert.Equal(6, after.Completeness.Count);
        Assert.True(after.HasUnsegmentedShare && after.UnsegmentedShare is >= 0 and <= 1);
        Assert.NotNull(after.MedianAge);
        var counted = after.End.ToDateTimeOffset() - after.Start.ToDateTimeOffset(); // the last day, in the whole hours decisions are counted in
        Assert.True(counted >= TimeSpan.FromDays(1) && counted <= TimeSpan.FromHours(25) && after.Start.ToDateTimeOffset().Ticks % TimeSpan.TicksPerHour == 0, $"{after.Start}..{after.End}");
        long Rejected(GetDataQualityResponse r) => r.Rejections.SingleOrDefault(x => x.Reason == "context.device")?.Events ?? 0;
        Assert.True(Rejected(after) - Rejected(before) >= 1);
        Assert.True(after.EventsRejected - before.EventsRejected >= 1);

        var range = await Assert.ThrowsAsync<RpcException>(() => Insights.GetDataQualityAsync(new GetDataQualityRequest
        {
            Start = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
            End = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddDays(-1)),
        }).ResponseAsync);
        Assert.Equal("end", Violation(range));
        var decideOnly = new InsightsService.InsightsServiceClient(fixture.CreateChannel(GrpcTestFixture.DecideKey));
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => decideOnly.GetDataQualityAsync(new GetDataQualityRequest()).ResponseAsync)).StatusCode);
    }

    private static string Violation(RpcException ex) => Assert.Single(ex.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field;
}
