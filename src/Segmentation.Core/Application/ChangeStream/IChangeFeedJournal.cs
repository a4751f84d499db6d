using Segmentation.Core.Application.Membership;

namespace Segmentation.Core.Application.ChangeStream;

/// <summary>
/// Where the change stream and the pending triggers are kept across restarts (a file in the data directory when
/// one is configured). Appends, trims and saves come from <see cref="ChangeStreamService"/> (and the reconciler's saves);
/// <see cref="Redact"/> comes from an erasure, at any moment: an implementation serializes them.
/// </summary>
public interface IChangeFeedJournal
{
    /// <summary>
    /// The stream's identity, kept with its files for the life of the stream (a new stream, numbered from 1 again, gets a
    /// new one); null when nothing keeps it (the stream then gets a new one at every start).
    /// </summary>
    string? StreamId => null;

    /// <summary>The retained entries (at most <paramref name="max"/>, none before <paramref name="notBefore"/>), oldest first, and the newest offset ever written.</summary>
    (IReadOnlyList<FeedEntry> Entries, long LastOffset) Load(DateTimeOffset notBefore, int max);

    /// <summary>Appends entries (ascending offsets, continuing the journal); durable on disk when it returns.</summary>
    void Append(IReadOnlyList<FeedEntry> entries);

    /// <summary>Drops what is kept of entries before <paramref name="oldest"/> (the newest entries are always kept, so offsets never restart).</summary>
    void Trim(long oldest);

    /// <summary>The pending triggers as last saved, and the stream offset they account for; null when none were saved.</summary>
    TriggerCheckpoint? LoadTriggers();

    /// <summary>Saves the pending triggers (replacing what was saved), atomically.</summary>
    void SaveTriggers(TriggerCheckpoint checkpoint);

    /// <summary>The memberships as last saved and the stream offset they account for; null when none were saved.</summary>
    MembershipCheckpoint? LoadMemberships();

    /// <summary>Saves every user's memberships (replacing what was saved), atomically.</summary>
    void SaveMemberships(MembershipCheckpoint checkpoint);

    /// <summary>
    /// Erasure: rewrites what is kept on disk so that no file names <paramref name="userIds"/> — their stream entries up
    /// to <paramref name="throughOffset"/> (the stream's last offset when they were erased, as the stream in memory
    /// blanked them) keep offset, segment and time with an empty user id and the cause <c>erased</c>, whether written
    /// already or appended later (an append already under way); their saved memberships and pending triggers are
    /// dropped. An entry after that offset is a new profile's under the same id, and stays named. Atomic per file.
    /// </summary>
    void Redact(IReadOnlySet<string> userIds, long throughOffset);
}

/// <summary>Every user's segments at a point of the change stream: what consumers had been told by then.</summary>
/// <param name="Offset">Every entry up to this offset is reflected.</param>
/// <param name="Users">Users in at least one segment, with those segments.</param>
public sealed record MembershipCheckpoint(long Offset, IReadOnlyList<(string UserId, string[] Segments)> Users);

/// <summary>No journal: the stream is kept in memory only (no data directory).</summary>
public sealed class NoChangeFeedJournal : IChangeFeedJournal
{
    /// <summary>The one instance.</summary>
    public static readonly NoChangeFeedJournal Instance = new();

    private NoChangeFeedJournal()
    {
    }

    /// <inheritdoc />
    public (IReadOnlyList<FeedEntry> Entries, long LastOffset) Load(DateTimeOffset notBefore, int max) => ([], 0);

    /// <inheritdoc />
    public void Append(IReadOnlyList<FeedEntry> entries)
    {
    }

    /// <inheritdoc />
    public void Trim(long oldest)
    {
    }

    /// <inheritdoc />
    public void Redact(IReadOnlySet<string> userIds, long throughOffset)
    {
    }

    /// <inheritdoc />
    public TriggerCheckpoint? LoadTriggers() => null;

    /// <inheritdoc />
    public void SaveTriggers(TriggerCheckpoint checkpoint)
    {
    }

    /// <inheritdoc />
    public MembershipCheckpoint? LoadMemberships() => null;

    /// <inheritdoc />
    public void SaveMemberships(MembershipCheckpoint checkpoint)
    {
    }
}
