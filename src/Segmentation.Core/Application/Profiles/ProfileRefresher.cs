using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Keeps what is derived from many profiles current: the RFM model over the whole store, and the
/// memberships of users evaluated under another catalog version or model, or whose results may have
/// changed with time.
/// </summary>
public sealed class ProfileRefresher
{
    private readonly ProfileWriter _writer;

    internal ProfileRefresher(ProfileWriter writer) => _writer = writer;

    /// <summary>
    /// Recomputes the RFM model over the store, logs it (write-ahead, like every change: a restart derives
    /// the changes logged after it with the same model) and publishes it.
    /// </summary>
    public RfmModel RecomputeRfm()
    {
        var rfm = _writer.Rfm;
        var model = rfm.Compute(_writer.Store);
        lock (rfm.LogGate) // a snapshot's capture of the recent models waits for the publishing of one already logged
        {
            try
            {
                _writer.Log.Append(RfmModelChange.From(model));
            }
            catch
            {
                rfm.MarkDirty(); // not published: the next attempt recomputes
                throw;
            }

            AfterModelLogged?.Invoke();
            rfm.Publish(model);
        }

        return model;
    }

    /// <summary>Test hook: runs between a recomputed model's logging and its publishing.</summary>
    internal Action? AfterModelLogged { get; set; }

    /// <summary>
    /// Re-evaluates the memberships of users evaluated under another catalog version or RFM model, or whose
    /// results may have changed with time (memberships migrate when definitions change). Runs under each
    /// user's lock without changing the profile, so Decide is never blocked. Returns how many were re-evaluated.
    /// </summary>
    public int RefreshMemberships(CancellationToken cancellation = default)
    {
        var now = _writer.Time.GetUtcNow();
        return Reevaluate(_writer.Memberships.StaleUsers(_writer.Catalogs.Current.Version, _writer.Rfm.Current.Version, now.UtcTicks), now, cancellation);
    }

    // Evaluates each user again at now (the list is taken first: evaluating changes what it was read from).
    private int Reevaluate(IEnumerable<string> users, DateTimeOffset now, CancellationToken cancellation)
    {
        var count = 0;
        foreach (var user in users.ToList())
        {
            cancellation.ThrowIfCancellationRequested();
            _writer.EvaluateMembership(user, now, cause: null);
            count++;
        }

        return count;
    }

    /// <summary>
    /// Re-evaluates now the users whose last evaluation no longer holds with time (at a restore: a replayed write is
    /// evaluated at its own time, and the user may have aged into or out of a segment since). Those evaluated under
    /// another catalog or RFM model and still valid in time are left to <see cref="RefreshMemberships"/>, as they would
    /// have been without the restart.
    /// </summary>
    public int RefreshExpiredMemberships()
    {
        var now = _writer.Time.GetUtcNow();
        return Reevaluate(_writer.Memberships.ExpiredUsers(now.UtcTicks), now, CancellationToken.None);
    }

    /// <summary>
    /// Evaluates the memberships of every profile the membership index does not know yet (profiles
    /// restored from a snapshot), in parallel, each under its user's lock. Returns how many. For start-up,
    /// before traffic: an index still empty is first sized for the store (<see cref="MembershipIndex.Reserve"/>).
    /// The index is complete once this returns; when it throws, the index stays incomplete and the call may be made again.
    /// </summary>
    public int EvaluateNewMemberships(CancellationToken cancellation = default)
    {
        var now = _writer.Time.GetUtcNow();
        var count = 0;
        var memberships = _writer.Memberships;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        memberships.Reserve(_writer.Store.Count); // empty after a snapshot restore: sized once instead of grown a million entries
        memberships.BeginRebuild(_writer.Store.Count);
        Parallel.ForEach(_writer.Store.Snapshot(), new ParallelOptions { CancellationToken = cancellation }, profile =>
        {
            if (memberships.CatalogVersionOf(profile.UserId) == 0)
            {
                _writer.EvaluateMembership(profile.UserId, now, "restore");
                Interlocked.Increment(ref count);
            }

            memberships.RebuildStep();
        });

        // Complete only when every profile was evaluated: after a failure the index stays incomplete (its readers are
        // refused, with a retry hint) until a call that succeeds, which evaluates only the profiles still left out.
        memberships.EndRebuild(System.Diagnostics.Stopwatch.GetElapsedTime(started));
        return count;
    }
}
