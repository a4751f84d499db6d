namespace Segmentation.Core.Application.Changes;

/// <summary>
/// How the durable store is read back at start-up. The file store (<c>Segmentation.Storage</c>) implements
/// it; a shared store for a cluster would too. The caller replays what it returns through the same write
/// path as live writes (<see cref="Profiles.ProfileIngestion.Restore"/>).
/// </summary>
public interface IStoreRecovery
{
    /// <summary>
    /// Loads the latest snapshot's profiles into the profile store and returns what else it held, or null
    /// when there is no snapshot. Call once, before <see cref="ReplayLog"/>.
    /// </summary>
    RestoredSnapshot? RestoreSnapshot();

    /// <summary>
    /// Passes every change logged after the snapshot to <paramref name="apply"/>, in log order, and opens
    /// the log for appending.
    /// </summary>
    LogReplay ReplayLog(Action<ChangeRecord> apply);

    /// <summary>Files the store expected but the operator accepted losing at this start (then compact right after restore).</summary>
    IReadOnlyList<string> Lost { get; }
}

/// <summary>What a snapshot held besides the profiles it loaded.</summary>
/// <param name="Profiles">Profiles loaded.</param>
/// <param name="Bytes">Size of the snapshot file.</param>
/// <param name="Elapsed">Time taken.</param>
/// <param name="State">The store's state besides profiles (replayed before the log).</param>
public sealed record RestoredSnapshot(long Profiles, long Bytes, TimeSpan Elapsed, SnapshotState State);

/// <summary>What replaying the change log found.</summary>
/// <param name="Records">Good records replayed.</param>
/// <param name="Bytes">Length of the log after recovery.</param>
/// <param name="DroppedBytes">Bytes of a torn tail that were truncated (0 when the log was clean).</param>
/// <param name="Elapsed">Time taken, replay included.</param>
public sealed record LogReplay(long Records, long Bytes, long DroppedBytes, TimeSpan Elapsed);

/// <summary>What a snapshot holds besides its profiles.</summary>
/// <param name="Preamble">Records replayed before the log that follows the snapshot (the recent RFM models).</param>
/// <param name="VersionFloor">The highest profile version handed out so far; later versions stay above it after a restore.</param>
public sealed record SnapshotState(IReadOnlyList<ChangeRecord> Preamble, long VersionFloor)
{
    /// <summary>Nothing besides profiles.</summary>
    public static readonly SnapshotState None = new([], 0);
}

/// <summary>
/// What the store holds besides profiles that a snapshot must carry, taken right after the log rotates
/// (the application's part: the recent RFM models).
/// </summary>
public interface ISnapshotStateSource
{
    /// <summary>The state to write into the next snapshot.</summary>
    SnapshotState Capture();
}

/// <summary>The durable store cannot take a write now (full disk, I/O error); the write was not applied and may be retried.</summary>
public sealed class StorageUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StorageUnavailableException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public StorageUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and cause.</summary>
    public StorageUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// What went wrong with a write, in words a caller may be told: the operating system's message names the server's
    /// files, so it is kept for the server's log.
    /// </summary>
    public static string Describe(Exception error) => error switch
    {
        UnauthorizedAccessException => "access to the data directory was denied",
        IOException { HResult: 28 or unchecked((int)0x80070070) or unchecked((int)0x80070027) } => "no space left on the device", // ENOSPC; Windows' disk full
        IOException => "an I/O error",
        _ => error.GetType().Name,
    };
}
