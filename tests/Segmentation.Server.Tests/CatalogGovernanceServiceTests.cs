using Google.Rpc;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Core.Catalog;
using Segmentation.Server.Tests.Support;
using CatalogFile = Segmentation.Contracts.V1.CatalogFile;

namespace Segmentation.Server.Tests;

/// <summary>Catalog governance over gRPC. Its own host: these tests publish catalogs.</summary>
public sealed class CatalogGovernanceServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private CatalogService.CatalogServiceClient Catalog => new(fixture.Channel);

    private const string BigSpenders = """
        id: big_spenders
        name: Big spenders
        type: value
        rule: { field: orders.revenue, gte: 500 }
        personalization: { content: "a", offer: "b", cta: "c", journey: "d", messaging: "e" }
        """;

    internal static List<CatalogFile> DefaultFiles() =>
        new EmbeddedCatalogSource().ReadFiles().Select(f => new CatalogFile { Name = f.Name, Content = f.Text }).ToList();

    internal static List<CatalogFile> WithExtraSegment(string id)
    {
        var files = DefaultFiles();
        files.Add(new CatalogFile
        {
            Name = "segments/extra.yaml",
            Content = $$"""
                segments:
                  - id: {{id}}
                    name: Everyone who bought
                    type: intent
                    priority: 999
                    rule: { field: orders.count, gte: 1 }
                    personalization:
                      content: "c {{id}}"
                      offer: "o {{id}}"
                      cta: "a {{id}}"
                      journey: "j {{id}}"
                      messaging: "m {{id}}"
                """,
        });
        return files;
    }

    [Fact]
    public void The_member_listing_idle_time_is_read_from_configuration()
    {
        using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.UseSetting("Segmentation:MemberListingIdleMinutes", "3");
        });

        Assert.Equal(TimeSpan.FromMinutes(3), factory.Services.GetRequiredService<Core.Application.Membership.MembershipIndex>().Listings.IdleTimeout);
    }

    [Fact]
    public async Task The_host_drops_a_member_listing_nobody_pages_though_its_segment_no_longer_changes()
    {
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.ConfigureTestServices(services => services.PostConfigure<Core.Application.Composition.SegmentationCoreOptions>(o =>
                o.MemberListings = o.MemberListings with { IdleTimeout = TimeSpan.Zero }));
        });
        var index = factory.Services.GetRequiredService<Core.Application.Membership.MembershipIndex>();
        var catalog = factory.Services.GetRequiredService<Core.Application.Catalogs.CatalogProvider>().Current.Version;
        var rfm = factory.Services.GetRequiredService<Core.Profiles.RfmModelProvider>().Current.Version;

        // Members that no evaluation touches again: current under this catalog and model, and valid for ever.
        for (var i = 0; i < 20; i++)
        {
            index.Set($"sweep-{i:D2}", ["sweep-audience"], catalog, long.MaxValue, DateTimeOffset.UtcNow, "test", rfm, publish: false);
        }

        await index.PrepareListing("sweep-audience");
        Assert.True(index.IsListed("sweep-audience"));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (index.IsListed("sweep-audience") && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.False(index.IsListed("sweep-audience")); // dropped by the maintainer's sweep (every 5 s)
        Assert.Equal(20, index.Count("sweep-audience")); // with no change to the segment: only the listing went
    }

    [Fact]
    public async Task Validate_reports_errors_with_file_segment_and_clause_and_publishes_nothing()
    {
        var files = DefaultFiles();
        var value = files.Single(f => f.Name == "segments/value.yaml");
        value.Content = value.Content.Replace("field: orders.revenue, gte: 1000", "field: orders.revnue, gte: 1000", StringComparison.Ordinal);
        var before = (await Catalog.GetCatalogAsync(new GetCatalogRequest())).Version;

        var result = await Catalog.ValidateCatalogAsync(new ValidateCatalogRequest { Files = { files } });

        Assert.False(result.Valid);
        var error = Assert.Single(result.Errors);
        Assert.Equal(("segments/value.yaml", "vip", "rule.any[1]"), (error.File, error.Segment, error.Clause));
        Assert.True(error.Line > 0);
        Assert.Contains("orders.revnue", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, (await Catalog.GetCatalogAsync(new GetCatalogRequest())).Version);

        var publish = await Assert.ThrowsAsync<RpcException>(async () => await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { files } }));
        Assert.Equal(StatusCode.InvalidArgument, publish.StatusCode);
        Assert.Contains(publish.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations, v => v.Field == "files[segments/value.yaml]");
    }

    [Fact]
    public async Task An_error_of_many_long_violations_in_any_script_fits_the_metadata_clients_accept()
    {
        // Regression (found in review): violations were bounded in characters (20 of up to 128 + 256), so a catalog of
        // many errors quoting non-ASCII names made an error whose metadata (the details in base64, the message twice)
        // passed the 8 KiB grpc-java and grpc-core accept: such a client saw a metadata-size failure, not the errors.
        var field = "traits." + new string('設', 120);
        var broken = string.Concat(Enumerable.Range(0, 30).Select(i => $$"""
              - id: broken_{{i}}
                name: {{new string('壊', 60)}}
                type: intent
                priority: {{900 + i}}
                rule: { field: {{field}}, gte: 1 }
                personalization: { content: "c", offer: "o", cta: "a", journey: "j", messaging: "m" }

            """));
        var files = DefaultFiles();
        files.Add(new CatalogFile { Name = "segments/broken.yaml", Content = "segments:\n" + broken });

        var publish = await Assert.ThrowsAsync<RpcException>(async () => await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { files } }));

        Assert.Equal(StatusCode.InvalidArgument, publish.StatusCode);
        var details = publish.Trailers.GetValueBytes("grpc-status-details-bin")!;
        var message = System.Text.Encoding.UTF8.GetBytes(publish.Status.Detail).Sum(b => b is >= 0x20 and < 0x7F and not (byte)'%' ? 1 : 3); // percent-encoded
        Assert.True((4 * ((details.Length + 2) / 3)) + message <= 7 * 1024, $"details {details.Length} bytes, message {message} encoded");
        var violations = publish.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations;
        Assert.Contains(violations, v => v.Field == "files[segments/broken.yaml]");
        Assert.Matches("^[0-9]+ more violations not listed$", violations[^1].Description); // what did not fit is counted
    }

    [Fact]
    public async Task A_comment_too_long_for_the_history_is_refused_naming_the_field_and_publishes_nothing()
    {
        // Every kept version's comment goes out with each GetCatalog; one of 3 MB made every later read larger than a
        // client's default 4 MB message limit.
        var before = (await Catalog.GetCatalogAsync(new GetCatalogRequest())).Version;

        var refused = await Assert.ThrowsAsync<RpcException>(async () => await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { DefaultFiles() }, Comment = new string('x', 3_000_000) }));
        var stop = await Assert.ThrowsAsync<RpcException>(async () => await new ExperimentService.ExperimentServiceClient(fixture.Channel).StopExperimentAsync(new StopExperimentRequest { ExperimentId = "champions_referral_test", Comment = new string('x', 1_001) }));

        foreach (var error in new[] { refused, stop })
        {
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            var violation = Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations);
            Assert.Equal("comment", violation.Field);
            Assert.StartsWith("must be at most 1000 characters (got ", violation.Description, StringComparison.Ordinal);
        }

        var after = await Catalog.GetCatalogAsync(new GetCatalogRequest());
        Assert.Equal(before, after.Version);
        var audited = await new AuditService.AuditServiceClient(fixture.Channel).ListAuditEntriesAsync(new ListAuditEntriesRequest { Action = "catalog.publish" });
        var entry = audited.Entries.First(e => e.Outcome == "INVALID_ARGUMENT"); // the refusal is audited, its comment cut
        Assert.Equal(Segmentation.Core.Application.Audit.AdminAuditTrail.MaxDetailLength, entry.Detail.Length);
        var longest = await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { DefaultFiles() }, Comment = new string('y', 1_000) });
        Assert.Equal(new string('y', 1_000), (await Catalog.GetCatalogAsync(new GetCatalogRequest())).History.Single(h => h.Version == longest.Version).Comment);
    }

    [Fact]
    public async Task A_publish_based_on_an_older_version_is_aborted_and_publishes_nothing()
    {
        var current = (await Catalog.GetCatalogAsync(new GetCatalogRequest())).Version;
        var published = await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { DefaultFiles() }, Comment = "based on the current", BasedOnVersion = current });
        Assert.Equal(current + 1, published.Version);

        var stale = await Assert.ThrowsAsync<RpcException>(async () => await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { DefaultFiles() }, Comment = "edited from an old read", BasedOnVersion = current }));
        Assert.Equal(StatusCode.Aborted, stale.StatusCode);
        Assert.Contains($"made on version {current}", stale.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(published.Version, (await Catalog.GetCatalogAsync(new GetCatalogRequest())).Version);
    }

    [Fact]
    public async Task Valid_catalog_validates_with_measured_warnings()
    {
        var result = await Catalog.ValidateCatalogAsync(new ValidateCatalogRequest { Files = { DefaultFiles() }, Thresholds = new AuditThresholds { MinSize = 100 } });

        Assert.True(result.Valid);
        Assert.Contains(result.Warnings, w => w.Code == "too_small" && w.Message.Contains("below the minimum size of 100", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Publish_is_atomic_under_concurrent_decide_load_and_rollback_restores()
    {
        var decisions = new DecisionService.DecisionServiceClient(fixture.Channel);
        var published = new System.Collections.Concurrent.ConcurrentDictionary<long, bool>(); // version -> has the extra segment
        published[(await Catalog.GetCatalogAsync(new GetCatalogRequest())).Version] = (await Catalog.GetCatalogAsync(new GetCatalogRequest())).Segments.Any(s => s.Segment.Id == "everyone_who_bought");
        using var stop = new CancellationTokenSource();
        var seen = new System.Collections.Concurrent.ConcurrentBag<(long Version, string Segment)>();
        var errors = 0;
        var load = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var d = (await decisions.DecideAsync(new DecideRequest { UserId = "12347" })).Decision;
                    seen.Add((d.CatalogVersion, d.Segment.Id));
                }
                catch (RpcException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToList();

        for (var i = 0; i < 6; i++)
        {
            var withExtra = i % 2 == 0;
            var response = await Catalog.PublishCatalogAsync(new PublishCatalogRequest { Files = { withExtra ? WithExtraSegment("everyone_who_bought") : DefaultFiles() }, Comment = $"round {i}" });
            published[response.Version] = withExtra;
            await Task.Delay(30);
        }

        await stop.CancelAsync();
        await Task.WhenAll(load);

        Assert.Equal(0, errors);
        Assert.True(seen.Count > 50, $"only {seen.Count} decisions");
        foreach (var (version, segment) in seen)
        {
            // A decision is entirely from one catalog version: the extra segment wins only under versions that have it.
            Assert.Equal(published[version], segment == "everyone_who_bought");
        }

        var current = await Catalog.GetCatalogAsync(new GetCatalogRequest());
        var rollback = await Catalog.RollbackCatalogAsync(new RollbackCatalogRequest());
        Assert.Equal(current.Version + 1, rollback.Version);
        Assert.Equal(current.Version - 1, rollback.RestoredFrom);
        var after = (await decisions.DecideAsync(new DecideRequest { UserId = "12347" })).Decision;
        Assert.Equal(rollback.Version, after.CatalogVersion);
        Assert.Equal(published[rollback.RestoredFrom], after.Segment.Id == "everyone_who_bought");
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await Catalog.RollbackCatalogAsync(new RollbackCatalogRequest { Version = 9999 }))).StatusCode);
    }

    [Fact]
    public async Task Live_member_counts_equal_a_brute_force_recount()
    {
        // Let the background re-evaluation settle after any publish by the other tests.
        ListSegmentsResponse list = null!;
        AuditCatalogResponse audit = null!;
        for (var attempt = 0; attempt < 300; attempt++) // up to a minute on a busy machine; it ends once the counts agree
        {
            list = await Catalog.ListSegmentsAsync(new ListSegmentsRequest());
            audit = await Catalog.AuditCatalogAsync(new AuditCatalogRequest());
            if (list.CatalogVersion == audit.CatalogVersion && list.Segments.All(s => audit.Segments.Single(a => a.Segment.Id == s.Segment.Id).MemberCount == s.MemberCount))
            {
                break;
            }

            await Task.Delay(200);
        }

        Assert.Equal(audit.CatalogVersion, list.CatalogVersion);
        foreach (var s in list.Segments)
        {
            Assert.Equal(audit.Segments.Single(a => a.Segment.Id == s.Segment.Id).MemberCount, s.MemberCount);
        }

        var champions = list.Segments.Single(s => s.Segment.Id == "champions");
        Assert.True(champions.MemberCount > 100);
        var page1 = await Catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "champions", PageSize = 50 });
        var page2 = await Catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "champions", PageSize = 50, PageToken = page1.NextPageToken });
        Assert.Equal(50, page1.UserIds.Count);
        Assert.True(string.CompareOrdinal(page1.UserIds[^1], page2.UserIds[0]) < 0);
        Assert.Contains(audit.Overlaps, o => o.SegmentA == "champions" && o.SegmentB == "repeat_buyer" && o.Count > 0);
    }

    [Fact]
    public async Task Preview_measures_a_candidate_without_publishing_it()
    {
        var preview = await Catalog.PreviewSegmentAsync(new PreviewSegmentRequest { SegmentYaml = BigSpenders, SampleSize = 5 });

        Assert.Empty(preview.Errors);
        Assert.True(preview.MemberCount > 0 && preview.MemberCount < preview.Population);
        Assert.Equal(5, preview.SampleUserIds.Count);
        Assert.Contains(preview.Overlaps, o => o.SegmentId == "vip" && o.ShareOfCandidate > 0);

        // Regression: a read-only key (counts, KPIs) got user ids too, and could narrow rules to learn any user's traits.
        var asAnalyst = await new CatalogService.CatalogServiceClient(fixture.CreateChannel(GrpcTestFixture.ReadKey)).PreviewSegmentAsync(new PreviewSegmentRequest { SegmentYaml = BigSpenders, SampleSize = 5 });
        Assert.Equal(preview.MemberCount, asAnalyst.MemberCount);
        Assert.Empty(asAnalyst.SampleUserIds);
        Assert.DoesNotContain((await Catalog.GetCatalogAsync(new GetCatalogRequest())).Segments, s => s.Segment.Id == "big_spenders");

        var broken = await Catalog.PreviewSegmentAsync(new PreviewSegmentRequest { SegmentYaml = "id: x\nname: X\ntype: value\nrule: { field: nope, eq: 1 }\n" });
        Assert.NotEmpty(broken.Errors);
    }

    [Fact]
    public async Task Watchers_see_users_enter_segments_as_events_arrive()
    {
        // From the stream's last offset now: the watch replays what was appended before its subscription reached the server.
        var from = fixture.Services.GetRequiredService<Core.Application.Membership.MembershipIndex>().Feed.Last;
        using var watch = Catalog.WatchSegmentChanges(new WatchSegmentChangesRequest { SegmentIds = { "product_explorer" }, AfterOffset = from }, cancellationToken: new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token);
        var profiles = new ProfileService.ProfileServiceClient(fixture.Channel);

        // A first user's entry, read, proves the watch is running on the server; the second user's then arrives live.
        WatchSegmentChangesResponse? change = null;
        foreach (var user in new[] { "watch-first-" + Guid.NewGuid().ToString("N"), "watch-" + Guid.NewGuid().ToString("N") })
        {
            for (var i = 0; i < 5; i++)
            {
                await profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make(user, $"{user}-w{i}", "product_view") });
            }

            change = null;
            while (await watch.ResponseStream.MoveNext(CancellationToken.None))
            {
                if (watch.ResponseStream.Current.UserId == user)
                {
                    change = watch.ResponseStream.Current;
                    break;
                }
            }

            Assert.NotNull(change);
            Assert.Equal(("product_explorer", MembershipChangeKind.Entered, $"event:{user}-w4"), (change.SegmentId, change.Kind, change.Cause));
        }
    }
}
