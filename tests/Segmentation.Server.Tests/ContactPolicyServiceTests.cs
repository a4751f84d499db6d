using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>Contact policies over gRPC: one email cap holds across two segments' campaigns, and only sends use it up.</summary>
public sealed class ContactPolicyServiceTests(ExperimentServiceTests.Host host) : IClassFixture<ExperimentServiceTests.Host>
{
    // The user below has no event of their own (traits and sends only): inactive, which here takes the default cap.
    private const string Policies = """
        contact_policies:
          channels:
            email:
              caps: { default: 2/7d, active: 2/7d, high: 5/7d, declining: 1/7d }
        """;

    [Fact]
    public async Task An_email_cap_holds_across_two_segments_campaigns()
    {
        var channel = GrpcTestFixture.CreateChannel(host);
        await ExperimentServiceTests.PublishAsync(channel, Policies, "policies.yaml");
        var profiles = new ProfileService.ProfileServiceClient(channel);
        var decisions = new DecisionService.DecisionServiceClient(channel);
        var outcomes = new OutcomeService.OutcomeServiceClient(channel);
        const string User = "cap-user";

        async Task<Decision> Campaign() => (await decisions.DecideAsync(new DecideRequest { UserId = User, Channel = Channel.Email })).Decision;
        async Task Send(Decision d, string sendId) => await outcomes.RecordOutcomesAsync(new RecordOutcomesRequest
        {
            Outcomes = { new Outcome { EventId = sendId, Type = OutcomeType.EmailSend, DecisionId = d.DecisionId, UserId = User, Timestamp = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) } },
        });

        // The VIP campaign sends twice (and a retried send id once more).
        await profiles.SetTraitsAsync(new SetTraitsRequest { UserId = User, Source = "crm", Traits = { ["vip"] = new AttributeValue { BoolValue = true } } });
        var vip = await Campaign();
        Assert.Equal(("vip", ContactAction.Send), (vip.Segment.Id, vip.Contact.Action));
        await Send(vip, "vip-send-1");
        await Send(vip, "vip-send-1");
        await Campaign(); // rendered, never sent: uses up nothing
        var second = await Campaign();
        Assert.Equal((ContactAction.Send, 1), (second.Contact.Action, second.Contact.Count));
        await Send(second, "vip-send-2");

        // Another segment's campaign (no longer a VIP: new_visitor wins, ahead of gift_buyer) meets the same allowance.
        await profiles.SetTraitsAsync(new SetTraitsRequest { UserId = User, Source = "crm", Traits = { ["vip"] = new AttributeValue { BoolValue = false }, ["shopping_for"] = new AttributeValue { StringValue = "gift" } } });
        var gift = await Campaign();
        Assert.Equal(("new_visitor", ContactAction.Suppress, "cap"), (gift.Segment.Id, gift.Contact.Action, gift.Contact.Policy));
        Assert.Equal((2, 2), (gift.Contact.Count, gift.Contact.Limit));
        Assert.Equal(TimeSpan.FromDays(7), gift.Contact.Window.ToTimeSpan());
        Assert.NotNull(gift.Contact.SendAt); // next allowed when the first send leaves the window
        var explained = (await decisions.DecideAsync(new DecideRequest { UserId = User, Channel = Channel.Email, Explain = true })).Decision;
        Assert.Contains("at most 2: suppressed", explained.Contact.Reason, StringComparison.Ordinal);
        Assert.Contains("contact (email):", explained.Explanation.Summary, StringComparison.Ordinal);

        // The web channel has no policy: no verdict.
        Assert.Null((await decisions.DecideAsync(new DecideRequest { UserId = User })).Decision.Contact);
    }

    [Fact]
    public async Task An_email_batch_carries_each_users_send_time_in_their_time_zone_and_a_web_batch_none()
    {
        var channel = GrpcTestFixture.CreateChannel(host);
        var profiles = new ProfileService.ProfileServiceClient(channel);
        const string User = "sto-reader";
        await profiles.SetTraitsAsync(new SetTraitsRequest { UserId = User, Source = "crm", Traits = { ["time_zone"] = new AttributeValue { StringValue = "Asia/Tokyo" } } });
        var outcomes = new OutcomeService.OutcomeServiceClient(channel);
        var today = DateTimeOffset.UtcNow.UtcDateTime.Date;
        for (var d = 1; d <= 8; d++)
        {
            var openedAt = new DateTimeOffset(today.AddDays(-d).AddHours(10).AddMinutes(40), TimeSpan.Zero); // 19:40 in Tokyo
            await outcomes.RecordOutcomesAsync(new RecordOutcomesRequest
            {
                Outcomes = { new Outcome { EventId = $"sto-open-{d}", Type = OutcomeType.EmailOpen, UserId = User, DecisionId = Guid.CreateVersion7().ToString(), Timestamp = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(openedAt) } },
            });
        }

        async Task<DecideBatchResponse> Batch(Channel on)
        {
            using var call = new DecisionService.DecisionServiceClient(channel).DecideBatch(new DecideBatchRequest { UserIds = { User }, Channel = on, Purpose = ConsentPurpose.Personalization });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            return call.ResponseStream.Current;
        }

        var email = await Batch(Channel.Email);
        var web = await Batch(Channel.Web);

        Assert.Equal((19, "Asia/Tokyo", "profile"), (email.SendTime.LocalHour, email.SendTime.TimeZone, email.SendTime.Basis));
        var sendAt = email.SendTime.SendAt.ToDateTimeOffset();
        Assert.Equal(10, sendAt.UtcDateTime.Hour); // 19:00 in Tokyo
        Assert.True(sendAt > DateTimeOffset.UtcNow.AddHours(-1) && sendAt <= DateTimeOffset.UtcNow.AddDays(1));
        Assert.Null(web.SendTime);
    }
}
