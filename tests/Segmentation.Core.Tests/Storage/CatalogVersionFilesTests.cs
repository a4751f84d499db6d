using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>Published catalog versions kept in a data directory: what comes back, what is trimmed, and a failed write.</summary>
public sealed class CatalogVersionFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-catalog-versions-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly IReadOnlyList<CatalogFile> Default = new EmbeddedCatalogSource().ReadFiles();

    private static InMemoryCatalogSource Renamed(string name) =>
        new([.. Default.Select(f => f.Text.Contains("name: default", StringComparison.Ordinal) ? f with { Text = f.Text.Replace("name: default", "name: " + name, StringComparison.Ordinal) } : f)], "api");

    [Fact]
    public void Versions_come_back_in_order_with_their_files_and_only_the_newest_kept_ones_stay_on_disk()
    {
        var first = new CatalogProvider();
        first.Start(new EmbeddedCatalogSource(), new CatalogVersionFiles(_dir));
        for (var i = 0; i < CatalogProvider.MaxHistory + 4; i++)
        {
            first.Load(Renamed("n" + i), "publish " + i);
        }

        var lastVersion = first.Current.Version;
        Assert.Equal(CatalogProvider.MaxHistory + 5, lastVersion);
        // The kept history, and the newest version from the start-up source (v1, the embedded catalog): what a restart compares with.
        Assert.Equal(CatalogProvider.MaxHistory + 1, Directory.GetFiles(Path.Combine(_dir, CatalogVersionFiles.DirectoryName), "v*.json").Length);

        var second = new CatalogProvider();
        var restored = second.Start(new EmbeddedCatalogSource(), new CatalogVersionFiles(_dir));
        Assert.Equal(lastVersion, restored.Version);
        Assert.Equal(first.Current.Name, restored.Name);
        Assert.Equal(first.History, second.History); // the kept window only

        var rolledBack = second.Rollback(null);
        Assert.Equal(lastVersion + 1, rolledBack.Version);
        Assert.Equal(first.History[1].Version, second.History[0].RolledBackFrom);
    }

    [Fact]
    public void A_kept_version_published_before_a_newer_check_still_starts_and_a_new_publish_of_it_is_refused()
    {
        // An upgrade added checks (here: a comparison with no value). The catalog active before the restart passed the
        // checks of its day: refusing it now would stop the server at start; publishing it anew is checked.
        var files = Support.TestCatalogs.Source(Support.TestCatalogs.Segment("tiered", "value", "{ field: traits.tier, ne: \"\" }")).ReadFiles();
        new CatalogVersionFiles(_dir).Save(new StoredCatalogVersion(new CatalogVersionInfo(7, DateTimeOffset.UtcNow, "api", "published before the check", null), files), new HashSet<long> { 7 });

        var provider = new CatalogProvider();
        var restored = provider.Start(new InMemoryCatalogSource(files, "api"), new CatalogVersionFiles(_dir));

        Assert.Equal(7, restored.Version);
        Assert.Contains(restored.Segments, s => s.Id == "tiered");
        var refused = Assert.Throws<CatalogException>(() => provider.Load(new InMemoryCatalogSource(files, "api"), "again"));
        Assert.Contains(refused.Errors, e => e.Message.Contains("needs a value", StringComparison.Ordinal));
    }

    [Fact]
    public void A_restart_with_the_same_files_is_not_a_new_deployment_after_an_experiment_was_kept_ended()
    {
        var clock = new Support.ManualClock(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
                var source = Experiments.ExperimentCatalogTests.Source(Experiments.ExperimentCatalogTests.Experiment);
        var first = new CatalogProvider(clock);
        var v1 = first.Start(source, new CatalogVersionFiles(_dir));
        var experiment = v1.Experiments.Single();
        var stopped = v1.Files.Select(f => f.Name == experiment.Node.At.File ? f with { Text = CatalogText.SetScalar(f.Text, experiment.Node, "stop", CatalogText.Instant(clock.Now)) } : f).ToList();
        first.Load(new InMemoryCatalogSource(stopped, "api"), "stop", v1.Version); // v2: stopped through the API
        clock.Now += TimeSpan.FromHours(1);
        var changed = new InMemoryCatalogSource([.. source.ReadFiles().Select(f => f.Name == "fallback.yaml" ? f with { Text = f.Text + "\n# edited\n" } : f)]);
        Assert.Contains("kept ended", first.Load(changed, "file change") is { Version: 3 } ? first.History[0].Comment : "", StringComparison.Ordinal);
        first.Load(new InMemoryCatalogSource(first.Current.Files, "api"), "published after", 3); // v4

        // The same files again: v4 stays active and nothing is published.
        var second = new CatalogProvider(clock);
        Assert.Equal(4, second.Start(changed, new CatalogVersionFiles(_dir)).Version);
        Assert.Equal(4, second.History[0].Version);

        // Files that start the experiment again after it ended, under the same id, are refused and say why.
        var again = Experiments.ExperimentCatalogTests.Experiment.Replace("    primary_metric:", "    start: 2026-07-01T00:00:00Z\n    primary_metric:", StringComparison.Ordinal);
        var refused = Assert.Throws<CatalogException>(() => new CatalogProvider(clock).Start(Experiments.ExperimentCatalogTests.Source(again), new CatalogVersionFiles(_dir)));
        Assert.Contains("a new run takes a new id", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_restart_with_the_same_files_after_their_own_stop_time_has_passed_is_not_a_new_deployment()
    {
        // Regression (review): whether the files are those of the version that kept an experiment ended was judged at the
        // restart's time: once the files' own stop time had passed they ended it themselves, nothing was kept, they differed
        // from that version's edited copy, and were published as a new deployment over a version published through the API.
        var clock = new Support.ManualClock(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
        var withStop = Experiments.ExperimentCatalogTests.Experiment.Replace("    primary_metric:", "    stop: 2026-07-01T00:00:00Z\n    primary_metric:", StringComparison.Ordinal);
        var source = Experiments.ExperimentCatalogTests.Source(withStop);
        var first = new CatalogProvider(clock);
        var v1 = first.Start(source, new CatalogVersionFiles(_dir));
        var experiment = v1.Experiments.Single();
        var stopped = v1.Files.Select(f => f.Name == experiment.Node.At.File ? f with { Text = CatalogText.SetScalar(f.Text, experiment.Node, "stop", CatalogText.Instant(clock.Now)) } : f).ToList();
        first.Load(new InMemoryCatalogSource(stopped, "api"), "stop", v1.Version); // v2: stopped early through the API
        clock.Now += TimeSpan.FromHours(1);
        var changed = new InMemoryCatalogSource([.. source.ReadFiles().Select(f => f.Name == "fallback.yaml" ? f with { Text = f.Text + "\n# edited\n" } : f)]);
        Assert.Contains("kept ended", first.Load(changed, "file change") is { Version: 3 } ? first.History[0].Comment : "", StringComparison.Ordinal);
        first.Load(new InMemoryCatalogSource(first.Current.Files, "api"), "published after", 3); // v4

        clock.Now = new DateTimeOffset(2026, 7, 2, 0, 0, 0, TimeSpan.Zero); // past the files' own stop
        var second = new CatalogProvider(clock);
        Assert.Equal(4, second.Start(changed, new CatalogVersionFiles(_dir)).Version);
        Assert.Equal(4, second.History[0].Version);
    }

    [Fact]
    public void A_rollback_to_the_start_up_source_survives_a_restart_of_the_same_deployment()
    {
        var deployed = new InMemoryCatalogSource(Renamed("deployed").ReadFiles(), "directory:/catalog");
        var first = new CatalogProvider();
        first.Start(new InMemoryCatalogSource(Default, "directory:/catalog"), new CatalogVersionFiles(_dir)); // v1: the old deployment
        var second = new CatalogProvider();
        Assert.Equal(2, second.Start(deployed, new CatalogVersionFiles(_dir)).Version); // v2: a new deployment (changed files)
        Assert.Equal(3, second.Rollback(1).Version); // the operator rolls the bad deployment back

        var third = new CatalogProvider();
        var active = third.Start(deployed, new CatalogVersionFiles(_dir)); // the same deployment restarts
        Assert.Equal(3, active.Version); // the rollback stays; the deployed files are not published again
        Assert.Equal("default", active.Name);
    }

    [Fact]
    public void A_version_that_cannot_be_written_is_not_published()
    {
        var store = new FailingStore();
        var provider = new CatalogProvider();
        var v1 = provider.Start(new EmbeddedCatalogSource(), store);
        store.Fail = true;

        Assert.Throws<IOException>(() => provider.Load(Renamed("never"), "disk full"));
        Assert.Same(v1, provider.Current);
        Assert.Single(provider.History);

        store.Fail = false;
        Assert.Equal(2, provider.Load(Renamed("later"), "after the disk was freed").Version); // the failed publish used no number
    }

    [Fact]
    public void A_publish_that_failed_after_its_file_was_in_place_is_not_active_after_a_restart()
    {
        // Regression: the file was renamed into place, then syncing its folder failed: the publish failed (the caller was
        // told UNAVAILABLE and the old version kept serving), but the file stayed and the next start made it active.
        var catalogs = Path.GetFullPath(Path.Combine(_dir, CatalogVersionFiles.DirectoryName));
        var fail = false;
        void Refuse(string directory)
        {
            if (fail && Path.GetFullPath(directory) == catalogs)
            {
                throw new IOException("Input/output error");
            }
        }

        var first = new CatalogProvider();
        var v1 = first.Start(new EmbeddedCatalogSource(), new CatalogVersionFiles(_dir));
        DataDirectory.DirectorySyncing += Refuse;
        try
        {
            fail = true;
            Assert.ThrowsAny<IOException>(() => first.Load(Renamed("failed"), "a publish whose folder could not be synced"));
        }
        finally
        {
            DataDirectory.DirectorySyncing -= Refuse;
        }

        Assert.Same(v1, first.Current);
        var restarted = new CatalogProvider().Start(new EmbeddedCatalogSource(), new CatalogVersionFiles(_dir));
        Assert.Equal(v1.Version, restarted.Version);
        Assert.Equal(v1.Name, restarted.Name);
    }

    [Fact]
    public void A_damaged_version_file_stops_the_start_with_its_path()
    {
        new CatalogProvider().Start(new EmbeddedCatalogSource(), new CatalogVersionFiles(_dir));
        var path = Directory.GetFiles(Path.Combine(_dir, CatalogVersionFiles.DirectoryName), "v*.json").Single();
        File.WriteAllText(path, "{ \"version\": 1, ");

        var ex = Assert.Throws<StoreDamagedException>(() => new CatalogProvider().Start(new EmbeddedCatalogSource(), new CatalogVersionFiles(_dir)));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    private sealed class FailingStore : ICatalogVersionStore
    {
        public bool Fail { get; set; }

        public IReadOnlyList<StoredCatalogVersion> Load() => [];

        public void Save(StoredCatalogVersion version, IReadOnlySet<long> keep)
        {
            if (Fail)
            {
                throw new IOException("No space left on device");
            }
        }
    }
}
