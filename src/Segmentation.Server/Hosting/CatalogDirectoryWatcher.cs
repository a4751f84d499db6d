using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;

namespace Segmentation.Server.Hosting;

/// <summary>
/// When the catalog comes from a directory, watches it: a saved change (catalog YAML or templates in
/// it) is validated and published; an invalid change is rejected with every error logged, and the
/// last good catalog keeps serving; a save that leaves the files as they were publishes nothing. The directory's catalog
/// files are fingerprinted (names, sizes, modification times) every <see cref="PollInterval"/>, which works the same on every file system and in containers;
/// a change is loaded once the files have been stable for one more interval (editors save in steps). A version the
/// data directory cannot keep fails the job (health reports it; it retries after a backoff and reads the files again).
/// </summary>
internal sealed class CatalogDirectoryWatcher(IOptions<SegmentationOptions> options, CatalogProvider catalogs, ICatalogSource startupSource, ServiceHealth health, ILogger<CatalogDirectoryWatcher> logger)
    : SupervisedBackgroundService(health, logger)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    private string? _unreadable; // why the last polls could not read the directory (logged once per reason, reported as degraded)
    private IReadOnlyList<CatalogFile>? _published; // the files of the last version this directory published, as far as known

    protected override string Job => "catalog directory watch";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        var path = options.Value.CatalogPath;
        if (string.IsNullOrWhiteSpace(path))
        {
            return; // the embedded catalog does not change
        }

        // A poll that cannot read the directory (a file removed while it is listed, as editors, rsync and Kubernetes
        // config map updates do; a folder without access, a link that leads nowhere or to itself) is skipped: the next one
        // reads it again, nothing is taken as loaded meanwhile, and the job never fails for it (a failed job would report
        // the service not ready). Health reports it degraded until a poll reads the directory, and each reason is logged once.
        var loaded = (startupSource as CatalogDirectorySource)?.ReadFrom ?? FirstFingerprint(path);
        _published ??= (startupSource as CatalogDirectorySource)?.LastRead; // kept across the job's restarts
        var pending = loaded;
        using var timer = new PeriodicTimer(PollInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (TryFingerprint(path) is not { } now)
            {
                continue;
            }

            if (now == loaded)
            {
                CouldRead(); // the files serving, as they were read
                pending = now;
                continue;
            }

            if (now != pending)
            {
                pending = now; // still changing: wait until stable
                continue;
            }

            var directory = new DirectoryCatalogSource(path);
            IReadOnlyList<CatalogFile> files;
            try
            {
                files = directory.ReadFiles();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                CouldNotRead(ex);
                loaded = string.Empty; // read again at the next poll (an access granted changes no fingerprint)
                continue;
            }
            catch (CatalogException ex)
            {
                // The directory gone (moved away, a checkout that removed it) or holding no catalog: rejected like any bad
                // catalog, the last good one keeps serving, and the directory's next state is read as it comes.
                logger.LogError("Catalog directory changed but holds no catalog that can be read; v{Version} keeps serving. {Errors}", catalogs.Current.Version, ex.Message);
                CouldRead(); // what it holds was read: the log above says what is wrong with it
                loaded = now;
                continue;
            }

            CouldRead();
            loaded = now;
            if (_published is not null && files.SequenceEqual(_published))
            {
                Succeeded(); // the job is healthy again (after a failed publish of other files, these are the ones serving)
                continue; // saved as they were (touched, or an edit undone): the same catalog would be published again
            }

            try
            {
                // A version the data directory cannot keep (a full disk) fails the job: health reports it and the job starts
                // again after its backoff, reading the directory again (a poll every 500 ms compiled and refused it each time).
                var snapshot = catalogs.Load(new InMemoryCatalogSource(files, directory.Origin), "file change", stoppingToken);
                _published = files;
                logger.LogInformation("Catalog directory changed: published v{Version} ({Count} segments)", snapshot.Version, snapshot.Segments.Count);
                Succeeded();
            }
            catch (CatalogException ex)
            {
                logger.LogError("Catalog directory changed but the new catalog was rejected; v{Version} keeps serving. {Errors}", catalogs.Current.Version, ex.Message);
                Succeeded();
            }
            catch (Exception ex) when (ex is not OperationCanceledException && !IsStorageFailure(ex))
            {
                // A catalog the loader could not even report on is rejected like any bad catalog: the service goes on.
                logger.LogError("Catalog directory changed but loading it failed ({Error}); v{Version} keeps serving", ex.GetType().Name, catalogs.Current.Version);
            }
        }
    }

    // Without the start-up read's fingerprint (another source registered, or the directory could not be listed then):
    // the directory as the watcher first reads it; when it cannot be read then, nothing is taken as loaded: the first
    // state read is loaded (an edit made while it could not be read is not taken for the files the service started with).
    private string FirstFingerprint(string path) => TryFingerprint(path) ?? string.Empty;

    // Names, sizes and modification times of every file, or null when the directory could not be read this time.
    private string? TryFingerprint(string path)
    {
        try
        {
            return CatalogDirectorySource.Fingerprint(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            CouldNotRead(ex);
            return null;
        }
    }

    // Logged once per reason (a poll every 500 ms would otherwise log the same one twice a second) and reported as degraded.
    private void CouldNotRead(Exception ex)
    {
        var reason = $"{ex.GetType().Name}: {ex.Message}";
        if (reason == _unreadable)
        {
            return;
        }

        logger.LogWarning("Catalog directory could not be read ({Reason}); v{Version} keeps serving and the directory is read again at every poll", reason, catalogs.Current.Version);
        Degraded($"the catalog directory could not be read ({reason}); v{catalogs.Current.Version} keeps serving and edits are not published until it can be");
        _unreadable = reason;
    }

    private void CouldRead()
    {
        if (_unreadable is null)
        {
            return;
        }

        logger.LogInformation("Catalog directory can be read again");
        NoLongerDegraded();
        _unreadable = null;
    }
}
