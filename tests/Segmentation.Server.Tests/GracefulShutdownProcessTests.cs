using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;
using Xunit.Abstractions;

namespace Segmentation.Server.Tests;

/// <summary>A graceful stop (SIGTERM) of the real server process while long-lived calls are open.</summary>
public sealed class GracefulShutdownProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-shutdown-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Open_watch_and_event_streams_end_with_UNAVAILABLE_and_do_not_hold_the_shutdown()
    {
        // Regression: the host waits for open calls before the stopping services save their state, and the change
        // stream's watch and the event stream waited for the caller only: one connected watcher held every graceful
        // stop for the host's 30 s timeout, when a supervisor's grace period ends and the final saves race the kill.
        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port,
            $"--Segmentation:DataDirectory={_dir}",
            $"--Segmentation:EncryptionKey={Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))}",
            "--Segmentation:DemoData=false");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });

            using var watch = new CatalogService.CatalogServiceClient(channel).WatchSegmentChanges(new WatchSegmentChangesRequest());
            var watching = ReadUntilEnd(watch.ResponseStream);

            using var events = new ProfileService.ProfileServiceClient(channel).StreamEvents();
            await events.RequestStream.WriteAsync(new StreamEventsRequest
            {
                Event = new Event
                {
                    EventId = "e-1",
                    Type = "page_view",
                    UserId = "u1",
                    Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1)),
                    Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s-1", PageType = "home" },
                },
            });
            Assert.True(await events.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(EventStatus.Accepted, events.ResponseStream.Current.Result.Status);
            var streaming = ReadUntilEnd(events.ResponseStream);
            await Task.Delay(500); // the watch is open on the server

            await StopsGracefullyWithin15Seconds(server, "the open calls held it until the host's timeout");

            var watchEnd = await watching;
            Assert.Equal(StatusCode.Unavailable, watchEnd.StatusCode);
            Assert.Contains("shutting down", watchEnd.Status.Detail, StringComparison.Ordinal);
            var streamEnd = await streaming;
            Assert.Equal(StatusCode.Unavailable, streamEnd.StatusCode);
            Assert.Contains("send them again", streamEnd.Status.Detail, StringComparison.Ordinal);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }

            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task An_event_stream_whose_client_never_reads_does_not_hold_the_shutdown()
    {
        // Regression (found in review): the stream's last answers waited for a client that never reads them, and Kestrel
        // waited for the connection: the stop lasted until the host's timeout (30 s). A dump taken during the stop showed
        // the call's write waiting for flow control and, once the call was made to end, the connection still held.
        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            using var events = new ProfileService.ProfileServiceClient(channel).StreamEvents();
            var at = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1));
            var written = 0;
            // Far more answers than the transport holds unread: the server's room fills, and it stops reading. A write
            // that does not complete within 2 s is left pending (cancelling it would cancel the call).
            for (var m = 0; m < 2_000; m++)
            {
                var request = new StreamEventsRequest();
                request.Events.Add(Enumerable.Range(0, 50).Select(i => new Event
                {
                    EventId = $"e-{m}-{i}",
                    Type = "page_view",
                    UserId = $"u{i}",
                    Timestamp = at,
                    Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s-1", PageType = "home" },
                }));
                var pending = events.RequestStream.WriteAsync(request);
                if (await Task.WhenAny(pending, Task.Delay(TimeSpan.FromSeconds(2))) != pending)
                {
                    break;
                }

                await pending;
                written++;
            }

            Assert.True(written < 2_000, "the server read every message: its room never filled");
            output.WriteLine($"{written} messages written before the server stopped reading");
            await StopsGracefullyWithin15Seconds(server, "the unread event stream held it");
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }

            await server.WaitForExitAsync();
        }
    }

    // Sends SIGTERM and waits for the exit: within 15 s (the host's own timeout is 30 s), exit code 0.
    private async Task StopsGracefullyWithin15Seconds(Process server, string heldBy)
    {
        var stopping = Stopwatch.StartNew();
        using (var kill = Process.Start("kill", $"-TERM {server.Id}"))
        {
            await kill.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await server.WaitForExitAsync(timeout.Token);
        output.WriteLine($"stopped after {stopping.Elapsed.TotalSeconds:0.0} s, exit code {server.ExitCode}");
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(15), $"the stop took {stopping.Elapsed.TotalSeconds:0.0} s: {heldBy}");
        Assert.Equal(0, server.ExitCode);
    }

    // Reads a response stream to its end: the status it ended with (OK when it ended without an error).
    private static async Task<RpcException> ReadUntilEnd<T>(IAsyncStreamReader<T> stream)
    {
        try
        {
            while (await stream.MoveNext(CancellationToken.None))
            {
            }

            return new RpcException(Status.DefaultSuccess);
        }
        catch (RpcException ex)
        {
            return ex;
        }
    }
}
