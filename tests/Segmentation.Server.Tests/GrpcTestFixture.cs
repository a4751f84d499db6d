using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Segmentation.Server.Tests;

/// <summary>Hosts the real app in memory (with the default catalog and the demo import) and calls it over a real GrpcChannel.</summary>
public sealed class GrpcTestFixture : WebApplicationFactory<Program>
{
    private GrpcChannel? _channel;

    public GrpcChannel Channel => _channel ??= GrpcChannel.ForAddress(Server.BaseAddress, new GrpcChannelOptions { HttpHandler = Server.CreateHandler() });

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("Segmentation:DemoData", "true");
    }

    protected override void Dispose(bool disposing)
    {
        _channel?.Dispose();
        base.Dispose(disposing);
    }
}
