using System.Collections.Concurrent;
using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;
using Xunit.Abstractions;

namespace Segmentation.Server.Tests;

/// <summary>
/// Durability against the real process: events are streamed to the server (unary TrackEvent and
/// StreamEvents) with a data directory set, the process is killed with SIGKILL at a random moment,
/// and after a restart every acknowledged event must be there and nothing may be counted twice.
/// </summary>
public sealed class CrashRecoveryProcessTests(ITestOutputHelper output) : IDisposable
{
    private const int Users = 200;
    private static readonly DateTimeOffset Start = DateTimeOffset.UtcNow.AddHours(-1);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-crash-").FullName;
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _run = Guid.NewGuid().ToString("N")[..8];

    // Every event sent (acknowledged or in flight when the server died), by id; and the acknowledged ids.
    private readonly ConcurrentDictionary<string, Event> _sent = new();
    private readonly ConcurrentDictionary<string, bool> _acked = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Acknowledged_events_survive_kill_9_and_none_is_applied_twice()
    {
        var watch = Stopwatch.StartNew();
        var random = new Random();
        for (var round = 0; round < 3; round++)
        {
            await WithServer(async (profiles, server) =>
            {
                if (round > 0)
                {
                    await Verify(profiles);
                }

                await WriteUntilKilled(profiles, server, random, round);
            });
        }

        await WithServer(async (profiles, _) => await Verify(profiles));
        output.WriteLine(string.Join(", ", Directory.EnumerateFiles(_dir).Select(f => $"{Path.GetFileName(f)} {new FileInfo(f).Length} B")));
        Assert.True(_acked.Count >= 300, $"only {_acked.Count} events were acknowledged");
        output.WriteLine($"took {watch.Elapsed}"); // reported, not asserted: each round has its own budget, and a busy machine is slow without anything being wrong
    }

    private async Task WithServer(Func<ProfileService.ProfileServiceClient, Process, Task> body)
    {
        var port = RealServerProcessTests.FreePort();
        // A small snapshot threshold, so that snapshots and log compaction run (and get killed) during the rounds.
        using var server = RealServerProcessTests.StartServer(
            port,
            $"--Segmentation:DataDirectory={_dir}",
            $"--Segmentation:EncryptionKey={Key}",
            "--Segmentation:SnapshotLogBytes=4096",
            "--Segmentation:SnapshotCheckSeconds=1",
            "--Segmentation:DemoData=false");
        try
        {
            var t = Stopwatch.StartNew();
            await RealServerProcessTests.WaitUntilListening(server, port);
            output.WriteLine($"listening after {t.ElapsedMilliseconds} ms");
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            await body(new ProfileService.ProfileServiceClient(channel), server);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true); // SIGKILL: no graceful shutdown, no flush
            }

