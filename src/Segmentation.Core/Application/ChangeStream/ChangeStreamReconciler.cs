using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.ChangeStream;

/// <summary>
/// Announces, after a restart, what changed while the server was down: the memberships last saved (with the stream
/// offset they account for), brought up to date with the stream's own entries after that offset, are what consumers
/// were told; the memberships rebuilt at start-up are what is true now. Every difference — a user who aged into
/// <c>email_inactive</c> overnight, a change whose entry a crash kept from the journal — is appended as an entry with
/// the cause <c>restart</c>, and reported to the index's <see cref="MembershipIndex.Moved"/> hook as a move (churn is counted from
/// it). Users who no longer exist (erased) or refused personalization are left out. Without a
/// saved checkpoint (the first start), or when the stream no longer holds the entries after it, nothing is announced.
/// </summary>
public sealed class ChangeStreamReconciler(ChangeFeed feed, MembershipIndex memberships, IChangeFeedJournal journal, IProfileStore profiles, CatalogProvider catalogs, TimeProvider time, ConsentPolicy? consent = null)
{
    /// <summary>The cause of the entries it appends.</summary>
    public const string Cause = "restart";

    /// <summary>
    /// Saves what consumers have been told so far (call periodically and at shutdown). <paramref name="writeEntries"/>
    /// writes the stream's unwritten entries: the checkpoint is saved only once every entry it accounts for is written,
    /// so a crash never leaves it ahead of the stream (a restart would then find its offset gone and announce nothing,
    /// or take changes whose entries were lost as told). When they could not be written, the last checkpoint is kept.
    /// </summary>
    public void Save(Action? writeEntries = null)
    {
        // The offset is read first: every entry up to it is already in the index. The index may be ahead of it too (a
        // move set in the index, its entries not appended yet): a checkpoint of that would take the move as told, and a
        // crash before its entries were written would lose them for good. So the snapshot is kept only when no move was
        // half-made as it was checked (else taken again, a few times, or not saved this time); every move it holds then
        // has its entries at or before the stream's end read after it, and it is saved only once those are written. The
        // entries between the offset and that end are read again onto it at a restart (entering twice is entering).
        long offset = 0, covered = 0;
        List<(string UserId, string[] Segments)>? users = null;
        for (var attempt = 0; attempt < MaxSnapshotAttempts && users is null; attempt++)
        {
            offset = feed.Last;
            var taken = memberships.Snapshot(announcedOnly: true).ToList(); // a user without consent was told nothing: a grant is announced whole
            users = memberships.Moving ? null : taken;
            covered = feed.Last;
        }

        if (users is null)
        {
            return; // moves never paused long enough: the last checkpoint is kept, the next save tries again
        }

        writeEntries?.Invoke();
        if (feed.Journaled >= covered)
        {
            // A user erased since the snapshot (whose erasure may already have rewritten the file) is not written back.
            users.RemoveAll(u => profiles.Get(u.UserId) is null);
            journal.SaveMemberships(new MembershipCheckpoint(offset, users));
        }
    }

    // How many times a save takes the index's snapshot again while moves are under way before it gives up for now.
    private const int MaxSnapshotAttempts = 20;

    /// <summary>Test hook: runs for a user with differences just before they are checked again under the user's lock.</summary>
    internal Action<string>? BeforeAnnouncing { get; set; }

    /// <summary>
    /// Appends the differences; returns how many entries, or -1 when there was nothing to compare with. Live writes go
    /// on meanwhile (the index is complete): a user found with differences is checked again under the user's write lock,
    /// after reading the entries appended since, so an entry a live write appended is never contradicted by an older
    /// comparison.
    /// </summary>
    public int Reconcile()
    {
        if (journal.LoadMemberships() is not { } saved)
        {
            return -1;
        }

        var told = saved.Users.ToDictionary(u => u.UserId, u => new HashSet<string>(u.Segments, StringComparer.Ordinal), StringComparer.Ordinal);
        var batch = new List<FeedEntry>();
        var cursor = saved.Offset;
        try
        {
            cursor = ReadTold(told, cursor, batch);
        }
        catch (FeedOffsetException)
        {
            return -1; // the entries after the checkpoint are gone: the comparison would announce noise
        }

        var now = time.GetUtcNow();
        var version = catalogs.Current.Version;
        var gate = consent ?? ConsentPolicy.Default;
        var appended = 0;
        var users = new HashSet<string>(told.Keys, StringComparer.Ordinal);
        users.UnionWith(memberships.Snapshot().Select(u => u.UserId));
        foreach (var user in users)
        {
            if (!Announceable(profiles.Get(user), user, gate) || !Differs(told, user))
            {
                continue;
            }

            BeforeAnnouncing?.Invoke(user);
            try
            {
                profiles.Update(user, (p, _) =>
                {
                    if (Announceable(p, user, gate))
                    {
                        cursor = ReadTold(told, cursor, batch); // no entry of this user can be appended while this runs
                        appended += Announce(told, user, now, version);
                    }

                    return p; // nothing stored
                });
            }
            catch (FeedOffsetException)
            {
                break; // entries since read expired meanwhile (a stream far past its retention): what is left is not known
            }
        }

        return appended;
    }

    // Erased (or an empty profile in its place), merged into another id, or without personalization consent: left out.
    private static bool Announceable(Profile? profile, string user, ConsentPolicy gate) =>
        profile is { } p && string.Equals(p.UserId, user, StringComparison.Ordinal) && p.TotalEvents + p.Attributes.Count > 0 && gate.Gate(p) == ConsentGate.FullProfile;

    private bool Differs(Dictionary<string, HashSet<string>> told, string user) =>
        told.TryGetValue(user, out var before) ? !before.SetEquals(memberships.SegmentsOf(user)) : memberships.SegmentsOf(user).Count > 0;

    // Applies the stream's entries after `cursor` to what consumers were told; returns the new cursor.
    private long ReadTold(Dictionary<string, HashSet<string>> told, long cursor, List<FeedEntry> batch)
    {
        while (feed.ReadAllAfter(cursor, batch, 4096) > 0)
        {
            foreach (var e in batch)
            {
                cursor = e.Offset;
                if (e.Kind == ChangeKind.Entered)
                {
                    (told.TryGetValue(e.UserId, out var set) ? set : told[e.UserId] = new HashSet<string>(StringComparer.Ordinal)).Add(e.SegmentId);
                }
                else if (e.Kind == ChangeKind.Left && told.TryGetValue(e.UserId, out var set))
                {
                    set.Remove(e.SegmentId);
                }
            }

            batch.Clear();
        }

        return cursor;
    }

    private int Announce(Dictionary<string, HashSet<string>> told, string user, DateTimeOffset now, long version)
    {
        var before = told.TryGetValue(user, out var set) ? set : [];
        var current = memberships.SegmentsOf(user);
        var appended = 0;
        foreach (var segment in current)
        {
            if (!before.Contains(segment))
            {
                feed.Append(user, segment, ChangeKind.Entered, now, version, Cause);
                appended++;
            }
        }

        foreach (var segment in before)
        {
            if (!current.Contains(segment))
            {
                feed.Append(user, segment, ChangeKind.Left, now, version, Cause);
                appended++;
            }
        }

        // The rebuilt index started from nothing, so it saw no move: what the measurement counts from moves (churn into a
        // lapsed state while the server was down) is counted here, at the restart, as the stream announces it.
        if (appended > 0 && before.Count > 0)
        {
            memberships.Moved?.Invoke([.. before], current, now);
        }

        return appended;
    }
}
