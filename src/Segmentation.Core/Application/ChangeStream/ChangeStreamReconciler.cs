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
/// the cause <c>restart</c>. Users who no longer exist (erased) or refused personalization are left out. Without a
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
    /// or take changes whose entries were lost as told). Returns false when they could not be written (kept as before).
    /// </summary>
    public bool Save(Action? writeEntries = null)
    {
        var offset = feed.Last; // read first: every entry up to it is already in the index
        var users = memberships.Snapshot().ToList();
        writeEntries?.Invoke();
        if (feed.Journaled < offset)
        {
            return false;
        }

        journal.SaveMemberships(new MembershipCheckpoint(offset, users));
        return true;
    }

    /// <summary>Appends the differences; returns how many entries, or -1 when there was nothing to compare with.</summary>
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
            if (profiles.Get(user) is not { } profile || !string.Equals(profile.UserId, user, StringComparison.Ordinal) || gate.Gate(profile) != ConsentGate.FullProfile)
            {
                continue; // erased, merged into another id, or without personalization consent
            }

            var before = told.TryGetValue(user, out var set) ? set : [];
            var current = memberships.SegmentsOf(user);
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
        }

        return appended;
    }
}
