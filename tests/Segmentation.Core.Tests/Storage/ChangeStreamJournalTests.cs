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

    [Fact]
    public void Only_the_newest_entries_within_the_window_are_loaded_and_trimming_keeps_the_numbering()
    {
        using (var journal = new ChangeStreamJournal(_dir, segmentBytes: 512))
        {
            for (var i = 0; i < 20; i++)
            {
                journal.Append(Entries(1 + (i * 10), 10, T0.AddHours(i)));
            }

            journal.Trim(oldest: 201); // everything expired: only the newest segment stays
        }

        var files = Directory.GetFiles(Path.Combine(_dir, ChangeStreamJournal.FolderName), "stream-*.log");
        Assert.Single(files);
        using var reopened = new ChangeStreamJournal(_dir);
        Assert.Equal(200, reopened.Load(T0.AddDays(30), 1000).LastOffset); // nothing retained, numbering known
        var (entries, _) = reopened.Load(T0.AddHours(19), 5);
        Assert.Equal([196L, 197, 198, 199, 200], entries.Select(e => e.Offset));
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
}
