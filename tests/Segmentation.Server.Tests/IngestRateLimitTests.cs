using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>Unary ingestion and outcomes share the per-key events-per-second budget with streams; a batch's users count as unary calls.</summary>
public sealed class IngestRateLimitTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(19)]
    [InlineData(20)]
    [InlineData(30)]
    [InlineData(39)]
    [InlineData(1_010)]
    [InlineData(200_000)]
    public void The_event_bucket_refills_at_exactly_the_configured_rate_and_holds_a_second_of_it(int rate)
    {
        // Regression: refilled rate / 20 (rounded down) tokens 20 times a second, so 39/s sustained 20/s and 1,010/s 1,000/s.
        var bucket = Security.StreamRateLimits.Bucket(rate);

        Assert.InRange(bucket.TokensPerPeriod / bucket.ReplenishmentPeriod.TotalSeconds, rate * 0.9999, rate * 1.0001); // a period is whole 100 ns ticks
        Assert.Equal(rate, bucket.TokenLimit);
        Assert.True(bucket.ReplenishmentPeriod <= TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Unary_track_calls_beyond_the_keys_event_rate_are_resource_exhausted_with_a_retry_delay()
    {
        using var factory = CreateFactory(eventsPerSecond: 5);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var profiles = new ProfileService.ProfileServiceClient(channel);
        var request = Events(4);

        // Four events fit the budget of five a second: calls of four run out of it and are told to come back.
        var limited = await UntilLimited(5, async () => await profiles.TrackEventsAsync(request));

        Assert.True(limited is not null, "five calls of four events within a second passed a budget of five events per second");
        Assert.NotNull(limited.GetRpcStatus()?.GetDetail<RetryInfo>());
        await AssertUnaryCallsAreLimited(profiles, request.Events[0]);
    }

    [Fact]
    public async Task The_events_a_decide_carries_count_against_the_keys_event_rate_and_a_refused_call_records_none()
    {
        using var factory = CreateFactory(eventsPerSecond: 5);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var decisions = new DecisionService.DecisionServiceClient(channel);
        var recorded = 0;

        // Four events fit the budget of five a second: Decides carrying four run out of it and are told to come back.
        var limited = await UntilLimited(10, async () =>
        {
            var request = new DecideRequest { UserId = "u1" };
            request.Events.AddRange(Events(4).Events);
            recorded += (await decisions.DecideAsync(request)).EventResults.Count(r => r.Status == EventStatus.Accepted);
        });

        Assert.True(limited is not null, "ten Decides of four events each passed a budget of five events per second");
        Assert.NotNull(limited.GetRpcStatus()?.GetDetail<RetryInfo>());
        var profile = (await new ProfileService.ProfileServiceClient(channel).GetProfileAsync(new GetProfileRequest { UserId = "u1" })).Profile;
        Assert.Equal(recorded, profile.EventCounts["page_view"]); // the refused call's events were not recorded
        Assert.NotEmpty((await decisions.DecideAsync(new DecideRequest { UserId = "u1" })).Decision.DecisionId); // deciding alone is still served
    }

    [Fact]
    public async Task A_decide_without_events_or_refused_as_invalid_spends_none_of_the_keys_event_rate()
    {
        // A Decide refused as invalid carrying a whole second's budget, ten Decides without events, then one carrying the
        // whole budget: granted in full. Had any of them taken tokens, the budget of five would be short unless a whole
        // second passed in between (then the test proves less, but cannot fail wrongly).
        using var factory = CreateFactory(eventsPerSecond: 5);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var decisions = new DecisionService.DecisionServiceClient(channel);
        var invalid = new DecideRequest { UserId = "u1", Context = new RequestContext { PagePath = "/" + new string('p', 3000) } };
        invalid.Events.AddRange(Events(5).Events);
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await decisions.DecideAsync(invalid));
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        for (var i = 0; i < 10; i++)
        {
            await decisions.DecideAsync(new DecideRequest { UserId = "u1" });
        }

        var full = new DecideRequest { UserId = "u1" };
        full.Events.AddRange(Events(5).Events);
        var response = await decisions.DecideAsync(full);

        Assert.Equal(5, response.EventResults.Count(r => r.Status == EventStatus.Accepted));
    }

    [Fact]
    public async Task A_call_with_more_events_than_the_keys_rate_allows_in_a_second_is_invalid_not_retryable()
    {
        // Retrying such a call can never succeed, so RESOURCE_EXHAUSTED with a retry delay would have its client retry
        // forever: it names the events field and the largest batch the key may send instead.
        using var factory = CreateFactory(eventsPerSecond: 5);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var profiles = new ProfileService.ProfileServiceClient(channel);

        var unary = await Assert.ThrowsAsync<RpcException>(async () => await profiles.TrackEventsAsync(Events(8)));
        AssertTooManyForTheRate(unary);

        using var call = profiles.StreamEvents();
        var batch = new StreamEventsRequest();
        batch.Events.AddRange(Events(8).Events);
        await call.RequestStream.WriteAsync(batch);
        var streamed = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        AssertTooManyForTheRate(streamed);

        await profiles.TrackEventsAsync(Events(5)); // a whole second's budget in one call is still granted
    }

    [Fact]
    public async Task A_call_refused_for_carrying_too_many_events_spends_none_of_the_keys_budget()
    {
        // A bulk call over the per-call bound is refused before any event is counted, so the refusal takes nothing
        // from the second's budget: the largest allowed call right after it is still granted in full.
        using var factory = CreateFactory(eventsPerSecond: 1200);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var profiles = new ProfileService.ProfileServiceClient(channel);
        var oversized = Events(1001);
        var largest = Events(1000);

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await profiles.TrackEventsAsync(oversized));
        var violation = Invalid(refused);
        Assert.Equal("events", violation.Field);
        Assert.Contains("at most 1000 events per call", violation.Description, StringComparison.Ordinal);

        var granted = await profiles.TrackEventsAsync(largest);
        Assert.Equal(1000, granted.Accepted);
    }

    [Fact]
    public async Task Recorded_outcomes_count_against_the_keys_event_rate()
    {
        // Regression: every accepted outcome is an event of the user's profile, yet RecordOutcomes spent none of the key's
        // event budget: a key refused past five events a second could write a thousand a call this way.
        using var factory = CreateFactory(eventsPerSecond: 5);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var outcomes = new OutcomeService.OutcomeServiceClient(channel);

        var tooMany = await Assert.ThrowsAsync<RpcException>(async () => await outcomes.RecordOutcomesAsync(Impressions(50)));
        var violation = Invalid(tooMany);
        Assert.Equal("outcomes", violation.Field);
        Assert.Contains("50 outcomes (each an event of the user's profile) in one call", violation.Description, StringComparison.Ordinal);
        Assert.Contains("at most 5", violation.Description, StringComparison.Ordinal);

        var limited = await UntilLimited(5, async () => await outcomes.RecordOutcomesAsync(Impressions(4)));
        Assert.True(limited is not null, "five calls of four outcomes within a second passed a budget of five events per second");
        Assert.NotNull(limited.GetRpcStatus()?.GetDetail<RetryInfo>());
    }

    [Fact]
    public async Task Each_user_of_a_batch_counts_against_the_keys_unary_rate()
    {
        // Regression: DecideBatch (server streaming) was in no limit at all: a key held to 20 Decides a second could have
        // any number of 10,000-user batches decided back to back.
        using var factory = CreateFactory(eventsPerSecond: 5, unaryPerSecond: 20);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var decisions = new DecisionService.DecisionServiceClient(channel);
        async Task Batch(int users)
        {
            var request = new DecideBatchRequest { Channel = Channel.Web };
            request.UserIds.AddRange(Enumerable.Range(0, users).Select(i => $"b-{i}"));
            using var call = decisions.DecideBatch(request);
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        }

        var tooMany = await Assert.ThrowsAsync<RpcException>(() => Batch(30));
        Assert.Equal("user_ids", Invalid(tooMany).Field);

        var limited = await UntilLimited(10, () => Batch(15)); // ten batches of 15 within a second against 20 a second
        Assert.True(limited is not null, "ten batches of 15 users back to back passed a budget of 20 calls per second");
        Assert.NotNull(limited.GetRpcStatus()?.GetDetail<RetryInfo>());
    }

    [Fact]
    public async Task A_batch_refused_as_invalid_still_costs_the_key_a_call()
    {
        // Regression (review): DecideBatch was left out of the limiter at the door and charged per user once its request
        // was read and valid, so invalid batches (up to 4 MiB each to parse) cost a key nothing, however many it sent.
        using var factory = CreateFactory(eventsPerSecond: 5, unaryPerSecond: 5);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var decisions = new DecisionService.DecisionServiceClient(channel);

        var limited = await UntilLimited(20, async () =>
        {
            try
            {
                using var call = decisions.DecideBatch(new DecideBatchRequest()); // no user ids: invalid
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                }
            }
            catch (RpcException invalid) when (invalid.StatusCode == StatusCode.InvalidArgument)
            {
            }
        });

        Assert.True(limited is not null, "twenty invalid batches within a second passed a budget of 5 calls per second");
        Assert.NotNull(limited.GetRpcStatus()?.GetDetail<RetryInfo>());
    }

    [Fact]
    public async Task An_administrative_call_refused_for_the_rate_is_on_the_audit_trail()
    {
        // Regression: a call refused by the rate limiter never reached the audit interceptor, so an admin key hammering
        // GetConsent or ForgetUser left no trace of the attempts it was refused (a missing scope did).
        using var factory = CreateFactory(eventsPerSecond: 5, unaryPerSecond: 1);
        using var channel = GrpcTestFixture.CreateChannel(factory, GrpcTestFixture.AdminKey);
        var privacy = new PrivacyService.PrivacyServiceClient(channel);
        var limited = await UntilLimited(10, async () => await privacy.GetConsentAsync(new GetConsentRequest { UserId = "rate-user" }));
        Assert.NotNull(limited);
        Assert.Equal(StatusCode.ResourceExhausted, limited.StatusCode);

        await Task.Delay(TimeSpan.FromSeconds(2.5)); // the bucket refills before the trail is read (itself a unary call)
        var entries = (await new AuditService.AuditServiceClient(channel).ListAuditEntriesAsync(new ListAuditEntriesRequest { Action = "privacy.get_consent" })).Entries;
        var refused = Assert.Single(entries, e => e.Outcome == "RESOURCE_EXHAUSTED");
        Assert.Equal("test-admin", refused.Actor);
        Assert.Contains("rate limit of 1 calls per second", refused.Detail, StringComparison.Ordinal);
        Assert.Equal("", refused.UserId); // the request was not read
    }

    private static RecordOutcomesRequest Impressions(int count)
    {
        var request = new RecordOutcomesRequest();
        for (var i = 0; i < count; i++)
        {
            request.Outcomes.Add(new Outcome { EventId = $"imp-{Guid.NewGuid():N}", Type = OutcomeType.Impression, UserId = "u1", DecisionId = "unknown", Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1)) });
        }

        return request;
    }

    // Makes the call up to the given number of times, until one is refused for the rate: that refusal, or null if none was.
    private static async Task<RpcException?> UntilLimited(int attempts, Func<Task> call)
    {
        for (var i = 0; i < attempts; i++)
        {
            try
            {
                await call();
            }
            catch (RpcException limited) when (limited.StatusCode == StatusCode.ResourceExhausted)
            {
                return limited;
            }
        }

        return null;
    }

    // The one field violation of a call refused as invalid.
    private static BadRequest.Types.FieldViolation Invalid(RpcException ex)
    {
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        return Assert.Single(ex.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations);
    }

    private static void AssertTooManyForTheRate(RpcException ex)
    {
        var violation = Invalid(ex);
        Assert.Equal("events", violation.Field);
        Assert.Contains("at most 5", violation.Description, StringComparison.Ordinal);
    }

    private static async Task AssertUnaryCallsAreLimited(ProfileService.ProfileServiceClient profiles, Event one)
    {
        for (var i = 0; i < 30; i++) // thirty: five a second would need six seconds of calls to pass them all, a stalled machine too
        {
            try
            {
                await profiles.TrackEventAsync(new TrackEventRequest { Event = one });
            }
            catch (RpcException limited) when (limited.StatusCode == StatusCode.ResourceExhausted)
            {
                return; // the budget ran out: unary calls are limited too
            }
        }

        Assert.Fail("thirty unary calls back to back passed a budget of five events per second");
    }

    [Fact]
    public async Task Server_streaming_calls_take_a_token_per_call_as_unary_calls_do()
    {
        // Regression (review): only unary calls were limited, so a key past its rate could open watches from the oldest
        // retained entry (each replaying up to a million) as often as it liked.
        using var factory = CreateFactory(eventsPerSecond: 1000, unaryPerSecond: 2);
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var catalog = new CatalogService.CatalogServiceClient(channel);
        async Task<bool> Refused()
        {
            using var watch = catalog.WatchSegmentChanges(new WatchSegmentChangesRequest { FromOldest = true }, deadline: DateTime.UtcNow.AddMilliseconds(500));
            try
            {
                while (await watch.ResponseStream.MoveNext())
                {
                }
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted)
            {
                return true;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.DeadlineExceeded)
            {
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.Cancelled && ex.Message.Contains("reset", StringComparison.Ordinal))
            {
                // The deadline reached the server first under load: the test host resets the stream (error code 8).
            }

            return false;
        }

        var refused = (await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Refused()))).Count(r => r);

        Assert.InRange(refused, 1, 6); // eight watches at once all passed a rate of two calls per second
    }

    private static WebApplicationFactory<Program> CreateFactory(int eventsPerSecond, int? unaryPerSecond = null) => new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
    {
        GrpcTestFixture.ConfigureTestHost(b);
        b.UseSetting("Segmentation:DemoData", "false");
        b.UseSetting("Segmentation:Limits:StreamEventsPerSecond", eventsPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (unaryPerSecond is { } rate)
        {
            b.UseSetting("Segmentation:Limits:UnaryRequestsPerSecond", rate.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    });

    private static TrackEventsRequest Events(int count)
    {
        var request = new TrackEventsRequest();
        for (var i = 0; i < count; i++)
        {
            request.Events.Add(new Event
            {
                EventId = $"rate-{Guid.NewGuid():N}",
                Type = "page_view",
                UserId = "u1",
                Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1)),
                Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s1", PageType = "home" },
            });
        }

        return request;
    }
}
