using Microsoft.Extensions.DependencyInjection;
using Segmentation.Storage;

namespace Segmentation.Server.Tests;

/// <summary><c>Segmentation:HoldCollectorDuringRestore</c> reaches the data directory's snapshot restore.</summary>
public sealed class RestoreCollectorHoldSettingTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-hold-host-").FullName;

    public void Dispose()
    {
        foreach (var host in Directory.EnumerateDirectories(_dir))
        {
            GrpcTestFixture.WaitUntilUnlocked(host); // the host's files closed
        }

        Directory.Delete(_dir, recursive: true);
    }

    [Theory]
    [InlineData(null, RestoreCollectorHold.MinSnapshotBytes)]
    [InlineData("true", RestoreCollectorHold.MinSnapshotBytes)]
    [InlineData("false", long.MaxValue)]
    public void The_setting_turns_the_hold_on_by_default_and_off_when_false(string? setting, long holdFrom)
    {
        using var server = GrpcTestFixture.DurableServer(Path.Combine(_dir, setting ?? "default"), Key).WithWebHostBuilder(b =>
        {
            if (setting is not null)
            {
                b.UseSetting("Segmentation:HoldCollectorDuringRestore", setting);
            }
        });
        var files = server.Services.GetRequiredService<DurableStorage>().Store!;
        Assert.Equal(holdFrom, files.Compactor.CollectorHoldFrom);
    }
}
