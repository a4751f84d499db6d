using Segmentation.Core.Application.Changes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Erases users (the right to erasure): the profile an id resolves to, every anonymous or session id
/// stitched to it, the identity links and the user's segment memberships, without emitting any
/// membership change.
/// </summary>
public sealed class ProfileEraser
{
    private readonly ProfileWriter _writer;

    internal ProfileEraser(ProfileWriter writer) => _writer = writer;

    /// <summary>
    /// Erases <paramref name="userId"/>. The erasure is logged write-ahead (<see cref="ForgetChange"/>) under the
    /// user's lock before anything is removed; compacting durable storage afterwards is the caller's part.
    /// Erasing an unknown or already erased id succeeds and logs nothing. Later writes for any of the ids
    /// start a fresh profile.
    /// </summary>
    public ForgetResult Forget(string userId)
    {
        var v = new ViolationList();
        v.RequiredId("user_id", userId);
        v.ThrowIfAny();
        var removal = Apply(userId, log: true);
        return new ForgetResult(removal.UserId, removal.Removed is not null || removal.LinkedIds.Count > 0, removal.LinkedIds);
    }

    /// <summary>
    /// Replays a logged erasure of <paramref name="key"/> at <paramref name="erasedAt"/> (the record's version): removes
    /// what the id resolves to unless that profile was written after the erasure. A snapshot taken while the erasure
    /// ran can already hold a later profile under the id or linked to it (the erased visitor came back and was merged
    /// into another user): that profile holds nothing erased and stays.
    /// </summary>
    internal void Replay(string key, long erasedAt)
    {
        if (_writer.Store.Get(key) is { } current && current.Version > erasedAt)
        {
            return;
        }

        Apply(key, log: false);
    }

    /// <summary>Removes <paramref name="key"/>'s profile and linked ids, logging the erasure first when <paramref name="log"/>.</summary>
    internal ProfileRemoval Apply(string key, bool log)
    {
        var store = _writer.Store;
        var memberships = _writer.Memberships;
        var removal = store.Remove(key, (resolved, profile, linked) =>
        {
            if (log && (profile is not null || linked.Count > 0))
            {
                // Its version keeps the versions of a profile written after the erasure above the erased one's.
                _writer.Log.Append(new ForgetChange(resolved, linked) { Version = Math.Max(profile?.Version ?? 0, store.Version), AppliedTicks = _writer.Time.GetUtcNow().UtcTicks });
            }

            memberships.Forget(resolved);
            foreach (var id in linked)
            {
                memberships.Forget(id);
            }
        });
        if (removal.Removed is { Orders: > 0 })
        {
            _writer.Rfm.MarkDirty();
        }

        return removal;
    }
}
