using Segmentation.Core.Tests.Support;
using Segmentation.Core.Application.Audit;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>The admin audit trail in the data directory: restored, erased, and a write cut short.</summary>
public sealed class AuditJournalFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-audit-").FullName;
    private readonly ManualClock _time = new(new DateTimeOffset(2026, 12, 2, 9, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_call_about_an_erased_user_that_ends_after_the_erasure_is_recorded_without_the_id()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
        var trail = new AdminAuditTrail(NoAuditJournal.Instance, clock);
        trail.Erase(new HashSet<string>(["u-1"]));

        var late = trail.Record("ops", "privacy.export", "OK", "u-1", "parts: 3"); // an export in flight during the erasure

        Assert.Equal((AdminAuditTrail.Erased, ""), (late.UserId, late.Detail));
        clock.Now += AdminAuditTrail.ErasedMemory + TimeSpan.FromMinutes(1);
        Assert.Equal("u-1", trail.Record("ops", "privacy.export", "OK", "u-1", "").UserId); // a new user under the id, much later
    }

    [Fact]
    public void Entries_written_before_a_refused_write_are_synced_at_once()
    {
        // Regression (review): a refused write closed the file without syncing it, and nothing synced a closed file: while
        // the disk kept refusing writes, the entries written through to the operating system before were not on disk.
        using var journal = new AuditJournalFile(_dir);
        journal.Append(new AuditEntry(1, DateTimeOffset.UtcNow, "ops", "catalog.publish", "OK", "", "first"));
        var syncs = journal.Syncs;
        journal.BeforeWrite = () => throw new IOException("No space left on device");

        Assert.Throws<IOException>(() => journal.Append(new AuditEntry(2, DateTimeOffset.UtcNow, "ops", "catalog.publish", "OK", "", "second")));

        Assert.Equal(syncs + 1, journal.Syncs);
    }

    [Fact]
    public void Entries_come_back_after_a_restart_with_erased_ids_still_erased()
    {
        using (var journal = new AuditJournalFile(_dir))
        {
            var trail = new AdminAuditTrail(journal, _time);
            trail.Record("ops", "privacy.export", "OK", "u-1", "");
            trail.Record("ops", "privacy.export", "OK", "u-2", "");
            trail.Record("ops", "catalog.publish", "OK", null, "version 2; comment: spring");
            trail.Erase(new HashSet<string>(["u-1"]));
        }

        using var reopened = new AuditJournalFile(_dir);
        var restored = new AdminAuditTrail(reopened, _time);
        var entries = restored.List(0, "").Entries;
        Assert.Equal([3L, 2L, 1L], entries.Select(e => e.Sequence));
        Assert.Equal(["", "u-2", AdminAuditTrail.Erased], entries.Select(e => e.UserId));
        Assert.DoesNotContain("u-1", File.ReadAllText(Path.Combine(_dir, AuditJournalFile.FileName)), StringComparison.Ordinal);
        Assert.Equal(4, restored.Record("ops", "catalog.rollback", "OK", null, "").Sequence); // numbering continues
    }

    [Fact]
    public void A_last_line_cut_short_is_skipped_and_a_damaged_earlier_line_stops_the_start()
    {
        using (var journal = new AuditJournalFile(_dir))
        {
            var trail = new AdminAuditTrail(journal, _time);
            trail.Record("ops", "catalog.publish", "OK", null, "");
            trail.Record("ops", "catalog.publish", "OK", null, "");
        }

        var path = Path.Combine(_dir, AuditJournalFile.FileName);
        File.AppendAllText(path, "{\"sequence\":3,\"at\":\"2026-");
        using (var journal = new AuditJournalFile(_dir))
        {
            Assert.Equal(2, new AdminAuditTrail(journal, _time).Count);
        }

        File.WriteAllText(path, "not json\n" + File.ReadAllText(path));
        using var damaged = new AuditJournalFile(_dir);
        var ex = Assert.Throws<StoreDamagedException>(() => new AdminAuditTrail(damaged, _time));
        Assert.Contains("line 1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void After_a_line_cut_short_the_next_entries_are_written_on_lines_of_their_own_and_survive_another_restart()
    {
        using (var journal = new AuditJournalFile(_dir))
        {
            new AdminAuditTrail(journal, _time).Record("ops", "catalog.publish", "OK", null, "");
        }

        File.AppendAllText(Path.Combine(_dir, AuditJournalFile.FileName), "{\"sequence\":2,\"at\":\"2026-"); // a power loss mid-write
        using (var journal = new AuditJournalFile(_dir))
        {
            var trail = new AdminAuditTrail(journal, _time);
            Assert.Equal(2, trail.Record("ops", "catalog.rollback", "OK", null, "").Sequence);
        }

        using var again = new AuditJournalFile(_dir);
        Assert.Equal(["catalog.rollback", "catalog.publish"], new AdminAuditTrail(again, _time).List(0, "").Entries.Select(e => e.Action));
    }

    [Fact]
    public void A_full_disk_refuses_an_entry_without_leaving_part_of_it_in_the_trail_and_entries_are_written_again_once_there_is_room()
    {
        using var disk = new TinyDisk(2);
        var dir = disk.Directory("audit");
        var detail = new string('d', AdminAuditTrail.MaxDetailLength);
        int kept;
        using (var journal = new AuditJournalFile(dir))
        {
            var trail = new AdminAuditTrail(journal, _time);
            trail.Record("ops", "privacy.export", "OK", "u-1", "");
            disk.Fill();

            // The file's last page still has room for a few entries; the one that crosses into a new page is refused
            // after part of it was written.
            kept = 1;
            IOException? refused = null;
            for (var i = 0; i < 100 && refused is null; i++)
            {
                try
                {
                    trail.Record("ops", "catalog.publish", "OK", null, detail);
                    kept++;
                }
                catch (IOException ex)
                {
                    refused = ex;
                }
            }

            Assert.NotNull(refused);
            Assert.ThrowsAny<IOException>(() => trail.Erase(new HashSet<string>(["u-1"]))); // the rewrite needs room too
            disk.Free();
            trail.Record("ops", "catalog.rollback", "OK", null, "after the disk had room again");
            trail.Erase(new HashSet<string>(["u-1"]));
            trail.Record("ops", "privacy.forget", "OK", null, "after the erasure");
        }

        using var reopened = new AuditJournalFile(dir); // a part-written line in the middle would stop this start
        var entries = new AdminAuditTrail(reopened, _time).List(0, "").Entries;
        // Every entry once, in order: the refused one too, which the trail kept in memory and the erasure's rewrite wrote.
        Assert.Equal(kept + 3, entries.Count);
        Assert.Equal(Enumerable.Range(1, kept + 3).Reverse().Select(n => (long)n), entries.Select(e => e.Sequence));
        Assert.Equal(["privacy.forget", "catalog.rollback", "catalog.publish"], entries.Take(3).Select(e => e.Action));
        Assert.Equal(AdminAuditTrail.Erased, entries[^1].UserId);
    }

    // Records publishes on a full disk until one is refused (the file's last page has room for a few first).
    private static void RecordUntilRefused(AdminAuditTrail trail, string detail)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                trail.Record("ops", "catalog.publish", "OK", null, detail);
            }
            catch (IOException)
            {
                return;
            }
        }

        Assert.Fail("the full disk refused no entry");
    }

    [Fact]
    public void An_entry_the_full_disk_refused_is_written_before_the_next_one()
    {
        // Regression: the refused entry stayed in memory (listed) but reached the file only if an erasure or a trimming
        // rewrote it: a plain restart lost it, although the trail promises entries are written again once there is room.
        using var disk = new TinyDisk(2);
        var dir = disk.Directory("audit");
        var detail = new string('d', AdminAuditTrail.MaxDetailLength);
        var listed = 0;
        using (var journal = new AuditJournalFile(dir))
        {
            var trail = new AdminAuditTrail(journal, _time);
            disk.Fill();
            RecordUntilRefused(trail, detail);
            disk.Free();
            trail.Record("ops", "catalog.rollback", "OK", null, "after the disk had room again");

            // Regression: one refused with no entry after it was written by nothing: a restart lost it.
            disk.Fill();
            RecordUntilRefused(trail, detail);
            listed = trail.List(0, "").Entries.Count;
            disk.Free();
            trail.Dispose(); // the host's shutdown, before the journal closes
        }

        using var reopened = new AuditJournalFile(dir);
        var entries = new AdminAuditTrail(reopened, _time).List(0, "").Entries;
        Assert.Equal(listed, entries.Count);
        Assert.Equal(Enumerable.Range(1, listed).Reverse().Select(n => (long)n), entries.Select(e => e.Sequence));
        Assert.Equal("catalog.publish", entries[0].Action); // the last, refused one
    }

    [Fact]
    public void An_erasure_whose_rewrite_failed_is_done_by_the_retry()
    {
        var journal = new FlakyJournal();
        var trail = new AdminAuditTrail(journal, _time);
        trail.Record("ops", "privacy.record_consent", "OK", "u-1", "purpose EmailMarketing; granted: True; source: newsletter-form");
        journal.FailNextRewrite = true;

        Assert.Throws<IOException>(() => trail.Erase(new HashSet<string>(["u-1"])));
        Assert.Equal("u-1", trail.List(0, "").Entries.Single().UserId); // nothing changed: the retry must find it again

        trail.Erase(new HashSet<string>(["u-1"]));
        var erased = Assert.Single(journal.Written!);
        Assert.Equal((AdminAuditTrail.Erased, ""), (erased.UserId, erased.Detail)); // the consent source went with the id
    }

    [Fact]
    public void Refused_calls_of_one_key_and_action_are_recorded_once_a_minute()
    {
        var trail = new AdminAuditTrail(NoAuditJournal.Instance, _time);
        Assert.True(trail.RecordRefusal("analyst", "catalog.publish", "PERMISSION_DENIED", "scope missing"));
        for (var i = 0; i < 1000; i++)
        {
            Assert.False(trail.RecordRefusal("analyst", "catalog.publish", "PERMISSION_DENIED", "scope missing"));
        }

        Assert.True(trail.RecordRefusal("analyst", "catalog.rollback", "PERMISSION_DENIED", "scope missing"));
        _time.Now += AdminAuditTrail.RefusalInterval;
        Assert.True(trail.RecordRefusal("analyst", "catalog.publish", "PERMISSION_DENIED", "scope missing"));
        Assert.Equal(3, trail.Count);
    }

    [Fact]
    public void A_trim_the_disk_refuses_at_start_up_neither_stops_the_start_nor_leaves_an_erased_user_in_the_file()
    {
        // Regression (found in review): a trail of more than the entries kept is cut back when loaded, by a rewrite of the
        // whole file; on a full disk that threw out of the constructor, and the server did not start. Now the next entry
        // tries again, and an erasure before that rewrites the file whether or not a kept entry names the user (a
        // dropped one may).
        var kept = Enumerable.Range(1, AdminAuditTrail.MaxEntries + 10)
            .Select(i => new AuditEntry(i, _time.Now, "ops", "privacy.export", "OK", i <= 10 ? "old-user" : "", ""))
            .ToList();
        var journal = new FlakyJournal(kept) { FailNextRewrite = true };

        var trail = new AdminAuditTrail(journal, _time);

        Assert.Equal(AdminAuditTrail.MaxEntries, trail.Count);
        Assert.Null(journal.Written); // refused: the file still holds them all
        trail.Erase(new HashSet<string>(["old-user"]));
        Assert.Equal(AdminAuditTrail.MaxEntries, journal.Written!.Count);
        Assert.DoesNotContain(journal.Written, e => e.UserId == "old-user");

        // A disk that keeps refusing: tried again once a minute at most (own review: every entry wrote a whole copy), and
        // every entry is recorded meanwhile.
        var full = new FlakyJournal(kept) { FailAllRewrites = true };
        var again = new AdminAuditTrail(full, _time);
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(AdminAuditTrail.MaxEntries + 11 + i, again.Record("ops", "catalog.publish", "OK", null, null).Sequence);
        }

        Assert.Equal(1, full.RewriteCalls);
        _time.Now += AdminAuditTrail.TrimRetryInterval;
        full.FailAllRewrites = false;
        again.Record("ops", "catalog.publish", "OK", null, null);
        Assert.Equal((2, AdminAuditTrail.MaxEntries + 51), (full.RewriteCalls, full.Written!.Count)); // what the trail holds
    }

    private sealed class FlakyJournal(IReadOnlyList<AuditEntry>? kept = null) : IAuditJournal
    {
        public bool FailNextRewrite { get; set; }

        public IReadOnlyList<AuditEntry>? Written { get; private set; }

        public IReadOnlyList<AuditEntry> Load() => kept ?? [];

        public void Append(AuditEntry entry)
        {
        }

        public bool FailAllRewrites { get; set; }

        public int RewriteCalls { get; private set; }

        public void Rewrite(IReadOnlyList<AuditEntry> entries)
        {
            RewriteCalls++;
            if (FailAllRewrites)
            {
                throw new IOException("No space left on device");
            }

            if (FailNextRewrite)
            {
                FailNextRewrite = false;
                throw new IOException("No space left on device");
            }

            Written = [.. entries];
        }
    }

    [Fact]
    public void Filters_match_exactly_and_details_are_bounded()
    {
        var trail = new AdminAuditTrail(NoAuditJournal.Instance, _time);
        trail.Record("ops", "privacy.export", "OK", "u-1", new string('x', 1000));
        trail.Record("analyst", "catalog.publish", "PERMISSION_DENIED", null, "");

        Assert.Single(trail.List(0, "", actor: "analyst").Entries);
        Assert.Empty(trail.List(0, "", actor: "analys").Entries);
        Assert.Equal(AdminAuditTrail.MaxDetailLength, trail.List(0, "", userId: "u-1").Entries.Single().Detail.Length);
        Assert.Throws<Validation.ValidationException>(() => trail.List(AdminAuditTrail.MaxPageSize + 1, ""));
    }

    [Fact]
    public void A_journal_closed_at_shutdown_refuses_entries_instead_of_reopening_the_file()
    {
        // An action that finished after the shutdown closed the journal reopened audit.jsonl and appended to it, though the
        // data directory may by then be another server's (its lock released).
        var journal = new AuditJournalFile(_dir);
        var trail = new AdminAuditTrail(journal, _time);
        trail.Record("ops", "catalog.publish", "OK", null, "version 2");
        journal.Dispose();
        var path = Path.Combine(_dir, AuditJournalFile.FileName);
        var before = File.ReadAllText(path);

        Assert.Throws<ObjectDisposedException>(() => trail.Record("ops", "catalog.rollback", "OK", null, "late"));
        Assert.Throws<ObjectDisposedException>(() => journal.Rewrite([]));
        Assert.Equal(before, File.ReadAllText(path));
    }
}
