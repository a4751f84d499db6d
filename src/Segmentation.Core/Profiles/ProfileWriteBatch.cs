namespace Segmentation.Core.Profiles;

/// <summary>
/// Writes to profiles that become visible together (<see cref="IProfileStore.BeginBatch"/>): each profile written stays
/// locked, its change prepared but unseen by readers and other writers, until <see cref="Commit"/> publishes them all
/// after its durable step (the change log's commit) returns. Used on one thread from begin to end; disposing it
/// abandons what is still prepared.
/// </summary>
/// <remarks>
/// A batch never waits for a profile's lock while it holds another: <see cref="TryUpdate"/> answers null instead, and
/// the caller commits what is prepared before writing again (then the write waits like any other). Two batches, or a
/// batch and a merge that locks two profiles, therefore never wait for each other in a circle.
/// </remarks>
public abstract class ProfileWriteBatch : IDisposable
{
    /// <summary>Profiles locked with a change prepared.</summary>
    public abstract int Prepared { get; }

    /// <summary>
    /// Prepares a write like <see cref="IProfileStore.Update{TState}"/>: <paramref name="mutate"/> runs on the profile as this
    /// batch left it (or as stored), under its lock, and a change keeps the lock until the batch ends. Returns null without
    /// calling <paramref name="mutate"/> when another writer holds the profile while this batch holds others.
    /// </summary>
    public abstract ProfileUpdate? TryUpdate<TState>(string key, TState state, Func<Profile, long, TState, Profile> mutate);

    /// <summary>
    /// Runs <paramref name="durable"/>, then publishes every prepared change, runs <paramref name="published"/> and releases
    /// the locks. When <paramref name="durable"/> throws, nothing is published and the exception propagates. The batch can
    /// be used again afterwards.
    /// </summary>
    public abstract void Commit(Action? durable, Action? published = null);

    /// <summary>Releases the locks still held; changes not committed are dropped.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the locks still held.</summary>
    protected abstract void Dispose(bool disposing);
}
