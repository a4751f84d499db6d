using Segmentation.Core.Application.Changes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>Result of recording one event.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Duplicate">True when the event id had been recorded before; nothing changed.</param>
public readonly record struct TrackResult(Profile Profile, bool Duplicate);

/// <summary>What happened to one event of a bulk write.</summary>
public enum EventStatus
{
    /// <summary>Recorded.</summary>
    Accepted,

    /// <summary>Already recorded (same event id); nothing changed.</summary>
    Duplicate,

    /// <summary>Invalid; nothing stored. See the violations.</summary>
    Rejected,
}

/// <summary>The result of one event of a bulk write.</summary>
public sealed record EventResult(int Index, string EventId, EventStatus Status, Profile? Profile, IReadOnlyList<FieldViolation> Violations)
{
    /// <summary>True when the event was rejected for being older than its type's retention: it must not be kept anywhere.</summary>
    public bool PastRetention { get; init; }
}

/// <summary>Result of a traits write.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Applied">Names whose value was stored.</param>
/// <param name="Ignored">Names not stored because a more reliable layer holds them (the more reliable layer wins).</param>
public sealed record SetTraitsResult(Profile Profile, IReadOnlyList<string> Applied, IReadOnlyList<string> Ignored);

/// <summary>Result of recording a consent grant or withdrawal.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Duplicate">True when the identical entry (purpose, grant, source, time) was already in the trail; nothing changed.</param>
public sealed record ConsentResult(Profile Profile, bool Duplicate);

/// <summary>Result of an erasure.</summary>
/// <param name="UserId">The erased profile's key (the id the request resolved to through identity links).</param>
/// <param name="Existed">False when there was nothing to erase (unknown id, or erased before).</param>
/// <param name="LinkedIds">The anonymous or session ids that were linked to it and were erased with it.</param>
public sealed record ForgetResult(string UserId, bool Existed, IReadOnlyList<string> LinkedIds);

/// <summary>Result of a retention pass.</summary>
/// <param name="ProfilesChanged">Profiles that lost at least one event.</param>
/// <param name="EventsRemoved">Events removed.</param>
public sealed record RetentionResult(int ProfilesChanged, int EventsRemoved);

/// <summary>What a start-up restore read.</summary>
/// <param name="Snapshot">The snapshot loaded, or null.</param>
/// <param name="Log">The log replayed after it.</param>
/// <param name="Rfm">The RFM model in force afterwards.</param>
/// <param name="Expired">What the retention sweep after the replay removed.</param>
public sealed record StoreRestore(RestoredSnapshot? Snapshot, LogReplay Log, RfmModel Rfm, RetentionResult Expired)
{
    /// <summary>
    /// Retention removals read back from the log: each was logged by a sweep whose compaction had not taken the
    /// removed events off the older files (a compaction deletes the record with them).
    /// </summary>
    public long ExpiriesReplayed { get; init; }

    /// <summary>True when events removed by retention may still be in the older files: durable storage is owed a compaction.</summary>
    public bool CompactionOwed => Expired.EventsRemoved > 0 || ExpiriesReplayed > 0;
}

/// <summary>Result of stitching an anonymous id to a user.</summary>
public sealed record IdentifyResult(Profile Profile, int MergedEvents, int DuplicateEvents);
