using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Server.Security;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

/// <summary>
/// Requests a hostile or clumsy client sends: every one gets a clear status (never INTERNAL or UNKNOWN),
/// scopes hold whatever the path's spelling, consent withdrawals take effect, and errors stay small.
/// </summary>
public sealed class HostileInputTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private static readonly Marshaller<byte[]> Bytes = Marshallers.Create(b => b, b => b);

    private static Method<byte[], byte[]> Raw(string path)
    {
        var slash = path.IndexOf('/', 1);
        return new Method<byte[], byte[]>(MethodType.Unary, path[1..slash], path[(slash + 1)..], Bytes, Bytes);
    }

    private static async Task<RpcException> RawCall(CallInvoker invoker, string path, byte[] body) =>
        await Assert.ThrowsAsync<RpcException>(async () => await invoker.AsyncUnaryCall(Raw(path), null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30)), body));

    public static TheoryData<string> Methods() => [.. MethodScopes.Mapped];

    [Theory]
    [MemberData(nameof(Methods))]
    public async Task The_scope_is_that_of_the_method_routed_to_whatever_the_spelling_of_its_path(string path)
    {
        // A key without the scope the method needs (admin implies read and watch, so those are tried with decide).
        var needs = MethodScopes.Required(path);
        var key = needs is ApiScope.Admin or ApiScope.Watch or ApiScope.Read ? GrpcTestFixture.DecideKey : GrpcTestFixture.AdminKey;
        var invoker = fixture.CreateChannel(key).CreateCallInvoker();
        var slash = path.IndexOf('/', 1);
        var variants = new[]
        {
            path,
            path.ToLowerInvariant(),
            path.ToUpperInvariant(),
            path + "/",
            path[..(slash + 1)] + path[(slash + 1)..].ToLowerInvariant() + "/",
        };

        var routed = 0;
        foreach (var variant in variants)
        {
            var status = (await RawCall(invoker, variant, [])).StatusCode;
            Assert.True(status is StatusCode.PermissionDenied or StatusCode.Unimplemented, $"{variant}: {status}");
            routed += status == StatusCode.PermissionDenied ? 1 : 0;
        }

        Assert.Equal(StatusCode.PermissionDenied, (await RawCall(invoker, path, [])).StatusCode);
        Assert.True(routed > 1, "no spelling variant was routed: the test would not see a bypass");
    }

    [Theory]
    [InlineData("/segmentation.v1.DecisionService/Decide")]
    [InlineData("/segmentation.v1.ProfileService/SetTraits")]
    [InlineData("/segmentation.v1.PrivacyService/RecordConsent")]
    public async Task A_malformed_protobuf_request_is_invalid_argument(string path)
    {
        var invoker = fixture.Channel.CreateCallInvoker();
        var ex = await RawCall(invoker, path, [0x0A, 0xFF, 0x01]); // field 1, length 255, one byte of it
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("not a valid", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_malformed_message_in_a_stream_is_invalid_argument()
    {
        var method = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "segmentation.v1.ProfileService", "StreamEvents", Bytes, Bytes);
        using var call = fixture.Channel.CreateCallInvoker().AsyncDuplexStreamingCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30)));
        await call.RequestStream.WriteAsync([0x0A, 0xFF, 0x01]);
        await call.RequestStream.CompleteAsync();
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
    }

    [Fact]
    public async Task A_blank_user_id_is_invalid_for_decide_as_for_every_other_call()
    {
        var decisions = new DecisionService.DecisionServiceClient(fixture.Channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await decisions.DecideAsync(new DecideRequest { UserId = " " }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains(Violations(ex), v => v.Field == "user_id");
    }

    [Fact]
    public async Task A_blank_user_or_anonymous_id_rejects_an_event_or_an_outcome_and_records_nothing()
    {
        var profiles = new ProfileService.ProfileServiceClient(fixture.Channel);
        var blankUser = ProtoEvents.Make(" ", "blank-user-event", "page_view");
        var blankAnonymous = ProtoEvents.Make("", "blank-anonymous-event", "page_view");
        blankAnonymous.AnonymousId = "\t ";
        var tracked = await profiles.TrackEventsAsync(new TrackEventsRequest { Events = { blankUser, blankAnonymous } });
        Assert.Equal([EventStatus.Rejected, EventStatus.Rejected], tracked.Results.Select(r => r.Status));
        Assert.Contains(tracked.Results[0].Violations, v => v.Field == "events[0].user_id" && v.Description.Contains("blank", StringComparison.Ordinal));
        Assert.Contains(tracked.Results[1].Violations, v => v.Field == "events[1].anonymous_id");

        var one = await Assert.ThrowsAsync<RpcException>(async () => await profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make("  ", "blank-single-event", "page_view") }));
        Assert.Equal(StatusCode.InvalidArgument, one.StatusCode);
        Assert.Contains(Violations(one), v => v.Field == "event.user_id");

        var outcome = new Outcome { EventId = "blank-outcome", Type = OutcomeType.Conversion, UserId = " ", Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow), Conversion = new Conversion { OrderId = "o-blank", Value = 5 } };
        var recorded = await new OutcomeService.OutcomeServiceClient(fixture.Channel).RecordOutcomesAsync(new RecordOutcomesRequest { Outcomes = { outcome } });
        Assert.Equal(Attribution.Rejected, recorded.Results.Single().Attribution);
        Assert.StartsWith("outcomes[0].user_id", recorded.Results.Single().Error, StringComparison.Ordinal);

        // A blank key names no profile: asking for one is itself invalid.
        Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(async () => await profiles.GetProfileAsync(new GetProfileRequest { UserId = " " }))).StatusCode);
    }

    [Theory]
    [InlineData(42)]
    [InlineData(-3)]
    public async Task An_outcome_with_an_unknown_variant_kind_is_rejected_not_credited_to_the_whole_decision(int variant)
    {
        var decision = await new DecisionService.DecisionServiceClient(fixture.Channel).DecideAsync(new DecideRequest { UserId = "12347" });
        var outcome = new Outcome { EventId = $"variant-{variant}", Type = OutcomeType.Click, DecisionId = decision.Decision.DecisionId, UserId = "12347", Variant = (VariantKind)variant, Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) };
        var recorded = await new OutcomeService.OutcomeServiceClient(fixture.Channel).RecordOutcomesAsync(new RecordOutcomesRequest { Outcomes = { outcome } });
        Assert.Equal(Attribution.Rejected, recorded.Results.Single().Attribution);
        Assert.StartsWith("outcomes[0].variant", recorded.Results.Single().Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Numbers_and_ids_outside_their_documented_ranges_are_invalid_argument_not_clamped_defaulted_or_not_found()
    {
        var catalog = new CatalogService.CatalogServiceClient(fixture.Channel);
        async Task<RpcException> Refused(Func<Task> call) => await Assert.ThrowsAsync<RpcException>(call);

        foreach (var share in new[] { 5.0, -0.1, double.NaN, double.PositiveInfinity })
        {
            var audit = await Refused(async () => await catalog.AuditCatalogAsync(new AuditCatalogRequest { Thresholds = new AuditThresholds { BroadShare = share } }));
            Assert.Equal(StatusCode.InvalidArgument, audit.StatusCode);
            Assert.Contains(Violations(audit), v => v.Field == "thresholds.broad_share");
        }

        foreach (var size in new[] { -5, 1_000_000 })
        {
            var preview = await Refused(async () => await catalog.PreviewSegmentAsync(new PreviewSegmentRequest { SegmentYaml = "id: x", SampleSize = size }));
            Assert.Equal(StatusCode.InvalidArgument, preview.StatusCode);
            Assert.Contains(Violations(preview), v => v.Field == "sample_size");
        }

        var members = await Refused(async () => await catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest()));
        Assert.Equal(StatusCode.InvalidArgument, members.StatusCode);
        Assert.Contains(Violations(members), v => v.Field == "segment_id");

        var rollback = await Refused(async () => await catalog.RollbackCatalogAsync(new RollbackCatalogRequest { Version = -3 }));
        Assert.Equal(StatusCode.InvalidArgument, rollback.StatusCode);
        Assert.Contains(Violations(rollback), v => v.Field == "version");
        var serving = (await catalog.GetCatalogAsync(new GetCatalogRequest())).Version;
        Assert.Equal(StatusCode.FailedPrecondition, (await Refused(async () => await catalog.RollbackCatalogAsync(new RollbackCatalogRequest { Version = serving }))).StatusCode);

        var watch = await Refused(async () =>
        {
            using var call = catalog.WatchSegmentChanges(new WatchSegmentChangesRequest { AfterOffset = long.MinValue });
            await call.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.InvalidArgument, watch.StatusCode);
        Assert.Contains(Violations(watch), v => v.Field == "after_offset");

        var empty = await Refused(async () => await new ProfileService.ProfileServiceClient(fixture.Channel).TrackEventsAsync(new TrackEventsRequest()));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        Assert.Contains(Violations(empty), v => v.Field == "events");
    }

    [Fact]
    public async Task An_event_property_past_its_documented_limits_rejects_that_event_alone()
    {
        var longList = ProtoEvents.Make("property-limits", "property-list", "custom.survey_answered");
        longList.Properties["answers"] = new AttributeValue { StringListValue = new StringList { Values = { Enumerable.Range(0, 101).Select(i => $"a{i}") } } };
        var longValue = ProtoEvents.Make("property-limits", "property-list-value", "custom.survey_answered");
        longValue.Properties["answers"] = new AttributeValue { StringListValue = new StringList { Values = { new string('a', 257) } } };
        var badTime = ProtoEvents.Make("property-limits", "property-time", "custom.survey_answered");
        badTime.Properties["answered_at"] = new AttributeValue { TimestampValue = new Timestamp { Seconds = -100_000_000_000 } };
        var fine = ProtoEvents.Make("property-limits", "property-fine", "custom.survey_answered");
        fine.Properties["answers"] = new AttributeValue { StringListValue = new StringList { Values = { "yes", "no" } } };
        fine.Properties["answered_at"] = new AttributeValue { TimestampValue = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) };

        var tracked = await new ProfileService.ProfileServiceClient(fixture.Channel).TrackEventsAsync(new TrackEventsRequest { Events = { longList, longValue, badTime, fine } });

        Assert.Equal([EventStatus.Rejected, EventStatus.Rejected, EventStatus.Rejected, EventStatus.Accepted], tracked.Results.Select(r => r.Status));
        Assert.Contains(tracked.Results[0].Violations, v => v.Field == "events[0].properties[answers]");
        Assert.Contains(tracked.Results[1].Violations, v => v.Field == "events[1].properties[answers]");
        Assert.Contains(tracked.Results[2].Violations, v => v.Field == "events[2].properties[answered_at]");
    }

    [Fact]
    public async Task A_not_found_error_quoting_a_huge_id_stays_small()
    {
        var experiments = new ExperimentService.ExperimentServiceClient(fixture.Channel);
        var id = new string('x', 1_000_000);
        var calls = new Func<Task>[]
        {
            async () => await experiments.GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = id }),
            async () => await experiments.StopExperimentAsync(new StopExperimentRequest { ExperimentId = id }),
            async () => await experiments.PromoteExperimentAsync(new PromoteExperimentRequest { ExperimentId = id }),
        };
        foreach (var call in calls)
        {
            var ex = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.NotFound, ex.StatusCode);
            Assert.InRange(ex.Status.Detail.Length, 1, 1024);
        }
    }

    [Theory]
    [InlineData(99)]
    [InlineData(-1)]
    public async Task An_unknown_data_layer_is_invalid_argument_not_the_most_trusted_layer(int layer)
    {
        var profiles = new ProfileService.ProfileServiceClient(fixture.Channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await profiles.SetTraitsAsync(new SetTraitsRequest
        {
            UserId = "layer-test",
            Source = "crm",
            Layer = (DataLayer)layer,
            Traits = { ["vip"] = new AttributeValue { BoolValue = true } },
        }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains(Violations(ex), v => v.Field == "layer");
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await profiles.GetProfileAsync(new GetProfileRequest { UserId = "layer-test" }))).StatusCode);
    }

    [Fact]
    public async Task An_unknown_channel_is_invalid_argument()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await new DecisionService.DecisionServiceClient(fixture.Channel).DecideAsync(new DecideRequest { UserId = "12347", Channel = (Channel)42 }));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains(Violations(ex), v => v.Field == "channel");
    }

    [Fact]
    public async Task Timestamps_out_of_the_accepted_range_are_invalid_argument_everywhere()
    {
        var profiles = new ProfileService.ProfileServiceClient(fixture.Channel);
        var farFuture = new Timestamp { Seconds = DateTimeOffset.Parse("9999-12-31T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeSeconds() };
        var outOfRange = new Timestamp { Seconds = 253_402_300_800 }; // past what a Timestamp may hold
        foreach (var value in new[] { farFuture, outOfRange })
        {
            var traits = await Assert.ThrowsAsync<RpcException>(async () => await profiles.SetTraitsAsync(new SetTraitsRequest
            {
                UserId = "time-test",
                Source = "crm",
                Traits = { ["company_name"] = new AttributeValue { StringValue = "x" } },
                Timestamp = value,
            }));
            Assert.Equal(StatusCode.InvalidArgument, traits.StatusCode);

            var consent = await Assert.ThrowsAsync<RpcException>(async () => await new PrivacyService.PrivacyServiceClient(fixture.Channel).RecordConsentAsync(new RecordConsentRequest
            {
                UserId = "time-test",
                Purpose = Contracts.V1.ConsentPurpose.Personalization,
                Granted = true,
                Source = "banner",
                Timestamp = value,
            }));
            Assert.Equal(StatusCode.InvalidArgument, consent.StatusCode);
            Assert.Contains(Violations(consent), v => v.Field == "timestamp");
        }
    }

    [Fact]
    public async Task A_withdrawal_without_a_timestamp_after_a_grant_dated_a_little_in_the_future_takes_effect()
    {
        var privacy = new PrivacyService.PrivacyServiceClient(fixture.Channel);
        await new ProfileService.ProfileServiceClient(fixture.Channel).TrackEventAsync(new TrackEventRequest
        {
            Event = new Event
            {
                EventId = "consent-order-e1",
                Type = "page_view",
                UserId = "consent-order",
                Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(-1)),
                Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s1", PageType = "home" },
            },
        });
        await privacy.RecordConsentAsync(new RecordConsentRequest
        {
            UserId = "consent-order",
            Purpose = Contracts.V1.ConsentPurpose.Personalization,
            Granted = true,
            Source = "banner",
            Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(4)), // inside the 5-minute skew
        });
        var withdrawn = await privacy.RecordConsentAsync(new RecordConsentRequest
        {
            UserId = "consent-order",
            Purpose = Contracts.V1.ConsentPurpose.Personalization,
            Granted = false,
            Source = "banner",
        });

        Assert.False(withdrawn.State.Granted);
        var decision = (await new DecisionService.DecisionServiceClient(fixture.Channel).DecideAsync(new DecideRequest { UserId = "consent-order" })).Decision;
        Assert.Equal(Contracts.V1.ConsentGate.ContextOnly, decision.ConsentGate);
    }

    [Theory]
    [InlineData(101)]
    [InlineData(100_000)]
    public async Task Field_violations_are_capped_and_sent_once(int traits)
    {
        var request = new SetTraitsRequest { UserId = "violations", Source = "crm" };
        for (var i = 0; i < traits; i++)
        {
            request.Traits[$"unknown_trait_{i}"] = new AttributeValue { StringValue = "x" };
        }

        var ex = await Assert.ThrowsAsync<RpcException>(async () => await new ProfileService.ProfileServiceClient(fixture.Channel).SetTraitsAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        var headerBytes = ex.Trailers.Sum(t => t.Key.Length + (t.IsBinary ? t.ValueBytes.Length : t.Value.Length));
        Assert.True(headerBytes < 6 * 1024, $"{headerBytes} bytes of error metadata");
        Assert.InRange(Violations(ex).Count, 1, 21);
        Assert.True(ex.Status.Detail.Length < 1100, ex.Status.Detail);
    }

    [Fact]
    public async Task A_batch_has_one_evaluation_time_for_every_item_cached_or_not()
    {
        var decisions = new DecisionService.DecisionServiceClient(fixture.Channel);
        var request = new DecideBatchRequest { UserIds = { "12347", "12348", "12350", "not-a-customer" } };
        for (var round = 0; round < 2; round++)
        {
            if (round == 1)
            {
                // A batch reads the cache but does not fill it; a context asked for twice is cached.
                await decisions.DecideAsync(new DecideRequest { UserId = "12348" });
                await decisions.DecideAsync(new DecideRequest { UserId = "12348" });
            }

            using var call = decisions.DecideBatch(request);
            var items = new List<DecideBatchResponse>();
            while (await call.ResponseStream.MoveNext())
            {
                items.Add(call.ResponseStream.Current);
            }

            Assert.Equal(4, items.Count);
            Assert.Single(items.Select(i => i.Decision.EvaluatedAt).Distinct());
            if (round == 1)
            {
                Assert.Contains(items, i => i.Decision.FromCache);
            }

            await Task.Delay(20);
        }
    }

    private static List<BadRequest.Types.FieldViolation> Violations(RpcException ex) =>
        [.. ex.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations ?? []];
}
