namespace Segmentation.Server.Tests;

/// <summary>
/// The container image the SDK builds (<c>dotnet publish -t:PublishContainer</c>), as MSBuild evaluates the server
/// project: a chiselled base, a non-root user, the two ports and the endpoints behind them. Building the image itself
/// needs the base image from mcr.microsoft.com, which this machine cannot reach; see the README's Deploy section.
/// </summary>
public sealed class ContainerImageTests
{
    [Fact]
    public async Task The_image_is_chiselled_non_root_and_serves_grpc_and_http_on_their_own_ports()
    {
        var project = Path.Combine(ExternalTools.RepoRoot, "src", "Segmentation.Server", "Segmentation.Server.csproj");
        var (exit, stdout, stderr) = await ExternalTools.Run(
            "dotnet",
            $"msbuild \"{project}\" -getProperty:ContainerBaseImage -getProperty:ContainerUser -getProperty:ContainerRepository -getItem:ContainerPort -getItem:ContainerEnvironmentVariable",
            ExternalTools.RepoRoot,
            TimeSpan.FromMinutes(2));
        Assert.True(exit == 0, stderr + stdout);

        using var json = System.Text.Json.JsonDocument.Parse(stdout);
        var properties = json.RootElement.GetProperty("Properties");
        Assert.Contains("chiseled", properties.GetProperty("ContainerBaseImage").GetString(), StringComparison.Ordinal);

        // Regression (review): the plain chiselled image has no time zone data, so every named zone (a contact policy's,
        // a user's time_zone trait, a country's) was refused or taken as UTC; the "extra" variant carries tzdata.
        Assert.EndsWith("-chiseled-extra", properties.GetProperty("ContainerBaseImage").GetString(), StringComparison.Ordinal);
        Assert.Equal("app", properties.GetProperty("ContainerUser").GetString()); // non-root (uid 1654 in the .NET images)
        Assert.Equal("segmentation-grpc", properties.GetProperty("ContainerRepository").GetString());

        var items = json.RootElement.GetProperty("Items");
        Assert.Equal(["8080", "8081"], items.GetProperty("ContainerPort").EnumerateArray().Select(p => p.GetProperty("Identity").GetString()).Order());
        var environment = items.GetProperty("ContainerEnvironmentVariable").EnumerateArray()
            .ToDictionary(e => e.GetProperty("Identity").GetString()!, e => e.GetProperty("Value").GetString());
        Assert.Equal("http://+:8080", environment["Kestrel__Endpoints__Grpc__Url"]);
        Assert.Equal("Http2", environment["Kestrel__Endpoints__Grpc__Protocols"]);
        Assert.Equal("http://+:8081", environment["Kestrel__Endpoints__Http__Url"]);
        Assert.Equal("Http1", environment["Kestrel__Endpoints__Http__Protocols"]);
    }
}
