using System.Diagnostics;
using System.Text.Json.Nodes;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;
using Segmentation.Core.Tests.Support;
using Xunit.Abstractions;

namespace Segmentation.Server.Tests;

/// <summary>
/// What the durable store promises, checked against the real server process: one server per data
/// directory, a full disk that costs availability but never data or the process, and a restart that
/// changes no profile.
/// </summary>
public sealed class DurabilityProcessTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-durable-process-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string[] Durable(string dir, params string[] more) =>
    [
        $"--Segmentation:DataDirectory={dir}",
        $"--Segmentation:EncryptionKey={Key}",
        .. more,
    ];

    private static GrpcChannel Channel(int port) =>
        GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });

    private static Event PageView(string id, string user) => new()
    {
        EventId = id,
        Type = "page_view",
        UserId = user,
        Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1)),
        Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s-" + user, PageType = "home" },
    };

    private static async Task Stop(Process server)
    {
        if (!server.HasExited)
        {
            server.Kill(entireProcessTree: true);
        }

        await server.WaitForExitAsync();
    }

    [Fact]
    public async Task Events_that_expired_while_the_server_was_down_leave_the_disk_at_the_next_start()
    {
        // Regression: the restore's own sweep removed them in memory, so the first periodic sweep found nothing to remove
        // and never compacted: they stayed in the snapshot and log files until the next scheduled snapshot (an hour by
        // default, up to a week).
        var port = RealServerProcessTests.FreePort();
        var arguments = Durable(
            _dir,
            "--Segmentation:DemoData=false",
            "--Segmentation:SnapshotIntervalMinutes=10080",
            "--Segmentation:Privacy:Retention:Default=30.00:00:00",
            "--Segmentation:Privacy:Retention:EventTypes:search=00:00:03",
            "--Segmentation:Privacy:Retention:SweepInterval=1.00:00:00");
        using (var first = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(first, port);
                using var channel = Channel(port);
                var search = PageView("search-4711", "u1");
                search.Type = "search";
                await new ProfileService.ProfileServiceClient(channel).TrackEventAsync(new TrackEventRequest { Event = search });
            }
            finally
            {
                await Stop(first);
            }
        }

        bool OnDisk() => Directory.EnumerateFiles(_dir, "changes-*.log").Concat(Directory.EnumerateFiles(_dir, "snapshot-*.snap"))
            .Any(f => System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(f)).Contains("search-4711", StringComparison.Ordinal));
        Assert.True(OnDisk());
        await Task.Delay(TimeSpan.FromSeconds(4)); // expired while the server was down

        using var restarted = RealServerProcessTests.StartServer(port, arguments);
        try
        {
            await RealServerProcessTests.WaitUntilListening(restarted, port);
            await Eventually(() =>
            {
                Assert.False(OnDisk());
                return Task.CompletedTask;
            });
        }
        finally
        {
            await Stop(restarted);
        }
    }

    [Fact]
    public async Task A_second_server_on_the_same_data_directory_refuses_to_start_naming_the_holder()
    {
        var port = RealServerProcessTests.FreePort();
        using var first = RealServerProcessTests.StartServer(port, Durable(_dir, "--Segmentation:DemoData=false"));
        try
        {
            await RealServerProcessTests.WaitUntilListening(first, port);
            var measurement = Path.Combine(_dir, Segmentation.Storage.MeasurementCheckpointFile.FileName);
            var before = File.Exists(measurement) ? await File.ReadAllBytesAsync(measurement) : null;
            using var second = RealServerProcessTests.StartServer(RealServerProcessTests.FreePort(), Durable(_dir, "--Segmentation:DemoData=false"));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await second.WaitForExitAsync(timeout.Token);
            var error = await second.StandardError.ReadToEndAsync();
            output.WriteLine(error);

            Assert.Equal(1, second.ExitCode);
            Assert.Contains($"is in use by process {first.Id}", error);
            Assert.DoesNotContain("   at ", error); // one paragraph, not a stack dump

            // The refused server wrote nothing into the holder's directory: its measurement state was never restored and
            // must not replace the holder's when its jobs are stopped after the failed start.
            Assert.Equal(before, File.Exists(measurement) ? await File.ReadAllBytesAsync(measurement) : null);

            using var channel = Channel(port);
            await new ProfileService.ProfileServiceClient(channel).TrackEventAsync(new TrackEventRequest { Event = PageView("still-writing", "u1") });
        }
        finally
        {
            await Stop(first);
        }
    }

    [Fact]
    public async Task A_damaged_audit_trail_stops_the_start_naming_the_file_rather_than_failing_calls()
    {
        // The trail is read when the request pipeline is built (the key check records refusals in it): a damaged line
        // must stop the start with the file named, not let the server listen and fail every call.
        await File.WriteAllTextAsync(Path.Combine(_dir, Segmentation.Storage.AuditJournalFile.FileName), "{\"sequence\":1,\"at\":\"2026-12-01T00:00:00+00:00\",\"actor\":\"ops\",\"action\":\"PublishCatalog\",\"outcome\":\"OK\",\"userId\":\"\",\"detail\":\"\"}\nnot an entry\n");
        using var server = RealServerProcessTests.StartServer(RealServerProcessTests.FreePort(), Durable(_dir, "--Segmentation:DemoData=false"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await server.WaitForExitAsync(timeout.Token);
        var error = await server.StandardError.ReadToEndAsync();
        output.WriteLine(error);

        Assert.Equal(1, server.ExitCode);
        Assert.Contains("line 2 of the audit trail", error);
        Assert.DoesNotContain("   at ", error); // one paragraph, not a stack dump
    }

    [Fact]
    public async Task A_full_disk_answers_writes_unavailable_and_not_serving_and_the_server_recovers_by_itself()
    {
        using var disk = new TinyDisk(megabytes: 32);
        var dir = disk.Directory("store");
        var port = RealServerProcessTests.FreePort();
        var httpPort = RealServerProcessTests.FreePort();
        using var probes = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        var acknowledged = new List<string>();
        var arguments = Durable(
            dir,
            $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{httpPort}",
            "--Segmentation:DemoData=false",
            "--Segmentation:SnapshotLogBytes=1024",
            "--Segmentation:SnapshotCheckSeconds=1",
            "--Segmentation:Privacy:Retention:Default=30.00:00:00",
            "--Segmentation:Privacy:Retention:EventTypes:search=00:00:03", // expire while the disk is full: the sweep's writes and compaction fail
            "--Segmentation:Privacy:Retention:SweepInterval=00:00:01");
        using (var server = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = Channel(port);
                var profiles = new ProfileService.ProfileServiceClient(channel);
                var health = new Health.HealthClient(channel);
                for (var i = 0; i < 50; i++)
                {
                    await profiles.TrackEventAsync(new TrackEventRequest { Event = PageView($"before-{i}", $"u{i % 5}") });
                    acknowledged.Add($"before-{i}");
                }

                for (var i = 0; i < 20; i++)
                {
                    var search = PageView($"search-{i}", $"u{i % 5}");
                    search.Type = "search";
                    await profiles.TrackEventAsync(new TrackEventRequest { Event = search });
                }

                disk.Fill();

                // Writes fail with a retryable status (the last page of the segment may take a record or two first).
                RpcException? refused = null;
                for (var i = 0; i < 200 && refused is null; i++)
                {
                    try
                    {
                        await profiles.TrackEventAsync(new TrackEventRequest { Event = PageView($"during-{i}", "u1") });
                        acknowledged.Add($"during-{i}");
                    }
                    catch (RpcException ex)
                    {
                        refused = ex;
                    }
                }

                Assert.NotNull(refused);
                Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
                Assert.Contains("retry", refused.Status.Detail);
                Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
                var notReady = await probes.GetAsync("/healthz/ready");
                Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, notReady.StatusCode); // an orchestrator stops routing here
                Assert.Contains("the change log cannot write", await notReady.Content.ReadAsStringAsync());
                Assert.Equal(System.Net.HttpStatusCode.OK, (await probes.GetAsync("/healthz/live")).StatusCode); // but does not restart it

                // Snapshots and retention sweeps keep failing meanwhile; the process stays up.
                await Task.Delay(TimeSpan.FromSeconds(4));
                Assert.False(server.HasExited, $"the server stopped on a full disk (exit {(server.HasExited ? server.ExitCode : 0)})");

                disk.Free();
                await Eventually(async () =>
                {
                    await profiles.TrackEventAsync(new TrackEventRequest { Event = PageView("after", "u2") });
                    acknowledged.Add("after");
                });
                await Eventually(async () => Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status));
                Assert.Equal(System.Net.HttpStatusCode.OK, (await probes.GetAsync("/healthz/ready")).StatusCode);
                await Eventually(() =>
                {
                    Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp"));
                    Assert.Single(Directory.EnumerateFiles(dir, "snapshot-*.snap"));
                    return Task.CompletedTask;
                });
            }
            finally
            {
                await Stop(server);
                output.WriteLine(RealServerProcessTests.OutputOf(server));
            }
        }

        using var restarted = RealServerProcessTests.StartServer(port, arguments);
        try
        {
            await RealServerProcessTests.WaitUntilListening(restarted, port);
            using var channel = Channel(port);
            var privacy = new PrivacyService.PrivacyServiceClient(channel);
            var stored = new HashSet<string>();
            foreach (var user in new[] { "u0", "u1", "u2", "u3", "u4" })
            {
                var export = JsonNode.Parse((await ExportWhenReady(privacy, user)).Json)!;
                stored.UnionWith(export["events"]!.AsArray().Select(e => (string)e!["event_id"]!));
            }

            Assert.Empty(acknowledged.Except(stored));
        }
        finally
        {
            await Stop(restarted);
        }
    }

    [Fact]
    public async Task A_restart_that_replays_the_change_log_changes_no_profile()
    {
        var port = RealServerProcessTests.FreePort();
        var arguments = Durable(_dir, "--Segmentation:DemoData=true"); // the default settings: no snapshot yet
        Dictionary<string, string> before;
        using (var server = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = Channel(port);
                var profiles = new ProfileService.ProfileServiceClient(channel);
                await profiles.SetTraitsAsync(new SetTraitsRequest
                {
                    UserId = "12347",
                    Source = "crm",
                    Layer = DataLayer.ZeroParty,
                    Traits = { ["preferred_category"] = new AttributeValue { StringValue = "kitchen" } },
                });
                await profiles.IdentifyAsync(new IdentifyRequest { AnonymousId = "visitor-12347", UserId = "12347" });
                before = await Views(channel);
            }
            finally
            {
                server.Kill(); // SIGKILL: nothing but the log survives
                await server.WaitForExitAsync();
            }
        }

        Assert.Empty(ProfileSnapshotFiles());
        using var restarted = RealServerProcessTests.StartServer(port, arguments);
        try
        {
            await RealServerProcessTests.WaitUntilListening(restarted, port);
            using var channel = Channel(port);
            var after = await Views(channel);
            Assert.Equal(before.Keys, after.Keys);
            foreach (var (user, view) in before)
            {
                Assert.Equal(view, after[user]);
            }
        }
        finally
        {
            await Stop(restarted);
        }
    }

    [Fact]
    public async Task Kpis_and_remembered_decisions_survive_a_crash_once_measurement_was_saved()
    {
        var port = RealServerProcessTests.FreePort();
        var arguments = Durable(_dir, "--Segmentation:DemoData=false", "--Segmentation:MeasurementCheckpointSeconds=1");
        Outcome Made(string id, OutcomeType type, string decisionId) => new()
        {
            EventId = id,
            Type = type,
            DecisionId = decisionId,
            UserId = "kpi-user",
            Variant = VariantKind.Offer,
            Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
        };
        var query = new GetKpisRequest { GroupBy = { KpiDimension.Segment, KpiDimension.Channel } };
        Decision decision;
        GetKpisResponse before;
        using (var server = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = Channel(port);
                decision = (await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "kpi-user", Channel = Contracts.V1.Channel.App })).Decision;
                await new OutcomeService.OutcomeServiceClient(channel).RecordOutcomesAsync(new RecordOutcomesRequest { Outcomes = { Made("imp-1", OutcomeType.Impression, decision.DecisionId) } });
                before = await new InsightsService.InsightsServiceClient(channel).GetKpisAsync(query);
                await Task.Delay(TimeSpan.FromSeconds(3)); // a save happens within a second of a change
            }
            finally
            {
                await Stop(server); // killed: a crash, no shutdown save
            }
        }

        Assert.True(File.Exists(Path.Combine(_dir, "measurement.bin")));
        using (var server = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = Channel(port);
                var after = await new InsightsService.InsightsServiceClient(channel).GetKpisAsync(query);
                var click = await new OutcomeService.OutcomeServiceClient(channel).RecordOutcomesAsync(new RecordOutcomesRequest { Outcomes = { Made("click-1", OutcomeType.Click, decision.DecisionId) } });

                var row = Assert.Single(after.Rows, r => r.SegmentId == decision.Segment.Id && r.Channel == "app");
                Assert.Equal((1L, 1L), (row.Kpis.Decisions, row.Kpis.Impressions));
                Assert.Equal(before.Rows.Single(r => r.SegmentId == decision.Segment.Id && r.Channel == "app").Kpis, row.Kpis);
                var credited = Assert.Single(click.Results);
                Assert.Equal((Attribution.Decision, decision.Segment.Id, decision.DecisionId), (credited.Attribution, credited.SegmentId, credited.DecisionId));
            }
            finally
            {
                await Stop(server);
                output.WriteLine(RealServerProcessTests.OutputOf(server));
            }
        }
    }

    [Fact]
    public async Task Decisions_served_after_the_last_measurement_save_are_credited_after_kill_9()
    {
        var port = RealServerProcessTests.FreePort();
        var arguments = Durable(_dir, "--Segmentation:DemoData=false", "--Segmentation:MeasurementCheckpointSeconds=3600", "--Segmentation:DecisionJournalMilliseconds=10");
        var query = new GetKpisRequest { GroupBy = { KpiDimension.Segment, KpiDimension.Channel } };
        Decision decision;
        using (var server = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = Channel(port);
                decision = (await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "journal-user", Channel = Contracts.V1.Channel.App })).Decision;
                var journal = Path.Combine(_dir, "decisions");
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (!(Directory.Exists(journal) && Directory.EnumerateFiles(journal).Any(f => new FileInfo(f).Length > 100)) && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(10); // the journal's group commit, every 10 ms here
                }
            }
            finally
            {
                await Stop(server); // killed before any measurement save (the interval is an hour)
            }
        }

        Assert.False(File.Exists(Path.Combine(_dir, "measurement.bin")));
        using (var server = RealServerProcessTests.StartServer(port, arguments))
        {
            try
            {
                await RealServerProcessTests.WaitUntilListening(server, port);
                using var channel = Channel(port);
                var click = await new OutcomeService.OutcomeServiceClient(channel).RecordOutcomesAsync(new RecordOutcomesRequest
                {
                    Outcomes = { new Outcome { EventId = "click-1", Type = OutcomeType.Click, DecisionId = decision.DecisionId, UserId = "journal-user", Variant = VariantKind.Offer, Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) } },
                });
                var after = await new InsightsService.InsightsServiceClient(channel).GetKpisAsync(query);

                var credited = Assert.Single(click.Results);
                Assert.Equal((Attribution.Decision, decision.Segment.Id, decision.DecisionId), (credited.Attribution, credited.SegmentId, credited.DecisionId));
                var row = Assert.Single(after.Rows, r => r.SegmentId == decision.Segment.Id && r.Channel == "app");
                Assert.Equal((1L, 1L), (row.Kpis.Decisions, row.Kpis.Clicks));
            }
            finally
            {
                await Stop(server);
                output.WriteLine(RealServerProcessTests.OutputOf(server));
            }
        }
    }

    private IEnumerable<string> ProfileSnapshotFiles() => Directory.EnumerateFiles(_dir, "snapshot-*.snap");

    // An export, retried while the service rebuilds segment memberships after its restart (it answers UNAVAILABLE then).
    private static async Task<ExportUserResponse> ExportWhenReady(PrivacyService.PrivacyServiceClient privacy, string user)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await privacy.ExportUserAsync(new ExportUserRequest { UserId = user });
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && attempt < 100)
            {
                await Task.Delay(200);
            }
        }
    }

    // GetProfile and ExportUser of 50 demo customers (and the stitched one), the export time left out.
    private static async Task<Dictionary<string, string>> Views(GrpcChannel channel)
    {
        var profiles = new ProfileService.ProfileServiceClient(channel);
        var privacy = new PrivacyService.PrivacyServiceClient(channel);
        var users = new[] { "12347" }.Concat(Enumerable.Range(12348, 200).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var views = new Dictionary<string, string>();
        foreach (var user in users)
        {
            GetProfileResponse profile;
            try
            {
                profile = await profiles.GetProfileAsync(new GetProfileRequest { UserId = user });
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
            {
                continue;
            }

            var export = JsonNode.Parse((await ExportWhenReady(privacy, user)).Json)!.AsObject();
            export.Remove("exported_at");
            foreach (var measured in new[] { "experiments", "remembered_decision_count", "remembered_decisions" })
            {
                export.Remove(measured); // measurement, not the profile: saved by its own checkpoint (its crash tests below)
            }

            views[user] = profile.ToString() + "\n" + export.ToJsonString();
            if (views.Count == 50)
            {
                break;
            }
        }

        Assert.Equal(50, views.Count);
        return views;
    }

    private static async Task Eventually(Func<Task> check)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60); // a job backing off (at most 30 s) retries within it
        while (true)
        {
            try
            {
                await check();
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }
        }
    }
}
