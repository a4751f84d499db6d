
namespace Segmentation.Core.Profiles;

/// <summary>A profile write: the snapshot before (null when the profile did not exist) and after.</summary>
public readonly record struct ProfileUpdate(Profile? Before, Profile After)
{
    /// <summary>True when the write changed the profile.</summary>
    public bool Changed => !ReferenceEquals(Before, After);
}

/// <summary>An erasure from the store.</summary>
/// <param name="UserId">The key the request resolved to (the erased profile's key).</param>
/// <param name="Removed">The profile that was removed, or null when there was none.</param>
/// <param name="LinkedIds">The ids that were linked to <paramref name="UserId"/>; their links are gone.</param>
public sealed record ProfileRemoval(string UserId, Profile? Removed, IReadOnlyList<string> LinkedIds);

/// <summary>
/// The profile store seam. The embedded default is <see cref="InMemoryProfileStore"/>; a shared store
/// can replace it. Writes for one user are atomic and serialized; reads return immutable snapshots
/// without locking. Business rules (validation, derivation) live in the application layer's profile writer.
/// </summary>
public interface IProfileStore
{
    /// <summary>The current snapshot of a profile (following identity links), or null when unknown.</summary>
    Profile? Get(string key);

    /// <summary>
    /// Atomically replaces the profile of <paramref name="key"/> (following identity links) with
    /// <paramref name="mutate"/>(current, next version); an absent profile is passed as an empty one.
    /// Returning the instance passed in means "no change": nothing is stored.
    /// </summary>
    /// <param name="key">User id or anonymous id.</param>
    /// <param name="mutate">Builds the new profile under the user's write lock.</param>
    /// <param name="atVersion">
    /// 0 for a new write (the next version of the store's counter); the logged version of a change being
    /// replayed from the change log, which the write then takes (later versions stay above it).
    /// </param>
    ProfileUpdate Update(string key, Func<Profile, long, Profile> mutate, long atVersion = 0);

    /// <summary>
    /// <see cref="Update(string, Func{Profile, long, Profile}, long)"/> with the write's inputs passed as
    /// <paramref name="state"/>, so that a static <paramref name="mutate"/> captures nothing (the write path
    /// allocates no closure).
    /// </summary>
    ProfileUpdate Update<TState>(string key, TState state, Func<Profile, long, TState, Profile> mutate, long atVersion = 0) =>
        Update(key, (p, v) => mutate(p, v, state), atVersion);

    /// <summary>
    /// Atomically merges the profile of <paramref name="fromKey"/> into <paramref name="intoKey"/> with
    /// <paramref name="merge"/>(into, from or null when it has no profile, next version) under both
    /// profiles' write locks, removes the source, and links <paramref name="fromKey"/> to
    /// <paramref name="intoKey"/> so later reads and writes for it go there. Does nothing (and does not call
    /// <paramref name="merge"/>) when both keys already resolve to one profile.
    /// </summary>
    /// <param name="fromKey">The anonymous or session id.</param>
    /// <param name="intoKey">The known user.</param>
    /// <param name="merge">Builds the merged profile (and logs the merge) under both locks.</param>
    /// <param name="atVersion">As for <see cref="Update"/>.</param>
    /// <param name="maxLinkedIds">
    /// The most ids that may be linked to one profile: a merge that would link more to the target (the source, and the
    /// ids linked to it, on top of the target's) throws <see cref="Validation.LimitExceededException"/> under both locks,
    /// before <paramref name="merge"/> is called, so nothing is logged or changed.
    /// </param>
    /// <param name="onlyUnlinkedSource">
    /// When true, a <paramref name="fromKey"/> already linked to another profile than the target's throws
    /// <see cref="Validation.PreconditionFailedException"/> under both locks, before <paramref name="merge"/> is called:
    /// an anonymous id one user signed in with is never merged, with that user's whole profile, into a second user.
    /// </param>
    ProfileUpdate Merge(string fromKey, string intoKey, Func<Profile, Profile?, long, Profile> merge, long atVersion = 0, int maxLinkedIds = int.MaxValue, bool onlyUnlinkedSource = false);

    /// <summary>The highest profile version handed out so far.</summary>
    long Version { get; }

    /// <summary>Keeps every later version above <paramref name="version"/> (restore: versions never go backwards).</summary>
    void RaiseVersion(long version);

