using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

/// <summary>Consent, erasure and export over gRPC.</summary>
public sealed class PrivacyServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private PrivacyService.PrivacyServiceClient Privacy => new(fixture.Channel);

    private ProfileService.ProfileServiceClient Profiles => new(fixture.Channel);

    private DecisionService.DecisionServiceClient Decisions => new(fixture.Channel);

    private CatalogService.CatalogServiceClient Catalog => new(fixture.Channel);

    private static string NewUser() => "priv-" + Guid.NewGuid().ToString("N");

    private static readonly Contracts.V1.RequestContext Mobile = new() { Device = "mobile" };

    // Five product views in a week: product_explorer (behavioural).
    private async Task Explore(string user, string anonymous = "")
    {
        for (var i = 0; i < 5; i++)
        {
            var e = ProtoEvents.Make(user, $"{user}-v{i}", "product_view");
            if (anonymous.Length > 0)
            {
                e.UserId = "";
                e.AnonymousId = anonymous;
                e.EventId = $"{anonymous}-v{i}";
            }

            await Profiles.TrackEventAsync(new TrackEventRequest { Event = e });
        }
    }

    private Task<RecordConsentResponse> Consent(string user, ConsentPurpose purpose, bool granted, string source = "web-banner", DateTimeOffset? at = null) =>
        Privacy.RecordConsentAsync(new RecordConsentRequest
        {
            UserId = user,
            Purpose = purpose,
            Granted = granted,
            Source = source,
            Timestamp = at is { } t ? Timestamp.FromDateTimeOffset(t) : null,
        }).ResponseAsync;

    [Fact]
    public async Task RecordConsent_and_GetConsent_keep_the_trail_and_report_defaults()
    {
        var user = NewUser();
        var fresh = await Privacy.GetConsentAsync(new GetConsentRequest { UserId = user });
        Assert.Equal(
            [(ConsentPurpose.Personalization, true), (ConsentPurpose.Analytics, false), (ConsentPurpose.EmailMarketing, false), (ConsentPurpose.Advertising, false)],
            fresh.States.Select(s => (s.Purpose, s.Granted)));
        Assert.All(fresh.States, s => Assert.False(s.Recorded));

        var granted = await Consent(user, ConsentPurpose.EmailMarketing, true, "signup", DateTimeOffset.UtcNow.AddMinutes(-2));
        var withdrawn = await Consent(user, ConsentPurpose.EmailMarketing, false, "unsubscribe-link");
        Assert.True(withdrawn.ProfileVersion > granted.ProfileVersion);
        Assert.False(withdrawn.State.Granted);
        Assert.Equal("unsubscribe-link", withdrawn.State.Latest.Source);

        var view = await Privacy.GetConsentAsync(new GetConsentRequest { UserId = user });
        Assert.Equal(["signup", "unsubscribe-link"], view.Trail.Select(t => t.Source));
        Assert.Equal([true, false], view.Trail.Select(t => t.Granted));
        Assert.True(view.States.Single(s => s.Purpose == ConsentPurpose.EmailMarketing).Recorded);
    }

    [Fact]
    public async Task RecordConsent_without_a_purpose_is_invalid_argument()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => Consent(NewUser(), ConsentPurpose.Unspecified, true));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains(ex.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations, v => v.Field == "purpose");
    }

    [Fact]
    public async Task Decide_without_personalization_consent_uses_only_the_request_context_and_explains_the_gate()
    {
        var user = NewUser();
        await Explore(user);
        var before = (await Decisions.DecideAsync(new DecideRequest { UserId = user, Context = Mobile })).Decision;
        Assert.Equal("product_explorer", before.Segment.Id);
        Assert.Equal(ConsentGate.FullProfile, before.ConsentGate);

        await Consent(user, ConsentPurpose.Personalization, false);

        var after = (await Decisions.DecideAsync(new DecideRequest { UserId = user, Context = Mobile, Explain = true })).Decision;
        Assert.Equal("mobile_shopper", after.Segment.Id);
        Assert.Equal(ConsentGate.ContextOnly, after.ConsentGate);
        Assert.DoesNotContain(after.MatchedSegments, m => m.Segment.Id == "product_explorer");
        Assert.Contains("only the request context was read", after.Explanation.Consent);
        var cached = (await Decisions.DecideAsync(new DecideRequest { UserId = user, Context = Mobile })).Decision;
        Assert.Equal(("mobile_shopper", ConsentGate.ContextOnly), (cached.Segment.Id, cached.ConsentGate));

        var members = await Catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "product_explorer", PageSize = 1000, PageToken = user[..^1] });
        Assert.DoesNotContain(user, members.UserIds);
    }

    [Fact]
    public async Task DecideBatch_for_email_returns_users_without_email_consent_as_skipped()
    {
        var (yes, no) = (NewUser(), NewUser());
        await Explore(yes);
        await Explore(no);
        await Consent(yes, ConsentPurpose.EmailMarketing, true, "signup");

        using var call = Decisions.DecideBatch(new DecideBatchRequest { UserIds = { yes, no, "", "priv-unknown" }, Channel = Channel.Email });
        var items = new List<DecideBatchResponse>();
        await foreach (var item in call.ResponseStream.ReadAllAsync())
        {
            items.Add(item);
        }

        Assert.Equal(
            [DecideBatchResponse.ResultOneofCase.Decision, DecideBatchResponse.ResultOneofCase.Skipped, DecideBatchResponse.ResultOneofCase.Error, DecideBatchResponse.ResultOneofCase.Skipped],
            items.Select(i => i.ResultCase));
        Assert.Equal("product_explorer", items[0].Decision.Segment.Id);
        Assert.Equal(ConsentPurpose.EmailMarketing, items[1].Skipped.Purpose);
        Assert.Equal("email_marketing consent never recorded: not granted by default", items[1].Skipped.Reason);

        // The web channel checks no purpose.
        using var web = Decisions.DecideBatch(new DecideBatchRequest { UserIds = { yes, no } });
        await foreach (var item in web.ResponseStream.ReadAllAsync())
        {
            Assert.Equal(DecideBatchResponse.ResultOneofCase.Decision, item.ResultCase);
        }
    }

    [Fact]
    public async Task Watchers_see_nothing_of_users_without_personalization_consent()
    {
        var (quiet, loud) = (NewUser(), NewUser());
        await Consent(quiet, ConsentPurpose.Personalization, false);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        // From the stream's last offset now: the watch replays what was appended before its subscription reached the server.
        var from = fixture.Services.GetRequiredService<Segmentation.Core.Application.Membership.MembershipIndex>().Feed.Last;
        using var watch = Catalog.WatchSegmentChanges(new WatchSegmentChangesRequest { SegmentIds = { "product_explorer" }, AfterOffset = from }, cancellationToken: cts.Token);
        await Explore(quiet);
        await Explore(loud);

        var seen = new List<string>();
        while (await watch.ResponseStream.MoveNext(CancellationToken.None))
        {
            seen.Add(watch.ResponseStream.Current.UserId);
            if (watch.ResponseStream.Current.UserId == loud)
            {
                break;
            }
        }

        Assert.Contains(loud, seen);
        Assert.DoesNotContain(quiet, seen);
    }

    [Fact]
    public async Task ForgetUser_erases_the_user_and_linked_ids_everywhere()
    {
        var user = NewUser();
        var anonymous = "anon-" + user;
        await Explore(user, anonymous);
        await Profiles.IdentifyAsync(new IdentifyRequest { AnonymousId = anonymous, UserId = user });
        await Profiles.SetTraitsAsync(new SetTraitsRequest { UserId = user, Source = "crm", Traits = { ["first_name"] = new AttributeValue { StringValue = "Ada" } } });
        Assert.Equal("product_explorer", (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision.Segment.Id);
        Assert.Contains(user, (await Catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "product_explorer", PageSize = 1000, PageToken = user[..^1] })).UserIds);

        var forgotten = await Privacy.ForgetUserAsync(new ForgetUserRequest { UserId = user });

        Assert.Equal((user, true), (forgotten.UserId, forgotten.Existed));
        Assert.Equal([anonymous], forgotten.LinkedIds);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user }))).StatusCode);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await Profiles.GetProfileAsync(new GetProfileRequest { UserId = anonymous }))).StatusCode);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await Privacy.ExportUserAsync(new ExportUserRequest { UserId = user }))).StatusCode);
        Assert.DoesNotContain(user, (await Catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "product_explorer", PageSize = 1000, PageToken = user[..^1] })).UserIds);
        var decision = (await Decisions.DecideAsync(new DecideRequest { UserId = user })).Decision;
        Assert.True(decision.FallbackUsed);
        Assert.False(decision.FromCache);
        Assert.True((await Decisions.DecideAsync(new DecideRequest { AnonymousId = anonymous })).Decision.FallbackUsed);

        var again = await Privacy.ForgetUserAsync(new ForgetUserRequest { UserId = user });
        Assert.False(again.Existed);

        await Profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make(user, $"{user}-after", "page_view") });
        var fresh = (await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user })).Profile;
        Assert.Equal(1, fresh.EventCounts.Values.Sum());
        Assert.DoesNotContain("first_name", fresh.Attributes.Select(a => a.Name));
    }

    [Fact]
    public async Task ExportUser_returns_everything_held_as_json()
    {
        var user = NewUser();
        await Explore(user);
        await Profiles.SetTraitsAsync(new SetTraitsRequest { UserId = user, Source = "crm", Traits = { ["first_name"] = new AttributeValue { StringValue = "Ada" } } });
        await Consent(user, ConsentPurpose.Analytics, true, "banner");

        var export = await Privacy.ExportUserAsync(new ExportUserRequest { UserId = user });

        Assert.Equal(user, export.UserId);
        using var doc = JsonDocument.Parse(export.Json);
        var root = doc.RootElement;
        Assert.Equal(5, root.GetProperty("events").GetArrayLength());
        Assert.Contains(root.GetProperty("attributes").EnumerateArray(), a => a.GetProperty("name").GetString() == "first_name" && a.GetProperty("pii").GetBoolean() && a.GetProperty("value").GetString() == "Ada");
        Assert.Equal("analytics", root.GetProperty("consent_trail")[0].GetProperty("purpose").GetString());
        Assert.Contains("product_explorer", root.GetProperty("memberships").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("product_explorer", root.GetProperty("current_segment").GetString());
    }

    [Fact]
    public async Task StreamUserExport_sends_the_export_in_parts_of_json_lines_and_is_audited()
    {
        var user = NewUser();
        var start = DateTimeOffset.UtcNow.AddDays(-3);
        for (var call = 0; call < 3; call++)
        {
            var request = new TrackEventsRequest();
            request.Events.AddRange(Enumerable.Range(call * 900, 900).Select(i => ProtoEvents.Make(user, $"{user}-e{i}", "page_view", start.AddSeconds(i))));
            Assert.Equal(900, (await Profiles.TrackEventsAsync(request)).Accepted);
        }

        using var call2 = Privacy.StreamUserExport(new StreamUserExportRequest { UserId = user });
        var parts = new List<StreamUserExportResponse>();
        await foreach (var part in call2.ResponseStream.ReadAllAsync())
        {
            parts.Add(part);
        }

        Assert.Equal(3, parts.Count); // 1,000 events a part
        Assert.All(parts, p => Assert.Equal((user, 2_700), (p.UserId, p.EventCount)));
        var lines = string.Concat(parts.Select(p => p.JsonLines)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        using var header = JsonDocument.Parse(lines[0]);
        Assert.Equal(user, header.RootElement.GetProperty("user_id").GetString());
        Assert.Equal(2_700, header.RootElement.GetProperty("event_count").GetInt32());
        var whole = JsonDocument.Parse((await Privacy.ExportUserAsync(new ExportUserRequest { UserId = user })).Json);
        Assert.Equal(
            whole.RootElement.GetProperty("events").EnumerateArray().Select(e => e.GetProperty("event_id").GetString()),
            lines.Skip(1).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("event_id").GetString()));
        whole.Dispose();

        var unknown = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var missing = Privacy.StreamUserExport(new StreamUserExportRequest { UserId = NewUser() });
            await missing.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        var audit = await new AuditService.AuditServiceClient(fixture.Channel).ListAuditEntriesAsync(new ListAuditEntriesRequest { Action = "privacy.export", UserId = user });
        Assert.Equal(2, audit.Entries.Count); // the export in parts and the one in a document
        Assert.All(audit.Entries, e => Assert.Equal("OK", e.Outcome));
    }

    [Fact]
    public async Task A_rejected_pii_value_is_not_echoed_in_the_error()
    {
        const string secret = "ada.lovelace@example.com";
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Profiles.SetTraitsAsync(new SetTraitsRequest
        {
            UserId = NewUser(),
            Source = "crm",
            Traits = { ["email"] = new AttributeValue { StringValue = secret + new string('x', 2000) }, ["first_name"] = new AttributeValue { NumberValue = 1 } },
        }));

        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.DoesNotContain(secret, ex.Status.Detail);
        Assert.All(ex.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations, v => Assert.DoesNotContain(secret, v.Description));
    }
}
