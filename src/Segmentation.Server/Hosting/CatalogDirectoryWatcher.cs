using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;

namespace Segmentation.Server.Hosting;

/// <summary>
/// When the catalog comes from a directory, watches it: a saved change (catalog YAML or templates in
/// it) is validated and published; an invalid change is rejected with every error logged, and the
/// last good catalog keeps serving. The directory is fingerprinted (names, sizes, modification times)
/// every <see cref="PollInterval"/>, which works the same on every file system and in containers;
/// a change is loaded once the files have been stable for one more interval (editors save in steps).
/// </summary>
internal sealed class CatalogDirectoryWatcher(IOptions<SegmentationOptions> options, CatalogProvider catalogs, ServiceHealth health, ILogger<CatalogDirectoryWatcher> logger)
    : SupervisedBackgroundService(health, logger)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    protected override string Job => "catalog directory watch";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        var path = options.Value.CatalogPath;
        if (string.IsNullOrWhiteSpace(path))
        {
            return; // the embedded catalog does not change
        }

        var loaded = Fingerprint(path);
        var pending = loaded;
        using var timer = new PeriodicTimer(PollInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = Fingerprint(path);
            if (now == loaded)
            {
                pending = now;
                continue;
            }

            if (now != pending)
            {
                pending = now; // still changing: wait until stable
                continue;
            }

            loaded = now;
            try
            {
                var snapshot = catalogs.Load(new DirectoryCatalogSource(path), "file change", stoppingToken);
                logger.LogInformation("Catalog directory changed: published v{Version} ({Count} segments)", snapshot.Version, snapshot.Segments.Count);
            }
            catch (CatalogException ex)
            {
                logger.LogError("Catalog directory changed but the new catalog was rejected; v{Version} keeps serving. {Errors}", catalogs.Current.Version, ex.Message);
            }
            catch (IOException ex)
            {
                logger.LogWarning("Catalog directory could not be read ({Reason}); will retry", ex.Message);
                loaded = string.Empty;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A catalog the loader could not even report on is rejected like any bad catalog: the service goes on.
                logger.LogError("Catalog directory changed but loading it failed ({Error}); v{Version} keeps serving", ex.GetType().Name, catalogs.Current.Version);
            }
        }
    }

    private static string Fingerprint(string path)
    {
        if (!Directory.Exists(path))
        {
            return "missing";
        }

        return string.Join('|', Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(f => new FileInfo(f))
            .Select(f => $"{f.FullName}:{f.Length}:{f.LastWriteTimeUtc.Ticks}"));
    }
}
