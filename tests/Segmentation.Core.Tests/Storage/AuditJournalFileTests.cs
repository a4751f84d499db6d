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
}
