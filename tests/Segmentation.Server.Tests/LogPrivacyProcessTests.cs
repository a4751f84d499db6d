using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>User ids never reach the log at Information level or above (Production settings, the real process).</summary>
public sealed class LogPrivacyProcessTests
{
    [Fact]
    public async Task Looking_up_or_erasing_a_user_writes_no_user_id_to_the_log()
    {
        const string user = "erased-user-7f3a91";
        var port = RealServerProcessTests.FreePort();
        using var server = RealServerProcessTests.StartServer(port, "--Segmentation:DemoData=false");
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
    }
}
