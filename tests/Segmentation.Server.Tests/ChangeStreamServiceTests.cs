using Google.Rpc;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Contracts.V1;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

/// <summary>
/// WatchSegmentChanges as a workflow engine uses it: offsets on every entry, resuming after a disconnect and after
/// a restart of the server with nothing missed or repeated, and OUT_OF_RANGE telling a consumer to resynchronise.
/// </summary>
public sealed class ChangeStreamServiceTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-stream-host-").FullName;

    public void Dispose()
    {
        GrpcTestFixture.WaitUntilUnlocked(_dir); // the last host's files closed
        Directory.Delete(_dir, recursive: true);
    }

    private WebApplicationFactory<Program> Server() => GrpcTestFixture.DurableServer(_dir, Key);

    private static async Task Explore(Grpc.Net.Client.GrpcChannel channel, string user)
    {
        var profiles = new ProfileService.ProfileServiceClient(channel);
        for (var i = 0; i < 5; i++)
        {
            await profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make(user, $"{user}-{i}", "product_view") });
        }
    }

    // The first `count` entries of the stream from `request`, waiting for them (the membership rebuild after a restart is retried).
    private static async Task<List<WatchSegmentChangesResponse>> Read(Grpc.Net.Client.GrpcChannel channel, WatchSegmentChangesRequest request, int count, Func<Task>? whileWatching = null)
    {
        var catalog = new CatalogService.CatalogServiceClient(channel);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                using var watch = catalog.WatchSegmentChanges(request, cancellationToken: cts.Token);
                var read = new List<WatchSegmentChangesResponse>();
                var reading = Task.Run(async () =>
                {
                    while (read.Count < count && await watch.ResponseStream.MoveNext(cts.Token))
                    {
                        read.Add(watch.ResponseStream.Current);
                    }
                });
                if (whileWatching is not null)
                {
                    await Task.Delay(200); // the call is under way on the server
                    await whileWatching();
                }

                await reading;
                return read;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && attempt < 100)
            {
                await Task.Delay(100); // memberships are being rebuilt after the restart
            }
        }
    }

    [Fact]
    public async Task A_watch_with_nothing_to_send_answers_its_headers_so_the_caller_knows_it_is_open()
    {
        // Regression: the headers went out with the first change, so on a quiet system a caller (the dashboard's Live page
        // among them) could not tell an open watch from one still connecting; it stayed "connecting…".
        using var server = Server();
        using var channel = GrpcTestFixture.CreateChannel(server);
        var catalog = new CatalogService.CatalogServiceClient(channel);
        for (var attempt = 0; ; attempt++)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var watch = catalog.WatchSegmentChanges(new WatchSegmentChangesRequest { SegmentIds = { "product_explorer" } }, cancellationToken: cts.Token);
            try
            {
                var headers = await watch.ResponseHeadersAsync.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.NotNull(headers);
                var first = watch.ResponseStream.MoveNext(cts.Token);
                await Task.Delay(500);
                Assert.False(first.IsCompleted); // open, and nothing has changed
                return;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && attempt < 100)
            {
                await Task.Delay(100); // memberships are being rebuilt after the start
            }
        }
    }

    [Fact]
    public async Task A_stop_while_a_watch_catches_up_ends_it_with_UNAVAILABLE_not_a_reset()
    {
        // Regression (review): the watch's writes were given the token the stop cancels, and a write given a cancelled
        // token resets the stream: a consumer replaying a backlog when the server stopped got CANCELLED with no retry
        // delay (an HTTP/JSON one a cut body) instead of the UNAVAILABLE the contract promises.
        using var server = Server();
        using var channel = GrpcTestFixture.CreateChannel(server);
        foreach (var user in new[] { "stop-a", "stop-b", "stop-c", "stop-d" })
        {
            await Explore(channel, user);
        }

        // The stop comes after the watch read a batch of the backlog and before it writes any of it.
        var lifetime = server.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>();
        server.Services.GetRequiredService<Segmentation.Core.Application.Catalogs.CatalogGovernance>().AfterWatchRead = lifetime.StopApplication;
        var catalog = new CatalogService.CatalogServiceClient(channel);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var watch = catalog.WatchSegmentChanges(new WatchSegmentChangesRequest { FromOldest = true }, cancellationToken: cts.Token);
        var end = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await watch.ResponseStream.MoveNext(cts.Token))
            {
            }
        });
        Assert.Equal(StatusCode.Unavailable, end.StatusCode);
        Assert.Contains("shutting down", end.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_consumer_resumes_after_a_restart_with_exactly_what_it_missed_then_the_live_stream()
    {
        var (a, b, c) = ("stream-a-" + Guid.NewGuid().ToString("N")[..8], "stream-b-" + Guid.NewGuid().ToString("N")[..8], "stream-c-" + Guid.NewGuid().ToString("N")[..8]);
        long handled;
        string stream;
        using (var first = Server())
        {
            using var channel = GrpcTestFixture.CreateChannel(first);
            await Explore(channel, a);
            var seen = await Read(channel, new WatchSegmentChangesRequest { FromOldest = true, SegmentIds = { "product_explorer" } }, 1);
            var entered = Assert.Single(seen);
            Assert.Equal((a, MembershipChangeKind.Entered), (entered.UserId, entered.Kind));
            Assert.True(entered.Offset > 0);
            handled = entered.Offset; // the consumer stores this, then goes away
            stream = entered.StreamId; // with the stream it is from
            Assert.Equal(32, stream.Length);
            await Explore(channel, b); // missed while it is away
        }

        using var second = Server(); // the same data directory: a restart
        using var after = GrpcTestFixture.CreateChannel(second);
        var resumed = await Read(after, new WatchSegmentChangesRequest { AfterOffset = handled, StreamId = stream, SegmentIds = { "product_explorer" } }, 2, () => Explore(after, c));
        Assert.All(resumed, e => Assert.Equal(stream, e.StreamId)); // the same stream across the restart

        Assert.Equal([(b, MembershipChangeKind.Entered), (c, MembershipChangeKind.Entered)], resumed.Select(e => (e.UserId, e.Kind)));
        Assert.True(resumed[0].Offset > handled && resumed[1].Offset > resumed[0].Offset); // numbering went on across the restart
        Assert.Equal($"event:{b}-4", resumed[0].Cause);
    }

    [Fact]
    public async Task An_offset_from_a_stream_that_was_reset_is_out_of_range_even_where_the_new_stream_has_it()
    {
        // Regression: a consumer's offset from a stream that started again (another data directory, or a server without
        // one restarted) was taken as a place in the new stream once that had grown past it: the consumer silently
        // missed the new stream's first entries and read on from the middle.
        string stream;
        long handled;
        using (var first = Server())
        {
            using var channel = GrpcTestFixture.CreateChannel(first);
            await Explore(channel, "reset-a");
            var entered = Assert.Single(await Read(channel, new WatchSegmentChangesRequest { FromOldest = true, SegmentIds = { "product_explorer" } }, 1));
            (stream, handled) = (entered.StreamId, entered.Offset);
        }

        var other = Directory.CreateTempSubdirectory("seg-stream-reset-").FullName; // the data was reset
        try
        {
            using (var reset = GrpcTestFixture.DurableServer(other, Key))
            {
                using var channel = GrpcTestFixture.CreateChannel(reset);
                foreach (var user in new[] { "reset-b", "reset-c", "reset-d" })
                {
                    await Explore(channel, user);
                }

                var grown = await Read(channel, new WatchSegmentChangesRequest { FromOldest = true }, (int)handled + 1);
                Assert.True(grown[^1].Offset > handled); // the new stream has the consumer's offset, with other entries
                Assert.NotEqual(stream, grown[0].StreamId);

                var ex = await Assert.ThrowsAsync<RpcException>(() => Read(channel, new WatchSegmentChangesRequest { AfterOffset = handled, StreamId = stream }, 1));
                Assert.Equal(StatusCode.OutOfRange, ex.StatusCode);
                Assert.Equal("CHANGE_OFFSET_NOT_RETAINED", ex.GetRpcStatus()!.GetDetail<ErrorInfo>().Reason);
                Assert.Contains("reset", ex.Status.Detail, StringComparison.Ordinal);
            }
        }
        finally
        {
            GrpcTestFixture.WaitUntilUnlocked(other);
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public async Task An_offset_the_stream_never_reached_is_out_of_range_with_the_offsets_to_continue_from()
    {
        using var server = Server();
        using var channel = GrpcTestFixture.CreateChannel(server);
        await Explore(channel, "stream-x");
        await Read(channel, new WatchSegmentChangesRequest { FromOldest = true }, 1); // served once written: the newest offset named below is a written one

        var ex = await Assert.ThrowsAsync<RpcException>(() => Read(channel, new WatchSegmentChangesRequest { AfterOffset = 1_000_000 }, 1));

        Assert.Equal(StatusCode.OutOfRange, ex.StatusCode);
        Assert.Contains("resynchronise", ex.Status.Detail, StringComparison.Ordinal);
        var info = ex.GetRpcStatus()!.GetDetail<ErrorInfo>();
        Assert.Equal("CHANGE_OFFSET_NOT_RETAINED", info.Reason);
        Assert.True(long.Parse(info.Metadata["newest_offset"], System.Globalization.CultureInfo.InvariantCulture) >= 1);
    }

    [Fact]
    public async Task ForgetUser_leaves_no_change_stream_file_naming_the_user()
    {
        var (gone, kept) = ("stream-gone-" + Guid.NewGuid().ToString("N")[..8], "stream-kept-" + Guid.NewGuid().ToString("N")[..8]);
        using var server = Server();
        using var channel = GrpcTestFixture.CreateChannel(server);
        await Explore(channel, gone);
        await Explore(channel, kept);
        var seen = await Read(channel, new WatchSegmentChangesRequest { FromOldest = true, SegmentIds = { "product_explorer" } }, 2); // served only once journaled
        Assert.Equal([gone, kept], seen.Select(e => e.UserId).Order(StringComparer.Ordinal));
        var folder = Path.Combine(_dir, "changes");
        bool Named(string user) => Directory.EnumerateFiles(folder).Any(f => Text(f).Contains(user, StringComparison.Ordinal));
        static string Text(string file)
        {
            try
            {
                return File.ReadAllText(file);
            }
            catch (FileNotFoundException)
            {
                return ""; // a temporary file renamed since it was listed
            }
        }

        Assert.True(Named(gone));

        await new PrivacyService.PrivacyServiceClient(channel).ForgetUserAsync(new ForgetUserRequest { UserId = gone });

        Assert.False(Named(gone));
        Assert.True(Named(kept));
        var after = await Read(channel, new WatchSegmentChangesRequest { FromOldest = true, SegmentIds = { "product_explorer" } }, 2);
        Assert.Equal([("", "erased"), (kept, seen.Single(e => e.UserId == kept).Cause)], after.Select(e => (e.UserId, e.Cause)).OrderBy(p => p.Item1, StringComparer.Ordinal));
    }
}
