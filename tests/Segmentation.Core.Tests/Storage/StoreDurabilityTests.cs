using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Segmentation.Core.Application.ChangeStream;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>
/// What the durable store promises whatever the operator or the disk does: one process per directory, a
/// full disk that costs availability but never data, missing files noticed, the key checked, and a restart
/// that reproduces every profile exactly as it was acknowledged.
/// </summary>
public sealed class StoreDurabilityTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-durable-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static BehaviourEvent Event(string id, string user, string type, DateTimeOffset at, double value = 0, string anonymous = "") => TestEvents.Make(id, user, type, at, value, anonymous);

    private bool AnyFileContains(string text)
    {
        var needle = Encoding.UTF8.GetBytes(text);
        return Directory.EnumerateFiles(_dir)
            .Where(f => Path.GetFileName(f) != DataDirectory.LockName)
            .Any(f => File.ReadAllBytes(f).AsSpan().IndexOf(needle) >= 0);
    }

    [Fact]
    public void A_data_directory_that_is_a_file_is_refused_saying_so()
    {
        var file = Path.Combine(_dir, "not-a-directory");
        File.WriteAllText(file, "someone else's file");

        var ex = Assert.Throws<IOException>(() => new Durable(file, Key));
        Assert.Contains($"the data directory {file} is a file, not a directory", ex.Message, StringComparison.Ordinal);
        Assert.Equal("someone else's file", File.ReadAllText(file)); // left as it was
    }

    [Fact]
    public void A_second_store_on_the_same_directory_is_refused_naming_the_holder()
    {
        using var first = new Durable(_dir, Key);
        first.Restore();

        var ex = Assert.Throws<DataDirectoryLockedException>(() => new Durable(_dir, Key));
        Assert.Contains($"process {Environment.ProcessId}", ex.Message);
        Assert.Contains(_dir, ex.Message);

        first.Dispose();
        using var second = new Durable(_dir, Key); // released with the first store
        second.Restore();
    }

    [Fact]
    public async Task A_deleted_snapshot_stops_start_up_naming_it_until_the_loss_is_accepted()
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
            await first.Compactor.CompactAsync();
            first.World.Ingestion.Track(Event("e2", "u2", EventTypes.PageView, Start));
        }

        var snapshot = ProfileSnapshotFile.Find(_dir).Single().Path;
        File.Delete(snapshot);

        var ex = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, Key));
        Assert.Contains(Path.GetFileName(snapshot), ex.Message);
        Assert.Contains("AcceptDataLoss", ex.Message);

        using (var accepted = new Durable(_dir, Key, acceptDataLoss: true))
        {
            accepted.Restore();
            Assert.Null(accepted.World.Store.Get("u1")); // lost with the snapshot
            Assert.NotNull(accepted.World.Store.Get("u2")); // in the log after it
            await accepted.Compactor.CompactAsync();
        }

        using var next = new Durable(_dir, Key); // consistent again: no override needed
        next.Restore();
        Assert.NotNull(next.World.Store.Get("u2"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_sealed_segment_cut_or_grown_starts_with_the_loss_accepted_and_then_without_it(bool grown)
    {
        // Regression (review): the override rewrote the manifest with the damaged length and the replay then refused the
        // segment (a torn frame before later segments), at that start and every one after it; a segment grown by whole
        // frames replayed writes that came after it was sealed.
        using (var first = new Durable(_dir, Key, Start))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
            first.World.Ingestion.Track(Event("e2", "u2", EventTypes.PageView, Start));
            first.Log.Rotate();
            first.World.Ingestion.Track(Event("e3", "u3", EventTypes.PageView, Start));
        }

        var sealedPath = FileChangeLog.SegmentPath(_dir, 1);
        var lastPath = FileChangeLog.SegmentPath(_dir, 2);
        if (grown)
        {
            File.AppendAllBytes(sealedPath, File.ReadAllBytes(lastPath)); // u3's write, after the seal
            File.WriteAllBytes(lastPath, []);
        }
        else
        {
            File.WriteAllBytes(sealedPath, File.ReadAllBytes(sealedPath)[..^3]); // u2's write cut short
        }

        Assert.Contains("cut or grown", Assert.Throws<StoreDamagedException>(() => new Durable(_dir, Key, Start)).Message);
        using (var accepted = new Durable(_dir, Key, Start, acceptDataLoss: true))
        {
            accepted.Restore();
            Assert.NotNull(accepted.World.Store.Get("u1"));
            Assert.Equal(grown, accepted.World.Store.Get("u2") is not null); // cut: lost with the tail
            Assert.Equal(!grown, accepted.World.Store.Get("u3") is not null); // grown: written after the seal, not replayed
            Assert.NotEmpty(accepted.Files.Lost);
        }

        using var next = new Durable(_dir, Key, Start); // consistent again: no override needed
        next.Restore();
        Assert.NotNull(next.World.Store.Get("u1"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void A_missing_log_segment_stops_start_up_naming_it(long missing)
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            for (var i = 0; i < 3; i++)
            {
                first.World.Ingestion.Track(Event($"e{i}", $"u{i}", EventTypes.PageView, Start));
                first.Log.Rotate();
            }
        }

        Assert.Equal([1L, 2, 3, 4], FileChangeLog.Segments(_dir));
        File.Delete(FileChangeLog.SegmentPath(_dir, missing));

        var ex = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, Key));
        Assert.Contains(Path.GetFileName(FileChangeLog.SegmentPath(_dir, missing)), ex.Message);
    }

    [Fact]
    public void The_only_log_segment_of_a_store_without_a_snapshot_deleted_stops_start_up()
    {
        // Regression: before the first compaction (no snapshot yet) a missing segment was taken for a fresh directory's
        // not yet created one; the start created an empty segment and served an empty store without a word.
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
        }

        Assert.Equal([1L], FileChangeLog.Segments(_dir));
        File.Delete(FileChangeLog.SegmentPath(_dir, 1));

        var ex = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, Key));
        Assert.Contains(Path.GetFileName(FileChangeLog.SegmentPath(_dir, 1)), ex.Message);
    }

    [Fact]
    public void A_manifest_an_earlier_version_wrote_before_its_first_segment_starts_fresh()
    {
        // The review of the fix above: the earlier version wrote the manifest first; a first start that stopped before
        // creating the segment (an invalid catalog) left a manifest naming segment 1, which is no loss: nothing was written.
        File.WriteAllText(Path.Combine(_dir, DataDirectory.ManifestName), """
            { "format": 1, "createdAt": "2026-11-01T00:00:00+00:00", "keyCheck": null, "snapshot": 0, "firstSegment": 1, "lastSegment": 1 }
            """);

        using (var fresh = new Durable(_dir, Key))
        {
            fresh.Restore();
            fresh.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
        }

        File.Delete(FileChangeLog.SegmentPath(_dir, 1)); // from now on a lost segment is noticed
        Assert.Throws<StoreDamagedException>(() => new Durable(_dir, Key));
    }

    [Fact]
    public void A_first_start_that_stopped_before_its_manifest_was_written_starts_fresh()
    {
        // The first segment is created before the manifest: a crash between the two leaves that empty segment alone.
        File.Create(FileChangeLog.SegmentPath(_dir, 1)).Dispose();

        using var fresh = new Durable(_dir, Key);
        fresh.Restore();
        fresh.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
        Assert.NotNull(fresh.World.Store.Get("u1"));
    }

    [Fact]
    public void A_sealed_segment_cut_at_a_record_boundary_is_noticed()
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
            first.World.Ingestion.Track(Event("e2", "u1", EventTypes.PageView, Start.AddMinutes(1)));
            first.Log.Rotate();
        }

        // Keep only the first record: a clean cut that no checksum can see.
        var path = FileChangeLog.SegmentPath(_dir, 1);
        var bytes = File.ReadAllBytes(path);
        var first1 = 8 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        File.WriteAllBytes(path, bytes[..first1]);

        var ex = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, Key));
        Assert.Contains("changes-00000001.log (cut or grown", ex.Message);
    }

    [Fact]
    public void A_wrong_key_is_refused_even_before_any_personal_data_was_written()
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start)); // no PII anywhere
        }

        var ex = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, RandomNumberGenerator.GetBytes(32)));
        Assert.Contains("encryption key does not match", ex.Message);

        using var right = new Durable(_dir, Key);
        right.Restore();
        Assert.NotNull(right.World.Store.Get("u1"));
    }

    [Fact]
    public void Without_a_manifest_a_wrong_key_fails_the_restore_without_locking_the_right_key_out()
    {
        // A directory whose manifest was deleted (as the error for an unreadable one suggests) or that predates manifests:
        // nothing names its key. A start with the wrong key recorded that key before the restore failed, so the start with
        // the right one was refused as "key does not match".
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            first.World.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["email"] = "ada@example.org" }, "checkout", AttributeLayer.ZeroParty, Start);
        }

        File.Delete(Path.Combine(_dir, DataDirectory.ManifestName));
        for (var attempt = 0; attempt < 2; attempt++) // a second wrong start finds the manifest the first one wrote
        {
            using var wrong = new Durable(_dir, RandomNumberGenerator.GetBytes(32));
            Assert.ThrowsAny<Exception>(() => wrong.Restore()); // its personal data cannot be read with that key
        }

        using (var right = new Durable(_dir, Key))
        {
            right.Restore();
            Assert.Equal("ada@example.org", right.World.Store.Get("u1")!.Trait("email"));
        }

        // Read with it, the right key is now the directory's: a wrong one is refused when the directory is opened.
        var refused = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, RandomNumberGenerator.GetBytes(32)));
        Assert.Contains("encryption key does not match", refused.Message);
    }

    [Fact]
    public async Task A_full_disk_makes_writes_unavailable_loses_nothing_and_writes_resume_when_space_returns()
    {
        using var disk = new TinyDisk(megabytes: 4);
        var dir = disk.Directory("store");
        using var store = new Durable(dir, Key);
        store.Restore();
        var ingestion = store.World.Ingestion;
        ingestion.Track(Event("before", "u1", EventTypes.Purchase, Start, value: 10));

        disk.Fill();

        // The segment's last page may still have room for a record or two; then the disk is full.
        StorageUnavailableException? failed = null;
        var attempt = 0;
        for (; attempt < 200 && failed is null; attempt++)
        {
            try
            {
                ingestion.Track(Event($"during-{attempt}", "u1", EventTypes.Purchase, Start.AddSeconds(-1 - attempt), value: 20));
            }
            catch (StorageUnavailableException ex)
            {
                failed = ex;
            }
        }

        Assert.NotNull(failed);
        Assert.Contains("retry", failed.Message);
        Assert.NotNull(store.Log.Failure);
        var rejected = $"during-{attempt - 1}";
        Assert.False(store.World.Store.Get("u1")!.HasEvent(rejected)); // not acknowledged, not applied
        var acknowledged = store.World.Store.Get("u1")!.Orders;

        // A snapshot cannot be written either; it leaves no temporary file behind.
        await Assert.ThrowsAnyAsync<IOException>(() => store.Compactor.CompactAsync());
        Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp"));

        disk.Free();
        ingestion.Track(Event(rejected, "u1", EventTypes.Purchase, Start.AddSeconds(-attempt), value: 20)); // the client's retry
        Assert.Null(store.Log.Failure);
        await store.Compactor.CompactAsync();
        store.Dispose();

        using var restarted = new Durable(dir, Key);
        restarted.Restore();
        var profile = restarted.World.Store.Get("u1")!;
        Assert.True(profile.HasEvent("before"));
        Assert.True(profile.HasEvent(rejected));
        Assert.Equal(acknowledged + 1, profile.Orders);
    }

    [Fact]
    public async Task After_a_full_disk_the_log_finds_it_can_write_again_without_a_write()
    {
        // Regression (review): the failure was cleared only by a write that succeeded, and health reported the log as
        // failing until then: a server taken out of rotation for it got no write to find out with, and stayed out.
        using var disk = new TinyDisk(megabytes: 4);
        var dir = disk.Directory("store");
        using var store = new Durable(dir, Key);
        store.Restore();
        var ingestion = store.World.Ingestion;
        ingestion.Track(Event("before", "u1", EventTypes.Purchase, Start, value: 10));

        disk.Fill();
        for (var attempt = 0; attempt < 200 && store.Log.Failure is null; attempt++)
        {
            try
            {
                ingestion.Track(Event($"during-{attempt}", "u1", EventTypes.PageView, Start.AddSeconds(-1 - attempt)));
            }
            catch (StorageUnavailableException)
            {
                // expected once the disk is full
            }
        }

        Assert.NotNull(store.Log.Failure);
        await Task.Delay(2_500);
        Assert.NotNull(store.Log.Failure); // still full: the checks find it so
        Assert.Empty(Directory.EnumerateFiles(dir, "write-probe"));

        disk.Free();
        await UntilWritable(store);
        Assert.Null(store.Log.Failure); // no write was made
        Assert.Empty(Directory.EnumerateFiles(dir, "write-probe"));
        ingestion.Track(Event("after", "u1", EventTypes.PageView, Start));
        store.Dispose();

        using var restarted = new Durable(dir, Key);
        restarted.Restore();
        Assert.True(restarted.World.Store.Get("u1")!.HasEvent("after"));
    }

    [Fact]
    public async Task A_disk_with_less_room_than_the_failed_write_is_not_reported_writable()
    {
        // Review of this change: the check wrote a page, so a disk with a few kilobytes free was reported writable while
        // the writes waiting needed more (health flapping back to SERVING every second while they failed).
        using var disk = new TinyDisk(megabytes: 4);
        var dir = disk.Directory("store");
        using var store = new Durable(dir, Key);
        store.Restore();
        disk.FillLeaving(32 * 1024);
        var events = Enumerable.Range(0, 1000).Select(i => Event($"bulk-{i}", $"user-{i}", EventTypes.PageView, Start)).ToList();
        Assert.Throws<StorageUnavailableException>(() => store.World.Ingestion.TrackMany(events).ToList()); // one group commit of about 300 KB
        Assert.NotNull(store.Log.Failure);

        await Task.Delay(3_000);
        Assert.NotNull(store.Log.Failure); // checked every second: still too little room

        disk.Free();
        await UntilWritable(store);
        Assert.Null(store.Log.Failure);
    }

    // Waits (up to 15 s) for the log to find the disk writable again by itself.
    private static async Task UntilWritable(Durable store)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (store.Log.Failure is not null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
    }

    [Fact]
    public void A_decide_carrying_events_on_a_full_disk_still_decides_and_reports_what_was_not_recorded()
    {
        // A storefront's page render must not fail because the page view could not be stored: the decision is made on
        // what was recorded, and the events the disk refused come back as not recorded, to be sent again.
        using var disk = new TinyDisk(megabytes: 4);
        using var store = new Durable(disk.Directory("store"), Key);
        store.Restore();
        var trackAndDecide = store.World.Get<TrackAndDecide>();
        var request = new DecisionRequest("u1", "", RequestContext.Empty);
        var events = Enumerable.Range(0, 100).Select(i => Event($"page-{i}", "", EventTypes.PageView, Start.AddSeconds(-i))).ToList();

        disk.Fill();
        var tracked = trackAndDecide.Decide(request, events);

        Assert.NotNull(tracked.Decision.Winner);
        var recorded = tracked.Events.TakeWhile(r => r.Status == EventStatus.Accepted).Count();
        Assert.True(recorded < 100, "the full disk took every event");
        Assert.All(tracked.Events.Skip(recorded), r =>
        {
            Assert.Equal(EventStatus.Rejected, r.Status);
            Assert.Equal($"events[{r.Index}]", Assert.Single(r.Violations).Field);
            Assert.Contains("send it again", r.Violations[0].Description, StringComparison.Ordinal);
        });
        Assert.Equal(recorded, store.World.Store.Get("u1")?.TotalEvents ?? 0); // what was reported recorded, and only that
    }

    [Fact]
    public async Task An_erasure_whose_compaction_fails_on_a_full_disk_is_unavailable_and_a_retry_leaves_no_trace()
    {
        using var disk = new TinyDisk(megabytes: 16);
        var dir = disk.Directory("store");
        using var store = new Durable(dir, Key);
        store.Restore();
        var ingestion = store.World.Ingestion;
        ingestion.Track(Event("secret-event-id", "erase-me-user", EventTypes.PageView, Start, anonymous: "erase-me-anonymous"));
        ingestion.SetTraits("erase-me-user", new Dictionary<string, object?> { ["company_name"] = "Erasable Widgets Ltd" }, "crm", AttributeLayer.ZeroParty, null);
        for (var i = 0; i < 10_000; i++)
        {
            ingestion.Track(Event($"bulk-{i}", $"other-{i % 300}", EventTypes.PageView, Start.AddSeconds(-i))); // enough to fail mid-snapshot
        }

        disk.FillLeaving(8192); // room for the erasure record, not for the snapshot after it
        await Assert.ThrowsAsync<StorageUnavailableException>(() => store.Rights.ForgetAsync("erase-me-user"));
        Assert.Null(store.World.Store.Get("erase-me-user")); // erased in memory (and logged as erased) all the same
        Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp")); // the half-written snapshot held the erased user

        disk.Free();
        await store.Rights.ForgetAsync("erase-me-user"); // the retry compacts
        foreach (var text in new[] { "erase-me-user", "erase-me-anonymous", "secret-event-id", "Erasable Widgets" })
        {
            Assert.False(Directory.EnumerateFiles(dir).Where(f => Path.GetFileName(f) != DataDirectory.LockName).Any(f => Encoding.UTF8.GetString(File.ReadAllBytes(f)).Contains(text, StringComparison.Ordinal)), text);
        }
    }

    // Everything GetProfile and ExportUser show, with the export time left out.
    private static Dictionary<string, string> Exports(TestWorld world)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var profile in world.Store.Snapshot())
        {
            var json = JsonNode.Parse(world.Rights.Export(profile.UserId).Json)!.AsObject();
            json.Remove("exported_at");
            var model = world.Rfm.Current;
            result[profile.UserId] = $"{json.ToJsonString()} version={profile.Version} rfm=v{model.Version}:{model.Recency(profile)}{model.Frequency(profile)}{model.Monetary(profile)}";
        }

        return result;
    }

    [Fact]
    public void The_log_size_is_measured_while_a_compaction_deletes_the_segments_it_listed()
    {
        // Regression (review): the snapshot scheduler's measurement listed the segments and then read each length; an
        // erasure's compaction deleting one in between threw FileNotFoundException, reported as a storage failure
        // (health NOT_SERVING) until the job's backoff passed.
        using var durable = new Durable(_dir, Key, Start);
        durable.Restore();
        durable.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
        durable.Log.Rotate();
        durable.World.Ingestion.Track(Event("e2", "u1", EventTypes.PageView, Start));
        durable.Compactor.AfterListingSegments = () => durable.Compactor.CompactAsync().GetAwaiter().GetResult();

        var bytes = durable.Compactor.LogBytesSinceSnapshot();

        Assert.True(bytes >= 0);
        durable.Compactor.AfterListingSegments = null;
        Assert.Equal(0, durable.Compactor.LogBytesSinceSnapshot()); // nothing since the compaction's snapshot
    }

    [Fact]
    public void A_user_replayed_from_the_log_holds_the_memberships_of_now_so_a_restart_announces_nothing_already_told()
    {
        // Regression (review): the replay evaluated a user at the time of their last record, so a user who aged into a
        // segment after it (announced live, and saved as told) was back out of it after the restart: the reconciliation
        // announced a leave, and the time sweep the entry again (or, on a large store, only a second entry).
        var catalog = TestCatalogs.Source(TestCatalogs.Segment("idle_cart", "behavioural", "{ field: events.add_to_cart.last_at, older_than: 30m }"));
        var changes = Directory.CreateTempSubdirectory("seg-changes-").FullName;
        try
        {
            long told;
            using (var journal = new ChangeStreamJournal(changes))
            using (var first = new Durable(_dir, Key, Start, catalog: catalog, journal: journal))
            {
                first.Restore();
                first.World.Ingestion.Track(Event("c1", "u1", EventTypes.AddToCart, Start)); // in the log only
                first.World.Clock.Now = Start.AddMinutes(40);
                first.World.Ingestion.RefreshMemberships(); // aged into idle_cart: announced
                Assert.Contains("idle_cart", first.World.Memberships.SegmentsOf("u1"));
                var service = new ChangeStreamService(first.World.Memberships.Feed, first.World.Get<TriggerScheduler>(), journal, first.World.Clock);
                first.World.Get<ChangeStreamReconciler>().Save(() => service.Flush());
                told = first.World.Memberships.Feed.Last;
            }

            using (var journal = new ChangeStreamJournal(changes))
            using (var second = new Durable(_dir, Key, Start.AddMinutes(45), catalog: catalog, journal: journal))
            {
                second.Restore();
                second.World.Get<ChangeStreamReconciler>().Reconcile();
                second.World.Ingestion.RefreshMemberships();
                new ChangeStreamService(second.World.Memberships.Feed, second.World.Get<TriggerScheduler>(), journal, second.World.Clock).Flush(); // served once written

                Assert.Contains("idle_cart", second.World.Memberships.SegmentsOf("u1"));
                Assert.DoesNotContain(second.World.FeedAfter(told), e => e.UserId == "u1");
            }
        }
        finally
        {
            Directory.Delete(changes, recursive: true);
        }
    }

    [Fact]
    public void A_traits_write_too_large_for_the_change_log_is_refused_as_invalid_and_nothing_is_stored()
    {
        // Regression (review): 100 list traits of personal data, each of 100 values of 256 characters that JSON escapes
        // (a valid request of about 2.6 MB), sealed and encoded came past the log's 16 MiB a change: an ArgumentException,
        // INTERNAL at every retry.
        var traits = string.Concat(Enumerable.Range(0, 100).Select(i => $"\n    notes_{i}: {{ type: list, pii: true }}"));
        var schema = TestCatalogs.Schema.Replace("    first_name: { type: string, pii: true }", "    first_name: { type: string, pii: true }" + traits);
        var catalog = new InMemoryCatalogSource([new("catalog.yaml", schema), new("fallback.yaml", TestCatalogs.Fallback)]);
        using var durable = new Durable(_dir, Key, Start, catalog: catalog);
        durable.Restore();
        var values = Enumerable.Repeat(new string('<', 256), 100).ToList();
        var write = Enumerable.Range(0, 100).ToDictionary(i => $"notes_{i}", _ => (object?)values);

        var refused = Assert.Throws<Core.Validation.ValidationException>(() => durable.World.Ingestion.SetTraits("u1", write, "crm", AttributeLayer.ZeroParty, null));

        Assert.Contains("split it into smaller writes", refused.Message, StringComparison.Ordinal);
        Assert.Null(durable.World.Store.Get("u1"));
    }

    [Fact]
    public void A_start_that_cannot_write_opens_a_directory_whose_manifest_needs_no_change()
    {
        // Regression (review): every start rewrote the manifest, so on a full disk a server that was serving (and
        // refusing writes) could not come back after a restart, although nothing on disk needed changing.
        using (var first = new Durable(_dir, Key, Start))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Start));
        }

        using (new Durable(_dir, Key, Start))
        {
            // a start that writes what the manifest should say (the key's check, the segments)
        }

        Directory.CreateDirectory(Path.Combine(_dir, DataDirectory.ManifestName + ".tmp")); // any write of the manifest fails now
        using var second = new Durable(_dir, Key, Start);
        second.Restore();
        Assert.Equal(1, second.World.Store.Get("u1")!.TotalEvents);
    }

    [Fact]
    public async Task The_retention_sweep_at_a_restart_announces_nothing_a_user_already_held()
    {
        // Regression (review): the sweep after the restore ran with the change feed open, so a user restored from the
        // snapshot alone (not yet in the membership index) whose page view expired while the server was down was
        // announced as entering every segment they were already in, and triggers were armed for them.
        var retention = new RetentionPolicy(TimeSpan.FromDays(400), new Dictionary<string, TimeSpan?> { [EventTypes.PageView] = TimeSpan.FromDays(1) });
        using (var first = new Durable(_dir, Key, Start, retention: retention))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("p1", "u1", EventTypes.Purchase, Start.AddMinutes(-5), value: 80));
            first.World.Ingestion.Track(Event("v1", "u1", EventTypes.PageView, Start.AddMinutes(-1)));
            await first.Compactor.CompactAsync(); // u1 is in the snapshot only
        }

        using var second = new Durable(_dir, Key, Start.AddDays(2), retention: retention);
        var before = second.World.Memberships.Feed.Last;
        var restored = second.World.Ingestion.Restore(second.Files);
        second.World.Ingestion.EvaluateNewMemberships();

        Assert.Equal(1, restored.Expired.EventsRemoved); // the page view left
        Assert.NotEmpty(second.World.Memberships.SegmentsOf("u1"));
        Assert.DoesNotContain(second.World.FeedAfter(before), e => e.UserId == "u1" && e.Kind == Core.Application.Membership.ChangeKind.Entered);
    }

    [Fact]
    public async Task A_replay_only_restart_and_a_snapshot_restart_reproduce_every_profile_exactly()
    {
        var retention = new RetentionPolicy(TimeSpan.FromDays(400), new Dictionary<string, TimeSpan?> { [EventTypes.Search] = TimeSpan.FromDays(2) });
        Dictionary<string, string> expected;
        DateTimeOffset restartAt;
        using (var first = new Durable(_dir, Key, Start, retention: retention))
        {
            first.Restore();
            var w = first.World;
            var types = new[] { EventTypes.PageView, EventTypes.ProductView, EventTypes.Search, EventTypes.AddToCart, EventTypes.Purchase };
            for (var i = 0; i < 400; i++)
            {
                w.Clock.Now = w.Clock.Now.AddMinutes(37); // every write at its own time: segment history and derived times must keep it
                var user = $"u{i % 40}";
                var type = types[i % types.Length];
                w.Ingestion.Track(Event($"e{i}", user, type, w.Clock.Now.AddMinutes(-i % 90), value: type == EventTypes.Purchase ? 5 + (i % 200) : 0, anonymous: i % 7 == 0 ? $"anon-{i % 40}" : ""));
                w.Ingestion.Track(Event($"e{i}", user, type, w.Clock.Now)); // a duplicate: changes nothing
                if (i % 9 == 0)
                {
                    w.Ingestion.SetTraits(user, new Dictionary<string, object?> { ["preferred_category"] = $"cat-{i % 5}", ["company_size"] = (double)(i % 30) }, "crm", AttributeLayer.ZeroParty, w.Clock.Now.AddMinutes(-1));
                }

                if (i % 23 == 0)
                {
                    w.Ingestion.RecordConsent(user, ConsentPurpose.EmailMarketing, granted: i % 2 == 0, "banner", null);
                }

                if (i % 31 == 0)
                {
                    w.Ingestion.Identify($"visitor-{i}", user);
                    w.Ingestion.Track(Event($"late-{i}", "", EventTypes.PageView, w.Clock.Now, anonymous: $"visitor-{i}"));
                }

                if (i % 50 == 49)
                {
                    w.Ingestion.RecomputeRfm(); // a new model between writes: each write is derived with the model of its time
                    w.Ingestion.RefreshMemberships(); // re-evaluations take store versions without changing profiles
                }

                if (i % 120 == 119)
                {
                    w.Ingestion.ApplyRetention();
                }
            }

            restartAt = w.Clock.Now.AddDays(3);
            w.Clock.Now = restartAt;
            w.Ingestion.ApplyRetention(); // as a restart does: what expired by now is removed (and logged removed)
            w.Ingestion.RefreshMemberships();
            expected = Exports(w);
            Assert.Equal(40, expected.Count);
        }

        using (var replayed = new Durable(_dir, Key, restartAt, retention: retention))
        {
            var (snapshot, _) = replayed.Restore();
            Assert.Null(snapshot);
            replayed.World.Ingestion.RefreshMemberships();
            AssertSameProfiles(expected, Exports(replayed.World));
            await replayed.Compactor.CompactAsync();
        }

        using var fromSnapshot = new Durable(_dir, Key, restartAt, retention: retention);
        var (restored, log) = fromSnapshot.Restore();
        Assert.NotNull(restored);
        Assert.Equal(0, log.Records);
        fromSnapshot.World.Ingestion.RefreshMemberships();
        AssertSameProfiles(expected, Exports(fromSnapshot.World));

        // Versions never go backwards: the next write takes a version above every one handed out before.
        var next = fromSnapshot.World.Ingestion.Track(Event("after-restart", "u1", EventTypes.PageView, restartAt)).Profile.Version;
        Assert.True(next > expected.Values.Select(v => long.Parse(v.Split(" version=")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture)).Max());
    }

    private static void AssertSameProfiles(Dictionary<string, string> expected, Dictionary<string, string> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (user, export) in expected)
        {
            Assert.Equal(export, actual[user]);
        }
    }

    [Fact]
    public async Task A_snapshot_taken_while_a_recomputed_model_is_logged_but_not_yet_published_keeps_the_model()
    {
        RfmModel logged;
        using (var store = new Durable(_dir, Key, Start))
        {
            store.Restore();
            var w = store.World;
            w.Ingestion.Track(Event("before-model", "u1", EventTypes.Purchase, Start.AddDays(-1), value: 50));

            // A compaction starts between the model's logging and its publishing, and is given two seconds to finish
            // there. It waits for the publishing now; before, it finished without the model and deleted the segment
            // holding the model's record.
            Task? compaction = null;
            using var finished = new ManualResetEventSlim();
            w.Ingestion.Refresher.AfterModelLogged = () =>
            {
                compaction = Task.Run(async () =>
                {
                    await store.Compactor.CompactAsync();
                    finished.Set();
                });
                finished.Wait(TimeSpan.FromSeconds(2));
            };
            logged = w.Ingestion.RecomputeRfm();
            w.Ingestion.Refresher.AfterModelLogged = null;
            await compaction!;
            w.Ingestion.Track(Event("after-model", "u1", EventTypes.Purchase, Start, value: 70)); // derived with that model
            Assert.Same(logged, w.Rfm.Current);
        }

        // The model itself, not one computed again at the restart under the same version number (from the store as it is
        // then, with the later purchase: other boundaries).
        using var restarted = new Durable(_dir, Key, Start);
        restarted.Restore();
        var restored = restarted.World.Rfm.Find(logged.Version);
        Assert.NotNull(restored);
        Assert.Equal(logged.RecencyBoundaries, restored.RecencyBoundaries);
        Assert.Equal(logged.FrequencyBoundaries, restored.FrequencyBoundaries);
        Assert.Equal(logged.MonetaryBoundaries, restored.MonetaryBoundaries);
    }

    [Fact]
    public void A_profile_whose_many_events_expire_at_once_is_swept_in_pieces_the_log_can_hold_and_restarts_without_them()
    {
        // 24,000 event ids of 127 characters, 120 of them escaped to six bytes each in JSON: about 17 MB of ids, past the
        // 16 MiB one logged record may hold. Logged as one removal, the sweep failed (and a restart, which sweeps, too).
        using var disk = new TinyDisk(512); // a tmpfs: the log's flushes cost nothing, so 24,000 writes take seconds
        var dir = disk.Directory("data");
        var retention = new RetentionPolicy(TimeSpan.FromDays(30));
        var ids = Enumerable.Range(0, 24_000).Select(i => i.ToString("D6", System.Globalization.CultureInfo.InvariantCulture) + "-" + new string('é', 120)).ToList();
        var sweptAt = Start.AddDays(15);
        using (var store = new Durable(dir, Key, Start, retention: retention))
        {
            store.Restore();
            var w = store.World;
            foreach (var id in ids)
            {
                w.Ingestion.Track(Event(id, "u1", EventTypes.PageView, Start.AddDays(-20)));
            }

            w.Ingestion.Track(Event("recent", "u1", EventTypes.PageView, Start));
            w.Clock.Now = sweptAt;
            var result = w.Ingestion.ApplyRetention();

            Assert.Equal(new RetentionResult(1, 24_000), result);
            Assert.Equal(["recent"], w.Store.Get("u1")!.Events.Select(e => e.EventId));
        }

        using var restarted = new Durable(dir, Key, sweptAt, retention: retention);
        restarted.Restore();
        Assert.Equal(["recent"], restarted.World.Store.Get("u1")!.Events.Select(e => e.EventId));
    }

    [Fact]
    public void A_restart_after_a_sweep_that_was_never_compacted_owes_the_compaction()
    {
        // Regression: only what the restore's own sweep removed counted; a removal logged before the restart, whose
        // compaction failed or never ran, was replayed, the restore's sweep found nothing, and no compaction followed.
        var retention = new RetentionPolicy(TimeSpan.FromDays(30));
        var sweptAt = Start.AddDays(15);
        using (var store = new Durable(_dir, Key, Start, retention: retention))
        {
            store.Restore();
            var w = store.World;
            w.Ingestion.Track(Event("old-id", "u1", EventTypes.PageView, Start.AddDays(-20)));
            w.Clock.Now = sweptAt;
            Assert.Equal(1, w.Ingestion.ApplyRetention().EventsRemoved); // no compaction: the process stops here
        }

        using var restarted = new Durable(_dir, Key, sweptAt, retention: retention);
        restarted.Restore();
        Assert.True(restarted.World.Ingestion.CompactionOwedAtRestore);

        var other = Directory.CreateTempSubdirectory("seg-clean-").FullName;
        try
        {
            using var clean = new Durable(other, Key, sweptAt, retention: retention);
            clean.Restore();
            Assert.False(clean.World.Ingestion.CompactionOwedAtRestore); // nothing removed, nothing owed
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public async Task Retention_leaves_no_removed_event_id_in_the_segment_history_or_on_disk()
    {
        var retention = new RetentionPolicy(TimeSpan.FromDays(30));
        using var store = new Durable(_dir, Key, Start, retention: retention);
        store.Restore();
        var w = store.World;
        w.Ingestion.Track(Event("old-purchase-id", "u1", EventTypes.Purchase, Start.AddDays(-20), value: 900));
        Assert.Contains(w.Store.Get("u1")!.SegmentHistory, c => c.Cause == "event:old-purchase-id");

        w.Clock.Now = Start.AddDays(15);
        var result = w.Ingestion.ApplyRetention();
        await store.Compactor.CompactAsync();

        Assert.Equal(1, result.EventsRemoved);
        var history = w.Store.Get("u1")!.SegmentHistory;
        Assert.NotEmpty(history);
        Assert.DoesNotContain(history, c => c.Cause.Contains("old-purchase-id", StringComparison.Ordinal));
        Assert.Contains(history, c => c.Cause == Profile.ExpiredEventCause);
        Assert.False(AnyFileContains("old-purchase-id"));
    }
}