            await server.WaitForExitAsync();
        }
    }

    private Event NewEvent(int n, int round)
    {
        var id = $"{_run}-r{round}-{n}-{Guid.NewGuid():N}";
        var user = $"crash-{_run}-u{n % Users}";
        var purchase = n % 5 == 0;
        var e = new Event
        {
            EventId = id,
            Type = purchase ? "purchase" : "page_view",
            UserId = user,
            Timestamp = Timestamp.FromDateTimeOffset(Start.AddMilliseconds(10 * (n + (round * 100_000)))),
            Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s-" + user, PageType = "product" },
            Value = purchase ? 1 + (n % 7) : 0,
            OrderId = purchase ? "o-" + id : "",
        };
        _sent[id] = e;
        return e;
    }

    // Writes with three unary writers and one StreamEvents writer until the server is killed.
    private async Task WriteUntilKilled(ProfileService.ProfileServiceClient profiles, Process server, Random random, int round)
    {
        var ackedAtStart = _acked.Count;
        var counter = 0;
        using var stop = new CancellationTokenSource();

        async Task Unary()
        {
            while (!stop.IsCancellationRequested)
            {
                var e = NewEvent(Interlocked.Increment(ref counter), round);
                try
                {
                    await profiles.TrackEventAsync(new TrackEventRequest { Event = e }, deadline: DateTime.UtcNow.AddSeconds(10));
                    _acked[e.EventId] = true;
                }
                catch (RpcException ex) when (ex.StatusCode != StatusCode.InvalidArgument)
                {
                    return; // the server is gone: this event is in doubt
                }
            }
        }

        async Task Streaming()
        {
            try
            {
                using var call = profiles.StreamEvents(deadline: DateTime.UtcNow.AddSeconds(30));
                using var window = new SemaphoreSlim(8); // at most 8 events in flight on the stream
                var reader = Task.Run(async () =>
                {
                    await foreach (var response in call.ResponseStream.ReadAllAsync())
                    {
                        Assert.NotEqual(Segmentation.Contracts.V1.EventStatus.Rejected, response.Result.Status);
                        _acked[response.Result.EventId] = true;
                        window.Release();
                    }
                });
                while (!stop.IsCancellationRequested && !reader.IsCompleted)
                {
                    if (!await window.WaitAsync(100))
                    {
                        continue;
                    }

                    await call.RequestStream.WriteAsync(new StreamEventsRequest { Event = NewEvent(Interlocked.Increment(ref counter), round) });
                }

                await reader;
            }
            catch (RpcException)
            {
            }
            catch (InvalidOperationException)
            {
            }
            catch (IOException)
            {
            }
        }

        var writers = new[] { Task.Run(Unary), Task.Run(Unary), Task.Run(Unary), Task.Run(Streaming) };
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (_acked.Count - ackedAtStart < 100 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.True(_acked.Count - ackedAtStart >= 100, "the server acknowledged fewer than 100 events in 15 s");
        if (round == 0)
        {
            // Make sure at least one snapshot + compaction ran under load before the first kill.
            while (!Directory.EnumerateFiles(_dir, "snapshot-*.snap").Any() && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            Assert.NotEmpty(Directory.EnumerateFiles(_dir, "snapshot-*.snap"));
        }

        await Task.Delay(random.Next(0, 600)); // then kill at a random moment, with writes in flight
        var t = Stopwatch.StartNew();
        server.Kill(entireProcessTree: true); // SIGKILL
        await server.WaitForExitAsync();
        await stop.CancelAsync();
        output.WriteLine($"round {round}: killed after {_acked.Count - ackedAtStart} acks; {_sent.Count - _acked.Count} in doubt; {t.ElapsedMilliseconds} ms to exit");
        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(30));
    }

    private async Task Verify(ProfileService.ProfileServiceClient profiles)
    {
        var t = Stopwatch.StartNew();
        using var _ = new Finally(() => output.WriteLine($"verified {_sent.Count} events in {t.ElapsedMilliseconds} ms"));
        var byUser = _sent.Values.GroupBy(e => e.UserId).ToList();
        foreach (var user in byUser)
        {
            var acked = user.Count(e => _acked.ContainsKey(e.EventId));
            var count = await EventCount(profiles, user.Key);
            Assert.True(count >= acked, $"{user.Key}: {count} events after restart but {acked} were acknowledged: acknowledged events were lost");
            Assert.True(count <= user.Count(), $"{user.Key}: {count} events after restart but only {user.Count()} distinct ids were sent: applied twice");
        }

        // Every acknowledged event is recorded: sending it again is a duplicate.
        foreach (var chunk in _sent.Values.Where(e => _acked.ContainsKey(e.EventId)).Chunk(1000))
        {
            var response = await profiles.TrackEventsAsync(new TrackEventsRequest { Events = { chunk } });
            var missing = response.Results.Where(r => r.Status != Segmentation.Contracts.V1.EventStatus.Duplicate).Select(r => r.EventId).ToList();
            Assert.True(missing.Count == 0, $"{missing.Count} acknowledged events missing after restart, e.g. {string.Join(", ", missing.Take(3))}");
        }

        // Events in doubt (in flight at the kill) are either there or not; send them again so that every
        // id sent is now recorded, and check each is counted exactly once (counts and revenue).
        foreach (var chunk in _sent.Values.Where(e => !_acked.ContainsKey(e.EventId)).Chunk(1000))
        {
            var response = await profiles.TrackEventsAsync(new TrackEventsRequest { Events = { chunk } });
            Assert.All(response.Results, r => Assert.NotEqual(Segmentation.Contracts.V1.EventStatus.Rejected, r.Status));
            foreach (var r in response.Results)
            {
                _acked[r.EventId] = true;
            }
        }

        foreach (var user in byUser)
        {
            var profile = (await profiles.GetProfileAsync(new GetProfileRequest { UserId = user.Key })).Profile;
            Assert.Equal(user.Count(), profile.EventCounts.Values.Sum());
            Assert.Equal(user.Sum(e => e.Value), profile.Aggregates.Revenue, 6);
            Assert.Equal(user.Count(e => e.Type == "purchase"), profile.Aggregates.Orders);
        }
    }

    private static async Task<long> EventCount(ProfileService.ProfileServiceClient profiles, string user)
    {
        try
        {
            return (await profiles.GetProfileAsync(new GetProfileRequest { UserId = user })).Profile.EventCounts.Values.Sum();
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return 0;
        }
    }
}

internal sealed class Finally(Action action) : IDisposable
{
    public void Dispose() => action();
}
