using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>A caller that resets its stream is the caller's doing: never reported as the service's storage failing.</summary>
public sealed class CallerResetTests
{
    [Fact]
    public async Task Streams_the_caller_resets_are_not_logged_as_storage_failures()
    {
        // Regression: Kestrel fails the read of a stream the client reset with an IOException before it cancels the call,
        // and that IOException was taken for a write the data directory refused ("A write in StreamEvents failed in
        // storage: The client reset the request stream"), logged as a warning and answered UNAVAILABLE. Rounds of 1,000 streams,
        // each reset after its first answer (some while the server reads): one round reproduced it in four runs of five.
        var answered = 0;
        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            for (var round = 0; round < 3; round++)
            {
                // A connection per round: Kestrel refuses new streams (ENHANCE_YOUR_CALM) on a connection whose reset
                // streams' handlers have not all ended, as they may not have on a loaded machine.
                using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
                var client = new ProfileService.ProfileServiceClient(channel);
                var streams = Enumerable.Range(round * 1000, 1000).Select(async i =>
                {
                    using var cts = new CancellationTokenSource();
                    using var call = client.StreamEvents(cancellationToken: cts.Token);
                    try
                    {
                        for (var j = 0; j < 20; j++)
                        {
                            await call.RequestStream.WriteAsync(new StreamEventsRequest { Event = new Event { EventId = $"e{i}-{j}", Type = "page_view", UserId = $"u{i}", Timestamp = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow), Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s", PageType = "home" } } });
                        }

                        await call.ResponseStream.MoveNext();
                        Interlocked.Increment(ref answered);
                        if (i % 2 == 0)
                        {
                            await Task.Delay(i % 7);
                        }

                        await cts.CancelAsync();
                    }
                    catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled || ex.Message.Contains("ENHANCE_YOUR_CALM", StringComparison.Ordinal))
                    {
                        // the reset, seen by this client; or a stream (or its connection) the server's flood protection
                        // refused, not counted
                    }
                });
                await Task.WhenAll(streams);
            }

            await Task.Delay(2000); // the server's handlers of the last streams end and log
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        Assert.True(answered >= 1500, $"only {answered} of 3,000 streams were answered before their reset");
        var log = RealServerProcessTests.OutputOf(server);
        Assert.True(!log.Contains("failed in storage", StringComparison.Ordinal), string.Join('\n', log.Split('\n').Where(l => l.Contains("storage", StringComparison.Ordinal)).Take(3)));
        Assert.DoesNotContain("Unhandled", log, StringComparison.Ordinal);
        Assert.Contains("Now listening", log, StringComparison.Ordinal); // the log was read
    }
}
