using Segmentation.Core.Tests.Support;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.ChangeStream;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

/// <summary>The change stream on disk: read back after a restart, a torn last write cut off, old segments dropped, numbering kept.</summary>
public sealed class ChangeStreamJournalTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-stream-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static List<FeedEntry> Entries(long from, int count, DateTimeOffset? at = null) =>
        [.. Enumerable.Range(0, count).Select(i => new FeedEntry(from + i, $"user-{from + i}", "seg", (ChangeKind)(1 + (i % 3)), (at ?? T0).AddMinutes(i), 3, $"event:{from + i}", i % 3 == 2 ? "reminder" : null))];

    [Fact]
    public void Entries_come_back_exactly_after_a_restart()
    {
        var written = Entries(1, 50);
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.Append(written[..20]);
            journal.Append(written[20..]);
        }

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);

        Assert.Equal(written, entries);
        Assert.Equal(50, last);
    }

    [Fact]
    public void An_entry_announced_again_is_kept_as_such_and_a_callers_text_ending_in_again_is_not_taken_for_it()
    {
        List<FeedEntry> written =
        [
            new(1, "u1", "seg", ChangeKind.Entered, T0, 3, "consent:personalization:granted" + MembershipIndex.AgainSuffix, Again: true),
            new(2, "u2", "seg", ChangeKind.Entered, T0, 3, "traits:crm:again"),
            new(3, "u3", "seg", ChangeKind.Left, T0, 3, "event:order-17:again"),
            new(4, "u4", "seg", ChangeKind.Entered, T0, 3, "identify:a1" + MembershipIndex.AgainSuffix, Again: true),
        ];
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.Append(written);
        }

        // A frame as the version before wrote it (no list of the entries announced again after them): told by the text.
        using (var file = new FileStream(Path.Combine(_dir, ChangeStreamJournal.FolderName, "stream-5.log"), FileMode.CreateNew))
        {
            using var payload = new MemoryStream();
            using (var writer = new BinaryWriter(payload, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                writer.Write((byte)1);
                writer.Write(2);
                foreach (var (offset, cause) in new[] { (5L, "consent:personalization:granted:again"), (6L, "event:e6") })
                {
                    writer.Write(offset);
                    writer.Write((byte)ChangeKind.Entered);
                    writer.Write(T0.UtcTicks);
                    writer.Write(3L);
                    writer.Write($"u{offset}");
                    writer.Write("seg");
                    writer.Write(cause);
                    writer.Write("");
                }
            }

            Framing.Write(file, payload.ToArray());
        }

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);

        Assert.Equal(6, last);
        Assert.Equal(written, entries.Take(4));
        Assert.Equal([true, false], entries.Skip(4).Select(e => e.Again));
    }

    [Fact]
    public void A_full_disk_refuses_an_append_and_once_there_is_room_the_journal_goes_on_with_nothing_lost_or_repeated()
    {
        using var disk = new TinyDisk(2);
        var dir = disk.Directory("data");
        var written = Entries(1, 400);
        using (var journal = new ChangeStreamJournal(dir))
        {
            journal.Append(written[..10]);
            disk.Fill();

            // The segment's last page still has room for a batch or two; the one that crosses into a new page is refused.
            var appended = 10;
            IOException? refused = null;
            while (refused is null && appended < 370)
            {
                try
                {
                    journal.Append(written[appended..(appended + 30)]);
                    appended += 30;
                }
                catch (IOException ex)
                {
                    refused = ex;
                }
            }

            Assert.NotNull(refused);
            disk.Free();
            journal.Append(written[appended..]); // the refused batch again, as the service retries it, and the rest
        }

        using var reopened = new ChangeStreamJournal(dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);
        Assert.Equal(written, entries);
        Assert.Equal(400, last);
    }

    [Fact]
    public void A_torn_last_write_is_cut_off_and_what_came_before_is_kept()
    {
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.Append(Entries(1, 10));
        }

        var segment = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log").Single();
        var intact = new FileInfo(segment).Length;
        File.AppendAllText(segment, "\u0040\u0000\u0000\u0000torn"); // a frame header promising 64 bytes, then the crash

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);

        Assert.Equal(10, entries.Count);
        Assert.Equal(10, last);
        Assert.Equal(intact, new FileInfo(segment).Length);
    }

    // Entries 1 to 30 in three frames of one segment, a byte of the second frame's payload flipped (a bad sector, not a
    // torn last write: an intact frame follows).
    private (List<FeedEntry> Written, string Segment) ThreeFramesTheSecondDamaged()
    {
        var written = Entries(1, 30);
        long damagedAt;
        string segment;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.Append(written[..10]);
            segment = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log").Single();
            damagedAt = new FileInfo(segment).Length + 20; // inside the second frame's payload
            journal.Append(written[10..20]);
            journal.Append(written[20..]);
        }

        using var file = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite);
        file.Position = damagedAt;
        var b = file.ReadByte();
        file.Position = damagedAt;
        file.WriteByte((byte)(b ^ 0x5A));
        return (written, segment);
    }

    [Fact]
    public void Damage_in_the_middle_of_the_newest_segment_keeps_the_frames_after_it_and_their_offsets_are_never_handed_out_again()
    {
        var (written, segment) = ThreeFramesTheSecondDamaged();
        var length = new FileInfo(segment).Length;

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);

        Assert.Equal(30, last); // cut off at the damage, the stream would number new entries from 11 again
        Assert.Equal([.. written[..10], .. written[20..]], entries); // the entries after the damaged frame are read on
        Assert.Equal(length, new FileInfo(segment).Length); // nothing intact was cut off

        var feed = new ChangeFeed(new ChangeFeedOptions(), new ManualClock(T0.AddHours(1)));
        feed.Restore(entries, last);
        Assert.Equal(30, feed.Last); // the next entry is 31
    }

    [Fact]
    public void An_erasure_rewriting_a_damaged_segment_keeps_the_intact_frames_after_the_damage()
    {
        var (written, _) = ThreeFramesTheSecondDamaged();

        // Regression: the rewrite kept only the frames before the damage, so offsets 21 to 30 were lost and, at the next
        // start, handed out again to new entries.
        var erased = written[25].UserId;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            Assert.Equal(30, journal.Load(T0.AddDays(-1), 1000).LastOffset); // the start, read past the damage
            journal.Redact(new HashSet<string>(StringComparer.Ordinal) { erased }, 30);
        }

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);
        Assert.Equal(30, last);
        Assert.Equal([.. written[..10].Select(e => e.Offset), .. written[20..].Select(e => e.Offset)], entries.Select(e => e.Offset));
        Assert.DoesNotContain(entries, e => e.UserId == erased);
        Assert.Equal(written[21], entries[11]); // the others' entries after the damage are as written
    }

    [Fact]
    public void The_stream_keeps_its_identity_across_restarts_and_a_new_stream_gets_another()
    {
        string id;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            id = journal.StreamId!;
            journal.Append(Entries(1, 3));
        }

        using (var reopened = new ChangeStreamJournal(_dir))
        {
            Assert.Equal(id, reopened.StreamId);
        }

        var other = Directory.CreateTempSubdirectory("seg-journal-other-").FullName;
        try
        {
            using var fresh = new ChangeStreamJournal(other);
            Assert.Equal(32, fresh.StreamId!.Length);
            Assert.NotEqual(id, fresh.StreamId);
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public void Only_the_newest_entries_within_the_window_are_loaded_and_trimming_keeps_the_numbering()
    {
        using (var journal = new ChangeStreamJournal(_dir, segmentBytes: 512))
        {
            for (var i = 0; i < 20; i++)
            {
                journal.Append(Entries(1 + (i * 10), 10, T0.AddHours(i)));
            }

            journal.Trim(oldest: 201); // everything expired: one empty segment stays, numbering what comes next
        }

        var files = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log");
        Assert.Single(files);
        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-30), 1000);
        Assert.Equal(200, last); // nothing retained, numbering known
        Assert.Empty(entries);
    }

    [Fact]
    public void A_stream_that_receives_nothing_more_keeps_no_entry_past_the_window_and_numbers_on()
    {
        // Regression (last stop's own review): the newest segment was always kept, so a stream written to once and
        // then never again kept its last entries (user ids, segments, causes) on disk until the next write, however
        // long after the window that came — across restarts too.
        FeedEntry Of(long offset, string user) => new(offset, user, "seg", ChangeKind.Entered, T0.AddMinutes(offset), 3, $"event:{user}");
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.Append([Of(1, "idle-1"), Of(2, "idle-2")]);
            journal.Trim(oldest: 1); // both inside the window: kept
            Assert.True(Names("idle-2", _dir));
            journal.Trim(oldest: 3); // both past it, and nothing else written
        }

        Assert.False(Names("idle-1", _dir));
        Assert.False(Names("idle-2", _dir));

        // After a restart too: the entries loaded, then past the window with nothing written since.
        using (var reopened = new ChangeStreamJournal(_dir))
        {
            Assert.Equal(2, reopened.Load(T0, 1000).LastOffset);
            reopened.Append([Of(3, "idle-3")]);
        }

        using (var again = new ChangeStreamJournal(_dir))
        {
            var (entries, last) = again.Load(T0, 1000);
            Assert.Equal(3, last);
            Assert.Equal([3L], entries.Select(e => e.Offset));
            again.Trim(oldest: 4);
        }

        Assert.False(Names("idle-3", _dir));
        using (var numbered = new ChangeStreamJournal(_dir))
        {
            var (none, newest) = numbered.Load(T0, 1000);
            Assert.Empty(none);
            Assert.Equal(3, newest); // the next entry is numbered 4: an offset a consumer saw is never handed out again
            numbered.Append([Of(4, "after")]);
        }

        using var last4 = new ChangeStreamJournal(_dir);
        Assert.Equal([4L], last4.Load(T0, 1000).Entries.Select(e => e.Offset));
    }

    private static bool Names(string user, string dir) => Directory.GetFiles(Path.Combine(dir, ChangeStreamJournal.FolderName), "stream-*.log")
        .Any(f => ReadShared(f).Contains(user, StringComparison.Ordinal));

    private static string ReadShared(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(file);
        return reader.ReadToEnd();
    }

    [Fact]
    public void Trimming_drops_only_segments_wholly_before_the_oldest_retained_entry()
    {
        var written = new List<FeedEntry>();
        int before;
        using (var journal = new ChangeStreamJournal(_dir, segmentBytes: 512))
        {
            for (var i = 0; i < 20; i++)
            {
                var batch = Entries(1 + (i * 10), 10, T0.AddHours(i));
                journal.Append(batch);
                written.AddRange(batch);
            }

            before = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log").Length;
            journal.Trim(oldest: 95); // offset 95 sits inside a segment: that segment, with its older entries, stays
        }

        var after = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log").Length;
        Assert.InRange(after, 2, before - 1); // some dropped, not all

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);
        Assert.Equal(200, last);
        Assert.InRange(entries[0].Offset, 2, 95); // something was dropped, and the first kept is at or before the oldest retained
        Assert.Equal(written.Where(e => e.Offset >= entries[0].Offset), entries); // everything after it, exactly
    }

    [Fact]
    public void Entries_past_the_window_leave_the_disk_though_their_segment_never_filled()
    {
        // Regression (review): a segment was closed only at 16 MiB (or a restart), and the one being written was never
        // trimmed: a quiet deployment kept every entry (user ids, segments, the events that caused them) for months
        // past the window.
        FeedEntry Of(long offset, string user) => new(offset, user, "seg", ChangeKind.Entered, T0.AddDays(offset), 3, $"event:{user}");
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.Append([Of(1, "expired-4711")]);
            journal.Trim(oldest: 2); // entry 1 is past the window
            journal.Append([Of(2, "kept-1"), Of(3, "kept-2")]);
            journal.Trim(oldest: 3);
        }

        var files = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log");
        Assert.DoesNotContain(files, f => File.ReadAllText(f).Contains("expired-4711", StringComparison.Ordinal));
        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0, 1000);
        Assert.Equal(3, last);
        Assert.Equal([2L, 3], entries.Select(e => e.Offset));
    }

    [Fact]
    public void Erasure_leaves_no_file_naming_the_user_and_the_journal_goes_on()
    {
        const string Erased = "erase-me-4711";
        FeedEntry Of(long offset, string user) => new(offset, user, "seg", ChangeKind.Entered, T0.AddMinutes(offset), 3, $"event:{offset}");
        var written = new List<FeedEntry>();
        using (var journal = new ChangeStreamJournal(_dir, segmentBytes: 512))
        {
            for (var i = 0; i < 12; i++)
            {
                var batch = Enumerable.Range(1 + (i * 5), 5).Select(o => Of(o, o % 4 == 0 ? Erased : $"keep-{o}")).ToList();
                journal.Append(batch);
                written.AddRange(batch);
            }

            journal.SaveMemberships(new MembershipCheckpoint(60, [(Erased, ["seg"]), ("keep-1", ["seg"])]));
            journal.SaveTriggers(new TriggerCheckpoint(60, [new PendingTrigger(Erased, "reminder", "seg", 4, T0.UtcTicks, T0.AddDays(3).UtcTicks), new PendingTrigger("keep-1", "reminder", "seg", 1, T0.UtcTicks, T0.AddDays(3).UtcTicks)]));
            Assert.Contains(Directory.EnumerateFiles(_dir, "*", SearchOption.AllDirectories), f => File.ReadAllText(f).Contains(Erased, StringComparison.Ordinal));

            journal.Redact(new HashSet<string> { Erased }, throughOffset: 61); // the stream had reached 61 when the user was erased

            // An append that read the user's entry before the erasure: written blanked all the same.
            var late = new List<FeedEntry> { Of(61, Erased), Of(62, "keep-62") };
            journal.Append(late);
            written.AddRange(late);
        }

        Assert.DoesNotContain(Directory.EnumerateFiles(_dir, "*", SearchOption.AllDirectories), f => File.ReadAllText(f).Contains(Erased, StringComparison.Ordinal));

        using var reopened = new ChangeStreamJournal(_dir);
        var (entries, last) = reopened.Load(T0.AddDays(-1), 1000);
        Assert.Equal(62, last);
        Assert.Equal(written.Select(e => e.UserId == Erased ? e with { UserId = "", Cause = "erased" } : e), entries); // offsets, segments and times kept
        Assert.Equal(["keep-1"], reopened.LoadMemberships()!.Users.Select(u => u.UserId));
        Assert.Equal(["keep-1"], reopened.LoadTriggers()!.Pending.Select(t => t.UserId));

        // A new profile under the same id after the erasure is named as any other.
        reopened.Append([Of(63, Erased)]);
        reopened.Dispose();
        using var third = new ChangeStreamJournal(_dir);
        Assert.Equal(Erased, third.Load(T0.AddDays(-1), 1000).Entries[^1].UserId);
    }

    [Fact]
    public async Task An_erasure_blanks_on_disk_only_what_it_blanked_in_memory_not_a_new_profile_under_the_id_made_during_its_compaction()
    {
        // The user's app keeps sending events while the erasure compacts the store: a new profile under the id enters
        // the segment, named in memory; it must be named on disk too, or a restart serves the same offset blanked.
        var journal = new ChangeStreamJournal(_dir);
        TestWorld? world = null;
        ChangeStreamService? writer = null; // its Flush is what the change stream's writer does every 100 ms
        var w = world = new TestWorld(
            TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")),
            compaction: new Application.Privacy.CallbackCompaction(() =>
            {
                Application.Membership.ChangeStreamTests.SetScore(world!, "u1", 80);
                writer!.Flush();
            }),
            journal: journal);
        writer = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock);
        void Flush() => writer!.Flush();
        List<FeedEntry> inMemory;
        using (w)
        {
            Application.Membership.ChangeStreamTests.SetScore(w, "u1", 80);
            Flush();

            await w.Rights.ForgetAsync("u1");
            inMemory = w.FeedAfter(0);
        }

        journal.Dispose();
        using var reopened = new ChangeStreamJournal(_dir);
        var (onDisk, _) = reopened.Load(T0.AddYears(-10), 1000);
        Assert.Equal(["", "u1"], inMemory.Where(e => e.SegmentId == "high").Select(e => e.UserId));
        Assert.Equal(inMemory, onDisk);
    }

    [Fact]
    public async Task A_retried_erasure_blanks_on_disk_the_entries_of_the_ids_stitched_to_the_user()
    {
        // Regression: the first attempt's compaction failed (a full disk) before the journal was redacted; the retry
        // found the profile gone and its stitched visitor id with it, redacted only the user's id and answered OK while
        // the visitor's entries stayed in the stream's files.
        var journal = new ChangeStreamJournal(_dir);
        var attempts = 0;
        var w = new TestWorld(
            TestCatalogs.Source(TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")),
            compaction: new Application.Privacy.CallbackCompaction(() =>
            {
                if (++attempts == 1)
                {
                    throw new IOException("No space left on device");
                }
            }),
            journal: journal);
        var writer = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock);
        void Flush() => writer.Flush();
        List<FeedEntry> inMemory;
        using (w)
        {
            Application.Membership.ChangeStreamTests.SetScore(w, "visitor-4711", 80);
            Flush();
            w.Ingestion.Identify("visitor-4711", "u1");

            await Assert.ThrowsAsync<Segmentation.Core.Application.Changes.StorageUnavailableException>(() => w.Rights.ForgetAsync("u1"));
            Application.Membership.ChangeStreamTests.SetScore(w, "visitor-4711", 90); // the cookie came back: a new profile
            Flush();
            await w.Rights.ForgetAsync("u1");
            inMemory = w.FeedAfter(0);
        }

        journal.Dispose();
        using var reopened = new ChangeStreamJournal(_dir);
        var (onDisk, _) = reopened.Load(T0.AddYears(-10), 1000);
        var high = onDisk.Where(e => e.SegmentId == "high").Select(e => e.UserId).ToList();
        Assert.Equal("visitor-4711", high[^1]); // the new profile's entry, not blanked by the retry
        Assert.All(high.SkipLast(1), id => Assert.Equal("", id)); // the erased user's, under either id
        Assert.DoesNotContain("u1", high);
        Assert.Equal(inMemory, onDisk);
    }

    [Fact]
    public void Saved_memberships_keep_every_segment_of_a_user_and_the_first_format_is_still_read()
    {
        // Regression: a user's segment count was written as a byte, so a user in 300 segments was saved in 255: every
        // restart announced 45 "entered" again and missed the "left" of any of them.
        var segments = Enumerable.Range(0, 300).Select(i => $"s{i}").ToArray();
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.SaveMemberships(new MembershipCheckpoint(7, [("u1", segments)]));
        }

        using (var reopened = new ChangeStreamJournal(_dir))
        {
            Assert.Equal(segments, Assert.Single(reopened.LoadMemberships()!.Users).Segments);
        }

        // A file the previous version wrote (format 1, the count as a byte) is read as it was.
        using (var payload = new MemoryStream())
        {
            using (var w = new BinaryWriter(payload, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                w.Write((byte)1);
                w.Write(7L);
                w.Write(1);
                w.Write("u1");
                w.Write((byte)2);
                w.Write("vip");
                w.Write("regular");
            }

            using var file = File.Create(Path.Combine(_dir, ChangeStreamJournal.FolderName, "memberships.bin"));
            Framing.Write(file, payload.ToArray());
        }

        using var old = new ChangeStreamJournal(_dir);
        Assert.Equal(["vip", "regular"], Assert.Single(old.LoadMemberships()!.Users).Segments);
    }

    [Fact]
    public void Pending_triggers_are_saved_and_read_back()
    {
        var checkpoint = new TriggerCheckpoint(42, [new PendingTrigger("u1", "reminder", "cart", 40, T0.UtcTicks, T0.AddDays(3).UtcTicks)]);
        using (var journal = new ChangeStreamJournal(_dir))
        {
            journal.SaveTriggers(checkpoint);
        }

        using var reopened = new ChangeStreamJournal(_dir);
        var loaded = reopened.LoadTriggers();

        Assert.NotNull(loaded);
        Assert.Equal(42, loaded.Cursor);
        Assert.Equal(checkpoint.Pending, loaded.Pending);
    }

    [Fact]
    public void A_journal_closed_at_shutdown_writes_nothing_after()
    {
        // Appends, saves and erasures reaching the journal after it was closed wrote their files, though the data
        // directory may by then be another server's (its lock released).
        var journal = new ChangeStreamJournal(_dir);
        journal.Dispose();
        var folder = Path.Combine(_dir, ChangeStreamJournal.FolderName);

        Assert.Throws<ObjectDisposedException>(() => journal.Append(Entries(1, 3)));
        Assert.Throws<ObjectDisposedException>(() => journal.SaveMemberships(new MembershipCheckpoint(0, [("u1", ["vip"])])));
        Assert.Throws<ObjectDisposedException>(() => journal.SaveTriggers(new TriggerCheckpoint(0, [])));
        Assert.Throws<ObjectDisposedException>(() => journal.Redact(new HashSet<string>(["u1"]), 0));
        Assert.Equal(["stream.id"], Directory.GetFiles(folder).Select(Path.GetFileName)); // the stream's identity, written when it was opened
    }
}
