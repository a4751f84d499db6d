using System.Collections.Concurrent;
using Segmentation.Core.Application.Audit;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Tests.Support;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>
/// A new journal file's name is made durable (its directory synced) once it exists, before what is fsynced into it
/// counts as written: a power loss after the file's own fsync could otherwise drop the whole file.
/// </summary>
public sealed class NewFileDirectorySyncTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-dirsync-").FullName;

    // For each sync of a directory under this test's data directory: the files in it at that moment.
    private readonly ConcurrentQueue<(string Directory, string[] Files)> _syncs = new();

    public NewFileDirectorySyncTests() => DataDirectory.DirectorySyncing += Observe;

    public void Dispose()
    {
        DataDirectory.DirectorySyncing -= Observe;
        Directory.Delete(_dir, recursive: true);
    }

    private void Observe(string directory)
    {
        var full = Path.GetFullPath(directory);
        if (full.StartsWith(_dir, StringComparison.Ordinal) && Directory.Exists(full))
        {
            _syncs.Enqueue((full, [.. Directory.EnumerateFileSystemEntries(full).Select(Path.GetFileName).OfType<string>()]));
        }
    }

    // True when the directory holding path was synced while the file was in it.
    private bool SyncedWith(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var name = Path.GetFileName(path);
        return _syncs.Any(s => s.Directory == directory && s.Files.Contains(name, StringComparer.Ordinal));
    }

    [Fact]
    public void A_new_decision_journal_file_is_followed_by_a_sync_of_its_directory()
    {
        using var world = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")), T0);
        using var journal = new DecisionJournalFile(_dir, world.Measurement, world.Catalogs, interval: TimeSpan.FromHours(1), outcomes: world.Outcomes);
        world.Decide("u-1");
        journal.Flush();

        var file = Assert.Single(DecisionJournalFile.Files(journal.Directory));
        Assert.True(SyncedWith(file.Path), "the decisions folder was not synced after its new file was created");
        Assert.True(SyncedWith(journal.Directory), "the data directory was not synced after the decisions folder was created");
    }

    [Fact]
    public void A_new_data_directory_and_each_missing_folder_above_it_are_made_durable()
    {
        var data = Path.Combine(_dir, "var", "segmentation"); // neither folder exists yet

        using (DataDirectory.Open(data))
        {
        }

        Assert.True(SyncedWith(Path.Combine(_dir, "var")), "the folder holding the new var folder was not synced");
        Assert.True(SyncedWith(data), "the folder holding the new data directory was not synced");
    }

    [Fact]
    public async Task Making_the_root_durable_returns_at_once()
    {
        // Regression: the walk up to an existing folder went past the root (its parent is null) and never ended.
        var made = Task.Run(() => DataDirectory.CreateDurably(Path.GetPathRoot(_dir)!));

        Assert.Same(made, await Task.WhenAny(made, Task.Delay(TimeSpan.FromSeconds(10))));
    }

    [Fact]
    public void Each_new_change_stream_segment_is_followed_by_a_sync_of_its_directory()
    {
        using (var journal = new ChangeStreamJournal(_dir, segmentBytes: 1))
        {
            journal.Append([new FeedEntry(1, "u-1", "seg", ChangeKind.Entered, T0, 1, "event:1", null)]);
            journal.Append([new FeedEntry(2, "u-2", "seg", ChangeKind.Entered, T0, 1, "event:2", null)]); // past the segment's size: a second file
        }

        var segments = Directory.GetFiles(_dir, "*.log", SearchOption.AllDirectories);
        Assert.Equal(2, segments.Length);
        Assert.True(SyncedWith(Path.GetDirectoryName(segments[0])!), "the data directory was not synced after the change stream's folder was created");
        Assert.All(segments, s => Assert.True(SyncedWith(s), $"{Path.GetFileName(s)} was not followed by a sync of its directory"));
    }

    [Fact]
    public void A_new_audit_trail_is_followed_by_a_sync_of_its_directory()
    {
        using (var journal = new AuditJournalFile(_dir))
        {
            new AdminAuditTrail(journal, new ManualClock(T0)).Record("ops", "catalog.publish", "OK", null, "");
        }

        Assert.True(SyncedWith(Path.Combine(_dir, AuditJournalFile.FileName)), "the data directory was not synced after the audit trail was created");
    }

    [Fact]
    public void The_catalog_versions_folder_is_followed_by_a_sync_of_the_data_directory()
    {
        // Regression: the folder was created without syncing the data directory: a power cut soon after the first
        // version was written could lose the folder, every kept version and the numbering with it.
        var files = TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")).ReadFiles();
        new CatalogVersionFiles(_dir).Save(new Core.Application.Catalogs.StoredCatalogVersion(new Core.Application.Catalogs.CatalogVersionInfo(1, T0, "api", "", null), files), new HashSet<long> { 1 });

        Assert.True(SyncedWith(Path.Combine(_dir, "catalogs")), "the data directory was not synced after the catalogs folder was created");
    }
}
