using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>
/// The log stays small and free of personal data whatever callers send (Production settings, the real
/// process): no user id at Information level or above, and nothing above Debug for client errors.
/// </summary>
public sealed class LogPrivacyProcessTests
{
    [Fact]
    public async Task Looking_up_or_erasing_a_user_writes_no_user_id_to_the_log()
    {
        const string user = "erased-user-7f3a91";
        var port = RealServerProcessTests.FreePort();
        var httpPort = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false", $"--Kestrel:Endpoints:Http:Url=http://127.0.0.1:{httpPort}");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            var profiles = new ProfileService.ProfileServiceClient(channel);
            var privacy = new PrivacyService.PrivacyServiceClient(channel);
            await privacy.ForgetUserAsync(new ForgetUserRequest { UserId = user });
            var notFound = await Assert.ThrowsAsync<RpcException>(async () => await profiles.GetProfileAsync(new GetProfileRequest { UserId = user }));
            Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
            var notExported = await Assert.ThrowsAsync<RpcException>(async () => await privacy.ExportUserAsync(new ExportUserRequest { UserId = user }));
            Assert.Equal(StatusCode.NotFound, notExported.StatusCode);

            // Regression: over HTTP/JSON, transcoding logged every error status with its detail at Information
            // ("Error status code 'NotFound' with detail '… erased-user-7f3a91 …' raised."), and a malformed body
            // with a stack trace.
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
            http.DefaultRequestHeaders.Add("x-api-key", RealServerProcessTests.ApiKey);
            using (var response = await http.GetAsync(new Uri($"/v1/users/{user}/profile", UriKind.Relative)))
            {
                Assert.Equal(System.Net.HttpStatusCode.NotFound, response.StatusCode);
            }

            using (var response = await http.PostAsync(new Uri("/v1/decide", UriKind.Relative), new StringContent("{\"userId\":", System.Text.Encoding.UTF8, "application/json")))
            {
                Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
            }

            await Task.Delay(500); // let the console logger flush
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        var log = RealServerProcessTests.OutputOf(server);
        Assert.Contains("Now listening", log); // the log was captured
        Assert.DoesNotContain(user, log);
        Assert.DoesNotContain("JsonTranscoding", log, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", log, StringComparison.Ordinal); // no stack trace
    }

    [Fact]
    public async Task Unauthenticated_garbage_and_a_cancelled_stream_write_nothing_above_debug()
    {
        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false");
        try
        {
            await RealServerProcessTests.WaitUntilListening(server, port);
            var bytes = Marshallers.Create<byte[]>(b => b, b => b);
            var decide = new Method<byte[], byte[]>(MethodType.Unary, "segmentation.v1.DecisionService", "Decide", bytes, bytes);
            using (var anonymous = GrpcChannel.ForAddress($"http://127.0.0.1:{port}"))
            {
                for (var i = 0; i < 20; i++)
                {
                    var rejected = await Assert.ThrowsAsync<RpcException>(async () => await anonymous.CreateCallInvoker().AsyncUnaryCall(decide, null, default, [0x0A, 0xFF]));
                    Assert.Equal(StatusCode.Unauthenticated, rejected.StatusCode);
                }
            }

            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = ApiKeyHandler.For(RealServerProcessTests.ApiKey) });
            var malformed = await Assert.ThrowsAsync<RpcException>(async () => await channel.CreateCallInvoker().AsyncUnaryCall(decide, null, default, [0x0A, 0xFF]));
            Assert.Equal(StatusCode.InvalidArgument, malformed.StatusCode);

            using var cancel = new CancellationTokenSource();
            using var stream = new ProfileService.ProfileServiceClient(channel).StreamEvents(cancellationToken: cancel.Token);
            await stream.RequestStream.WriteAsync(new StreamEventsRequest
            {
                Event = new Event
                {
                    EventId = "cancel-e1",
                    Type = "page_view",
                    UserId = "u1",
                    Timestamp = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(-1)),
                    Context = new EventContext { Source = "web", Device = "desktop", SessionId = "s1", PageType = "home" },
                },
            });
            Assert.True(await stream.ResponseStream.MoveNext());
            await cancel.CancelAsync();
            await Task.Delay(1000); // let the server notice and flush its log
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        var log = RealServerProcessTests.OutputOf(server).Split('\n');
        Assert.Contains(log, l => l.Contains("Now listening", StringComparison.Ordinal));
        // Warnings other than the security report's are loud too, except Kestrel's heartbeat one (event 22), which says the
        // machine was starved of CPU, not that the server did anything wrong.
        var loud = log.Where(l => l.StartsWith("fail:", StringComparison.Ordinal) || l.StartsWith("crit:", StringComparison.Ordinal)
            || (l.StartsWith("warn:", StringComparison.Ordinal) && !l.Contains("SecurityStartupReport", StringComparison.Ordinal) && !l.Contains("Microsoft.AspNetCore.Server.Kestrel[22]", StringComparison.Ordinal))).ToList();
        Assert.True(loud.Count == 0, string.Join('\n', loud));
        Assert.DoesNotContain(log, l => l.Contains("   at ", StringComparison.Ordinal)); // no stack traces
    }
}