    /// <summary>
    /// Atomically erases the profile <paramref name="key"/> resolves to and every identity link pointing to
    /// it, under that profile's write lock. <paramref name="beforeRemove"/>(resolved key, profile or null,
    /// linked ids) runs under the lock before anything is removed (write-ahead logging); when it throws,
    /// nothing is removed. Later writes for any of the ids start a fresh, unlinked profile.
    /// </summary>
    ProfileRemoval Remove(string key, Action<string, Profile?, IReadOnlyList<string>>? beforeRemove = null);

    /// <summary>The key <paramref name="key"/> resolves to through identity links (itself when unlinked).</summary>
    string Resolve(string key);

    /// <summary>The ids linked to <paramref name="key"/> by identity stitching.</summary>
    IReadOnlyList<string> LinkedIds(string key);

    /// <summary>
    /// Reads a profile together with the ids linked to it while holding the profile's write lock, so the
    /// pair is consistent with every write (used to snapshot the store while writes continue).
    /// </summary>
    (Profile? Profile, IReadOnlyList<string> LinkedIds) Capture(string key);

    /// <summary>
    /// Loads a profile read from a snapshot (start-up, before any write); keeps versions increasing past it. Of two
    /// loads of one user the later version stays (a snapshot holds a user twice when a merge into it ran during the capture).
    /// </summary>
    void Restore(Profile profile);

    /// <summary>
    /// Restores identity links read from a snapshot: each alias resolves to <paramref name="key"/>; a
    /// profile stored under an alias is dropped (its data was merged into the target). Call after every
    /// profile is restored.
    /// </summary>
    void RestoreLinks(string key, IReadOnlyList<string> aliases);

    /// <summary>Number of profiles.</summary>
    int Count { get; }

    /// <summary>A moment-in-time enumeration of all profiles (for population statistics).</summary>
    IEnumerable<Profile> Snapshot();

    /// <summary>
    /// Every key that has a profile or a first write in progress (whose profile does not exist yet).
    /// Compaction reads each one with <see cref="Capture"/>, which waits for a write in progress, so a
    /// change logged before a log rotation is always in the snapshot that replaces that log.
    /// </summary>
    IEnumerable<string> Keys();

    /// <summary>
    /// Starts recording the profiles merges write into (each merge's target), until the recording is disposed: a walk of
    /// <see cref="Keys"/> that captures profiles one at a time (a snapshot) reads them again, since a merge can move a
    /// profile it has not reached into one it has already read, or into one created behind it.
    /// </summary>
    MergeRecording RecordMerges();

    /// <summary>
    /// Starts a capture of every profile as it is now, read later with <see cref="StoreCapture.Take"/> (on another
    /// thread, while writes go on): what it returns is the store as it was at this call. One capture at a time. This
    /// default reads the profiles here; the in-memory store defers the reading without holding writes.
    /// </summary>
    StoreCapture BeginCapture() => StoreCapture.Of([.. Snapshot()]);

    /// <summary>
    /// Starts a batch of writes published together once they are durable (<see cref="ProfileWriteBatch"/>), or returns
    /// null when the store cannot hold a change unseen; callers then write one change at a time.
    /// </summary>
    ProfileWriteBatch? BeginBatch() => null;
}

/// <summary>
/// Every profile of a store as it was when <see cref="IProfileStore.BeginCapture"/> was called; taken once. Disposing
/// it untaken ends it without reading (the store stops keeping profiles for it).
/// </summary>
public abstract class StoreCapture : IDisposable
{
    /// <summary>The profiles, each once, in no particular order; ends the capture (also when cancelled).</summary>
    public abstract Profile[] Take(CancellationToken cancellation = default);

    /// <inheritdoc />
    public abstract void Dispose();

    /// <summary>A capture of profiles already read.</summary>
    public static StoreCapture Of(Profile[] profiles) => new Read(profiles);

    private sealed class Read(Profile[] profiles) : StoreCapture
    {
        private Profile[]? _profiles = profiles;

        public override Profile[] Take(CancellationToken cancellation = default) =>
            Interlocked.Exchange(ref _profiles, null) ?? throw new InvalidOperationException("a capture is taken once (or was disposed)");

        public override void Dispose() => _profiles = null;
    }
}

/// <summary>The targets of the merges since a <see cref="IProfileStore.RecordMerges"/>, in order; stop it by disposing.</summary>
public sealed class MergeRecording(Action<MergeRecording> stop) : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _targets = new();

    /// <summary>Takes the oldest target not yet taken.</summary>
    public bool TryTake([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? target) => _targets.TryDequeue(out target);

    /// <summary>Records a merge's target (the store calls it under the merged profiles' locks).</summary>
    public void Add(string target) => _targets.Enqueue(target);

    /// <inheritdoc />
    public void Dispose() => stop(this);
}
