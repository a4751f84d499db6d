using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>The admin audit trail over gRPC: who did what, to whom, with what outcome; erased with the user; admin only.</summary>
public sealed class AdminAuditServiceTests(AdminAuditServiceTests.Host host) : IClassFixture<AdminAuditServiceTests.Host>
{
    /// <summary>The demo world on its own host: these tests publish catalogs and erase users.</summary>
    public sealed class Host : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder) => GrpcTestFixture.ConfigureTestHost(builder);
    }

    private AuditService.AuditServiceClient Audit => new(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.AdminKey));

    private async Task<AuditEntry> Newest(string action, string? user = null) =>
        (await Audit.ListAuditEntriesAsync(new ListAuditEntriesRequest { Action = action, UserId = user ?? "", PageSize = 1 })).Entries.Single();

    [Fact]
    public async Task A_publish_and_a_rejected_publish_are_recorded_with_the_key_name_and_the_outcome()
    {
        var catalog = new CatalogService.CatalogServiceClient(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.AdminKey));
        var published = await catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { CatalogGovernanceServiceTests.WithExtraSegment("audited_segment") }, Comment = "audited" });
        var entry = await Newest("catalog.publish");
        Assert.Equal("test-admin", entry.Actor);
        Assert.Equal("OK", entry.Outcome);
        Assert.Contains($"version {published.Version}", entry.Detail, StringComparison.Ordinal);
        Assert.Contains("comment: audited", entry.Detail, StringComparison.Ordinal);
        Assert.Equal("", entry.UserId);

        await Assert.ThrowsAsync<RpcException>(async () => await catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { new Contracts.V1.CatalogFile { Name = "bad.yaml", Content = "segments: [ {" } } }));
        Assert.Equal("INVALID_ARGUMENT", (await Newest("catalog.publish")).Outcome);

        // A key without the scope is refused before anything is read, and the attempt is on record.
        var reader = new CatalogService.CatalogServiceClient(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.ReadKey));
        await Assert.ThrowsAsync<RpcException>(async () => await reader.RollbackCatalogAsync(new RollbackCatalogRequest()));
        var denied = await Newest("catalog.rollback");
        Assert.Equal(("test-read", "PERMISSION_DENIED"), (denied.Actor, denied.Outcome));
    }

    [Fact]
    public async Task Erasing_a_user_replaces_their_id_in_the_trail_and_the_erasure_names_no_one()
    {
        const string user = "12350"; // in the demo data
        var privacy = new PrivacyService.PrivacyServiceClient(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.AllScopesKey));
        await privacy.RecordConsentAsync(new RecordConsentRequest { UserId = user, Purpose = ConsentPurpose.EmailMarketing, Granted = true, Source = "preference-centre" });
        await privacy.ExportUserAsync(new ExportUserRequest { UserId = user });
        var consent = await Newest("privacy.record_consent", user);
        Assert.Equal("test-all", consent.Actor);
        Assert.Contains("source: preference-centre", consent.Detail, StringComparison.Ordinal);
        Assert.Equal(user, (await Newest("privacy.export", user)).UserId);

        await privacy.ForgetUserAsync(new ForgetUserRequest { UserId = user });

        Assert.Empty((await Audit.ListAuditEntriesAsync(new ListAuditEntriesRequest { UserId = user })).Entries);
        var erased = (await Audit.ListAuditEntriesAsync(new ListAuditEntriesRequest { UserId = "[erased]" })).Entries;
        Assert.Contains(erased, e => e.Action == "privacy.export");
        Assert.Contains(erased, e => e.Action == "privacy.record_consent");
        var forget = await Newest("privacy.forget");
        Assert.Equal(("OK", ""), (forget.Outcome, forget.UserId));
        Assert.Contains("existed: True", forget.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pages_go_from_newest_to_oldest_without_gaps_or_repeats()
    {
        var privacy = new PrivacyService.PrivacyServiceClient(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.AdminKey));
        for (var i = 0; i < 7; i++)
        {
            await privacy.GetConsentAsync(new GetConsentRequest { UserId = "paging-" + i });
        }

        var seen = new List<long>();
        var token = "";
        do
        {
            var page = await Audit.ListAuditEntriesAsync(new ListAuditEntriesRequest { Action = "privacy.get_consent", PageSize = 3, PageToken = token });
            seen.AddRange(page.Entries.Select(e => e.Sequence));
            token = page.NextPageToken;
        }
        while (token.Length > 0);

        Assert.True(seen.Count >= 7);
        Assert.Equal(seen.OrderByDescending(s => s), seen);
        Assert.Equal(seen.Count, seen.Distinct().Count());

        var bad = await Assert.ThrowsAsync<RpcException>(async () => await Audit.ListAuditEntriesAsync(new ListAuditEntriesRequest { PageToken = "not-a-token" }));
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
    }

    [Fact]
    public async Task A_call_spelled_in_another_case_is_audited_as_the_method_routing_resolved()
    {
        // Routing ignores case: the lower-case path reaches ExportUser, and must not slip past the audit trail.
        var method = new Method<ExportUserRequest, ExportUserResponse>(
            MethodType.Unary,
            "segmentation.v1.privacyservice",
            "exportuser",
            Marshallers.Create(r => r.ToByteArray(), ExportUserRequest.Parser.ParseFrom),
            Marshallers.Create(r => r.ToByteArray(), ExportUserResponse.Parser.ParseFrom));
        var invoker = GrpcTestFixture.CreateChannel(host, GrpcTestFixture.AdminKey).CreateCallInvoker();
        await invoker.AsyncUnaryCall(method, null, new CallOptions(), new ExportUserRequest { UserId = "12347" });

        var entry = await Newest("privacy.export", "12347");
        Assert.Equal(("test-admin", "OK"), (entry.Actor, entry.Outcome));
    }

    [Fact]
    public async Task Consent_recorded_by_an_ingest_key_is_the_users_own_act_and_not_audited()
    {
        var ingest = new PrivacyService.PrivacyServiceClient(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.IngestKey));
        await ingest.RecordConsentAsync(new RecordConsentRequest { UserId = "banner-user", Purpose = ConsentPurpose.EmailMarketing, Granted = true, Source = "cookie-banner" });
        Assert.Empty((await Audit.ListAuditEntriesAsync(new ListAuditEntriesRequest { UserId = "banner-user" })).Entries);
    }

    [Theory]
    [InlineData(StatusCode.InvalidArgument, "INVALID_ARGUMENT")]
    [InlineData(StatusCode.OutOfRange, "OUT_OF_RANGE")] // was OUTOFRANGE: only some codes were spelled out
    [InlineData(StatusCode.DataLoss, "DATA_LOSS")]
    [InlineData(StatusCode.OK, "OK")]
    public void Outcomes_are_named_as_the_grpc_specification_names_them(StatusCode code, string name) =>
        Assert.Equal(name, Interceptors.AuditedMethods.OutcomeName(code));

    [Fact]
    public async Task Reading_the_trail_needs_admin()
    {
        var reader = new AuditService.AuditServiceClient(GrpcTestFixture.CreateChannel(host, GrpcTestFixture.ReadKey));
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await reader.ListAuditEntriesAsync(new ListAuditEntriesRequest()));
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
    }
}
