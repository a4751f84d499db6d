using System.Diagnostics;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using StackExchange.Redis;

namespace Segmentation.Server.Tests;

/// <summary>
/// The Redis stream consumer against a real redis-server (Debian's package, started here): events fed to a
/// stream are applied through the service's write path, rejected entries land on the dead-letter stream with the
/// reason, and after the service is killed with SIGKILL in the middle of the stream and restarted, every entry has
/// been applied exactly once — orders and revenue per user are what the distinct events add up to, re-sent
/// entries included.
/// </summary>
public sealed class RedisStreamIngestionProcessTests : IAsyncLifetime
{
    private const string Stream = "shop:events";
    private const int Users = 200;
    private const int PurchasesPerUser = 25;
    private const int Resent = 500;

    private readonly string _dir = Directory.CreateTempSubdirectory("seg-redis-").FullName;
    private Process? _redis;
    private int _redisPort;

    public async Task InitializeAsync()
    {
        await ExternalTools.EnsureDebianPackages(async () => (await ExternalTools.TryRun("redis-server", "--version", _dir)).Exit == 0, "The Redis stream consumer's test", "redis-server");
        _redisPort = RealServerProcessTests.FreePort();
        _redis = await StartRedis(_redisPort);
    }

    private async Task<Process> StartRedis(int port)
    {
        var redis = Process.Start(new ProcessStartInfo("redis-server", $"--port {port} --bind 127.0.0.1 --save \"\" --appendonly no --dir {_dir} --logfile redis-{port}.log")
        {
            UseShellExecute = false,
        })!;
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var probe = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port}");
                return redis;
            }
            catch (RedisConnectionException)
            {
                await Task.Delay(100);
            }
        }

        Assert.Fail("redis-server did not start");
        return redis;
    }

    public Task DisposeAsync()
    {
        _redis?.Kill(entireProcessTree: true);
        _redis?.Dispose();
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private Process StartService(int port, int? redisPort = null, params string[] more) => RealServerProcessTests.StartServer(
        port,
        [
        .. more,
        $"--Segmentation:DataDirectory={Path.Combine(_dir, "data")}",
        "--Segmentation:EncryptionKey=" + Convert.ToBase64String(new byte[32]),
        "--Segmentation:DemoData=false",
        "--Segmentation:RedisIngestion:Enabled=true",
        $"--Segmentation:RedisIngestion:Configuration=127.0.0.1:{redisPort ?? _redisPort},connectTimeout=1000",
        $"--Segmentation:RedisIngestion:Stream={Stream}",
        "--Segmentation:RedisIngestion:Consumer=node-1",
        "--Segmentation:RedisIngestion:BatchSize=20",
        "--Segmentation:RedisIngestion:ClaimIdleSeconds=3600", // recovery after the kill must come from re-reading this consumer's pending entries
        ]);

    [Fact]
    public async Task Redis_down_leaves_decisions_up_and_health_degraded_and_consumption_starts_when_it_is_back()
    {
        var redisPort = RealServerProcessTests.FreePort(); // nothing listens there yet
        var port = RealServerProcessTests.FreePort();
        var httpPort = RealServerProcessTests.FreePort();
        var service = StartService(port, redisPort, $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{httpPort}");
        Process? late = null;
        try
        {
            await RealServerProcessTests.WaitUntilListening(service, port);
            await RealServerProcessTests.WaitUntilListening(service, httpPort); // bound after the gRPC one: a busy machine can ask before it is
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };

            // The consumer's failure is reported as degraded: ready (200), decisions served, the process alive.
            var watch = Stopwatch.StartNew();
            string health;
            while (true)
            {
                using var response = await http.GetAsync(new Uri("/healthz", UriKind.Relative));
                health = await response.Content.ReadAsStringAsync();
                Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
                if (health.Contains("Redis stream ingestion", StringComparison.Ordinal))
                {
                    break;
                }

                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"health never named the failing consumer: {health}");
                await Task.Delay(200);
            }

            Assert.Contains("Degraded", health, StringComparison.Ordinal);
            var decided = await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = "anyone" });
            Assert.False(string.IsNullOrEmpty(decided.Decision.Segment.Id));
            Assert.False(service.HasExited);

            // Redis comes up: the consumer connects on its next attempt and applies the stream.
            late = await StartRedis(redisPort);
            using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{redisPort}");
            await redis.GetDatabase().StreamAddAsync(Stream, [new NameValueEntry("event", JsonFormatter.Default.Format(Purchase(7, 0, DateTimeOffset.UtcNow.AddMinutes(-5))))]);
            var profiles = new ProfileService.ProfileServiceClient(channel);
            await WaitForOneOrder(profiles, "ru7", "the consumer did not recover once Redis was up");
        }
        finally
        {
            service.Kill(entireProcessTree: true);
            await service.WaitForExitAsync();
            late?.Kill(entireProcessTree: true);
            late?.Dispose();
        }
    }

    // Polls until the user's profile holds one order (a profile not yet written answers NOT_FOUND), checking each round.
    private static async Task WaitForOneOrder(ProfileService.ProfileServiceClient profiles, string user, string failure, Func<Task>? eachRound = null)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (eachRound is not null)
            {
                await eachRound();
            }

            try
            {
                if ((await profiles.GetProfileAsync(new GetProfileRequest { UserId = user })).Profile.Aggregates.Orders == 1)
                {
                    return;
                }
            }
            catch (Grpc.Core.RpcException ex) when (ex.StatusCode == Grpc.Core.StatusCode.NotFound)
            {
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), failure);
            await Task.Delay(100);
        }
    }

    // Polls until the stream's dead letters number at least count; returns them.
    private static async Task<StreamEntry[]> WaitForDeadLetters(IDatabase db, string stream, int count)
    {
        var watch = Stopwatch.StartNew();
        StreamEntry[] dead;
        while ((dead = await db.StreamRangeAsync(stream + ":dead-letter")).Length < count)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"{dead.Length} of {count} entries dead-lettered");
            await Task.Delay(50);
        }

        return dead;
    }

    private static Event Purchase(int user, int n, DateTimeOffset at) => new()
    {
        EventId = $"redis-u{user}-p{n}",
        Type = "purchase",
        UserId = $"ru{user}",
        Timestamp = Timestamp.FromDateTimeOffset(at),
        Context = new EventContext { Source = "redis-test", Device = "desktop", SessionId = $"s{user}", PageType = "checkout" },
        OrderId = $"o-{user}-{n}",
        Value = n + 1,
        Currency = "GBP",
    };

    [Fact]
    public async Task A_claimed_entry_deleted_meanwhile_is_skipped_and_the_rest_of_its_batch_acknowledged()
    {
        // Regression (review): Redis before 7.0 answers XAUTOCLAIM with nil for a pending entry deleted meanwhile (a
        // producer's MAXLEN trim); the consumer dead-lettered it without an id and its batch's XACK failed on the missing
        // id, so the batch was applied again (as duplicates) at every claim, for good. Debian's Redis is 7: the entry
        // the old one answers is given to the batch as the client library reads it.
        using var server = new GrpcTestFixture();
        var consumer = new Segmentation.Server.Hosting.RedisStreamIngestion(
            Microsoft.Extensions.Options.Options.Create(new Segmentation.Server.Hosting.RedisIngestionOptions { Stream = "claim:events", Consumer = "node-claim" }),
            server.Services.GetRequiredService<Segmentation.Core.Application.Profiles.ProfileIngestion>(),
            server.Services.GetRequiredService<Segmentation.Server.Hosting.ServiceHealth>(),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Segmentation.Server.Hosting.RedisStreamIngestion>.Instance);
        await using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort}");
        var db = redis.GetDatabase();
        await db.StreamCreateConsumerGroupAsync("claim:events", "segmentation", StreamPosition.Beginning, createStream: true);
        await db.StreamAddAsync("claim:events", [new NameValueEntry("event", JsonFormatter.Default.Format(Purchase(9_001, 0, DateTimeOffset.UtcNow.AddMinutes(-5))))]);
        var read = await db.StreamReadGroupAsync("claim:events", "segmentation", "node-claim", StreamPosition.NewMessages, 10);

        await consumer.ApplyAsync(db, [StreamEntry.Null, .. read]);

        Assert.Equal(0, (await db.StreamPendingAsync("claim:events", "segmentation")).PendingMessageCount); // acknowledged
        Assert.Empty(await db.StreamRangeAsync("claim:events:dead-letter")); // nothing dead-lettered for the deleted entry
        Assert.NotNull(server.Services.GetRequiredService<Segmentation.Core.Profiles.IProfileStore>().Get("ru9001"));
    }

    [Fact]
    public async Task Every_entry_is_applied_exactly_once_across_a_kill_9_and_rejected_ones_are_dead_lettered()
    {
        using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort}");
        var db = redis.GetDatabase();
        var now = DateTimeOffset.UtcNow.AddHours(-1);
        var entries = new List<NameValueEntry[]>();
        for (var n = 0; n < PurchasesPerUser; n++)
        {
            for (var u = 0; u < Users; u++)
            {
                entries.Add([new("event", JsonFormatter.Default.Format(Purchase(u, n, now.AddSeconds(n))))]);
            }
        }

        // Entries sent twice (a producer retrying), and entries that cannot be applied.
        entries.AddRange(entries.Take(Resent).ToList());
        var noUser = Purchase(1, 998, now);
        noUser.UserId = "";
        var invalid = new List<NameValueEntry[]>
        {
            new NameValueEntry[] { new("event", "{ this is not json") },
            new NameValueEntry[] { new("payload", "no event field") },
            new NameValueEntry[] { new("event", JsonFormatter.Default.Format(noUser)) },
        };
        var invalidIds = new List<string>();
        var batch = db.CreateBatch();
        var adds = entries.Select(e => batch.StreamAddAsync(Stream, e)).ToList();
        batch.Execute();
        await Task.WhenAll(adds);
        foreach (var bad in invalid)
        {
            invalidIds.Add((await db.StreamAddAsync(Stream, bad))!);
        }

        var total = entries.Count + invalid.Count;

        // Start the service, and kill it (SIGKILL) while it is part-way through the stream.
        var port = RealServerProcessTests.FreePort();
        var service = StartService(port);
        long readAtKill;
        try
        {
            var watch = Stopwatch.StartNew();
            while (true)
            {
                var group = (await db.StreamGroupInfoAsync(Stream)).SingleOrDefault();
                readAtKill = group.EntriesRead ?? 0;
                if (readAtKill > 0) // killed once it has read anything: however fast it runs meanwhile, most of the stream is still ahead
                {
                    break;
                }

                if (service.HasExited || watch.Elapsed >= TimeSpan.FromSeconds(60))
                {
                    // Say why: the server's own log (its exit code when it stopped) rather than only a count.
                    var log = RealServerProcessTests.OutputOf(service).Split('\n');
                    Assert.Fail($"the consumer read {readAtKill} of {total} entries in {watch.Elapsed.TotalSeconds:0} s; server {(service.HasExited ? $"exited with {service.ExitCode}" : "still running")}; its log ends:\n{string.Join('\n', log.TakeLast(40))}");
                }

                await Task.Delay(5);
            }
        }
        finally
        {
            service.Kill(entireProcessTree: true); // SIGKILL: no shutdown, no flush
            await service.WaitForExitAsync();
        }

        var afterKill = (await db.StreamGroupInfoAsync(Stream)).Single();
        Assert.True((afterKill.Lag ?? 0) + afterKill.PendingMessageCount > 0, "the kill came after the whole stream was handled: nothing was left to recover");

        // Restart on the same data directory: pending entries are read again, the rest consumed.
        port = RealServerProcessTests.FreePort();
        service = StartService(port);
        try
        {
            await RealServerProcessTests.WaitUntilListening(service, port);
            var watch = Stopwatch.StartNew();
            while (true)
            {
                var group = (await db.StreamGroupInfoAsync(Stream)).Single();
                if (group.Lag == 0 && group.PendingMessageCount == 0)
                {
                    break;
                }

                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(90), $"after the restart: lag {group.Lag}, pending {group.PendingMessageCount}");
                await Task.Delay(50);
            }

            // Exactly once: every user has exactly their distinct purchases, re-sent entries and the entries
            // re-read after the kill included.
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            var profiles = new ProfileService.ProfileServiceClient(channel);
            var revenue = Enumerable.Range(1, PurchasesPerUser).Sum();
            for (var u = 0; u < Users; u++)
            {
                var a = (await profiles.GetProfileAsync(new GetProfileRequest { UserId = $"ru{u}" })).Profile.Aggregates;
                Assert.True(a.Orders == PurchasesPerUser && Math.Abs(a.Revenue - revenue) < 1e-9, $"ru{u}: {a.Orders} orders, revenue {a.Revenue}");
            }

            // The entries that could not be applied are on the dead-letter stream, each once per delivery, with a reason.
            var dead = await db.StreamRangeAsync(Stream + ":dead-letter");
            Assert.Equal(invalidIds.Order(StringComparer.Ordinal), dead.Select(d => (string)d["entry_id"]!).Distinct().Order(StringComparer.Ordinal));
            Assert.Contains(dead, d => ((string)d["reason"]!).Contains("not a segmentation.v1.Event in JSON", StringComparison.Ordinal));
            Assert.Contains(dead, d => ((string)d["reason"]!).Contains("no 'event' field", StringComparison.Ordinal));
            Assert.Contains(dead, d => ((string)d["reason"]!).StartsWith("user_id: ", StringComparison.Ordinal)); // not "events[0].user_id": a position in a read batch
        }
        finally
        {
            service.Kill(entireProcessTree: true);
            await service.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task An_event_past_its_retention_is_dead_lettered_without_its_payload_and_an_erasure_deletes_the_users_dead_letters()
    {
        using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort}");
        var db = redis.GetDatabase();
        var now = DateTimeOffset.UtcNow.AddHours(-1);
        var untyped = Purchase(1, 1, now);
        untyped.UserId = "gone-1";
        untyped.Type = ""; // rejected: kept whole on the dead-letter stream
        var expired = Purchase(1, 2, now.AddDays(-800)); // past the default retention (730 days)
        expired.UserId = "gone-1";
        var othersUntyped = Purchase(2, 1, now);
        othersUntyped.Type = "";
        var ids = new List<string>();
        foreach (var payload in new[]
        {
            JsonFormatter.Default.Format(untyped),
            "{ \"userId\": \"gone-1\", this is not json",
            JsonFormatter.Default.Format(expired),
            JsonFormatter.Default.Format(othersUntyped),
        })
        {
            ids.Add((await db.StreamAddAsync(Stream, [new NameValueEntry("event", payload)]))!);
        }

        var port = RealServerProcessTests.FreePort();
        var service = StartService(port);
        try
        {
            await RealServerProcessTests.WaitUntilListening(service, port);
            var dead = await WaitForDeadLetters(db, Stream, ids.Count);

            var byEntry = dead.ToDictionary(d => (string)d["entry_id"]!); // those that are not events come first
            Assert.Equal(ids.Order(StringComparer.Ordinal), byEntry.Keys.Order(StringComparer.Ordinal));
            var retained = byEntry[ids[2]];
            Assert.Contains("retention", (string)retained["reason"]!, StringComparison.Ordinal);
            Assert.Equal("", (string)retained["event"]!); // the event a retention policy refuses to keep is not kept here either
            Assert.True((long)retained["event_bytes"] > 0);
            Assert.Contains("gone-1", (string)byEntry[ids[0]]["event"]!, StringComparison.Ordinal);

            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            await new PrivacyService.PrivacyServiceClient(channel).ForgetUserAsync(new ForgetUserRequest { UserId = "gone-1" });

            // The erased user's dead letters are gone (its JSON event, the broken payload naming it); the other user's stays.
            var left = await db.StreamRangeAsync(Stream + ":dead-letter");
            Assert.Equal(new[] { ids[2], ids[3] }.Order(StringComparer.Ordinal), left.Select(d => (string)d["entry_id"]!).Order(StringComparer.Ordinal));
            Assert.DoesNotContain(left, d => ((string?)d["event"] ?? "").Contains("gone-1", StringComparison.Ordinal));
        }
        finally
        {
            service.Kill(entireProcessTree: true);
            await service.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task An_erasure_deletes_dead_letters_that_name_the_user_as_a_number_under_another_key_or_wrapped()
    {
        // Regression (review): only a top-level user_id or anonymous_id holding a JSON string was matched, and dead letters
        // are malformed events by definition: a numeric id (Online Retail's CustomerID), a misspelt key, an event wrapped
        // in another object or sent as a JSON string kept the erased user's event on the dead-letter stream.
        using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort}");
        var db = redis.GetDatabase();
        var stream = Stream;
        var others = Purchase(3, 1, DateTimeOffset.UtcNow.AddHours(-1));
        others.UserId = "40418";
        others.Type = ""; // refused, kept whole
        var ids = new List<string>();
        foreach (var payload in new[]
        {
            "{\"event_id\":\"n1\",\"type\":\"purchase\",\"user_id\":40417}",
            "{\"event_id\":\"n2\",\"type\":\"page_view\",\"userID\":\"40417\"}",
            "{\"events\":[{\"event_id\":\"n3\",\"user_id\":\"40417\"}]}",
            JsonSerializer.Serialize("{\"event_id\":\"n4\",\"user_id\":\"40417\"}"),
            "{\"event_id\":\"n5\",\"type\":\"purchase\",\"user_id\":40417.0}", // as pandas writes Online Retail's CustomerID
            JsonFormatter.Default.Format(others),
            "{\"event_id\":\"n6\",\"user_id\":\"40418\",\"lines\":[{\"product_id\":\"40417\",\"quantity\":2}],\"type\":7}", // another user's order of a product whose code is the id
            new string('x', 100_000), // past what a dead letter keeps (review: the stream is trimmed by count only)
        })
        {
            ids.Add((await db.StreamAddAsync(stream, [new NameValueEntry("event", payload)]))!);
        }

        var port = RealServerProcessTests.FreePort();
        var service = StartService(port);
        try
        {
            await RealServerProcessTests.WaitUntilListening(service, port);
            await WaitForDeadLetters(db, stream, ids.Count);

            var large = (await db.StreamRangeAsync(stream + ":dead-letter")).Single(d => (string)d["entry_id"]! == ids[7]);
            Assert.Equal(("", 100_000L), ((string)large["event"]!, (long)large["event_bytes"]));

            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            await new PrivacyService.PrivacyServiceClient(channel).ForgetUserAsync(new ForgetUserRequest { UserId = "40417" });

            var left = await db.StreamRangeAsync(stream + ":dead-letter");
            Assert.Equal(new[] { ids[5], ids[6], ids[7] }.Order(StringComparer.Ordinal), left.Select(d => (string)d["entry_id"]!).Order(StringComparer.Ordinal)); // another user's dead letters stay, whatever they hold

            await new PrivacyService.PrivacyServiceClient(channel).ForgetUserAsync(new ForgetUserRequest { UserId = "2" }); // the line's quantity
            Assert.Equal(3, (await db.StreamRangeAsync(stream + ":dead-letter")).Length);
        }
        finally
        {
            service.Kill(entireProcessTree: true);
            await service.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_valid_order_of_a_hundred_kilobytes_is_applied_not_dead_lettered()
    {
        // Regression (review): entries over 64 KiB were dead-lettered, payload dropped, although TrackEvent takes such an
        // event (500 lines of long names): a large B2B order was lost to the service.
        using var redis = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{_redisPort}");
        var db = redis.GetDatabase();
        var order = Purchase(9, 1, DateTimeOffset.UtcNow.AddMinutes(-5));
        for (var i = 0; i < 500; i++)
        {
            order.Lines.Add(new OrderLine { ProductId = $"sku-{i:D4}-" + new string('x', 100), Name = "A product with a long descriptive name " + i, Quantity = 1, UnitPrice = 2 });
        }

        var payload = JsonFormatter.Default.Format(order);
        Assert.True(payload.Length > 100_000, $"{payload.Length} bytes");
        await db.StreamAddAsync(Stream, [new NameValueEntry("event", payload)]);

        var port = RealServerProcessTests.FreePort();
        var service = StartService(port);
        try
        {
            await RealServerProcessTests.WaitUntilListening(service, port);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            var profiles = new ProfileService.ProfileServiceClient(channel);
            await WaitForOneOrder(profiles, "ru9", "the order was not applied", async () => Assert.Empty(await db.StreamRangeAsync(Stream + ":dead-letter")));
        }
        finally
        {
            service.Kill(entireProcessTree: true);
            await service.WaitForExitAsync();
        }
    }
}
