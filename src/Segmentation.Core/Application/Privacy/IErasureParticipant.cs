namespace Segmentation.Core.Application.Privacy;

/// <summary>
/// A holder of user data outside the profile store and its files (the Redis consumer's dead letters, for one) that an
/// erasure must reach too. <see cref="DataSubjectRights.ForgetAsync"/> calls every participant after durable storage is
/// compacted; one that cannot finish throws <see cref="IOException"/>, and the erasure is then reported as unfinished
/// (retryable), as a failed compaction is.
/// </summary>
public interface IErasureParticipant
{
    /// <summary>Removes everything this participant holds about any of <paramref name="ids"/> (a user and the ids stitched to it).</summary>
    Task EraseAsync(IReadOnlySet<string> ids, CancellationToken cancellationToken);
}
