using Segmentation.Core.Application.Changes;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Stitches an anonymous or session id to a known user: the anonymous history merges into the user's,
/// events both recorded count once, and later events and decisions for the anonymous id go to the user.
/// </summary>
public sealed class IdentityStitcher
{
    private readonly ProfileWriter _writer;
    private readonly EventRecorder _events;

    internal IdentityStitcher(ProfileWriter writer, EventRecorder events) => (_writer, _events) = (writer, events);

    /// <summary>
    /// Raised after an anonymous id was linked to a user and its profile merged into theirs, live or replayed: the
    /// anonymous id, the user id as given, and the user's own id (the one the given id resolves to: another of its linked
    /// ids, or the same). Not raised when nothing was linked (both ids already lead to one profile).
    /// </summary>
    public event Action<string, string, string>? Linked;

    /// <summary>Links <paramref name="anonymousId"/> to <paramref name="userId"/> and merges its history.</summary>
    /// <exception cref="ValidationException">An id is missing or too long, or both are the same.</exception>
    /// <exception cref="PreconditionFailedException">The anonymous id is linked to another user already; nothing is merged.</exception>
    /// <exception cref="LimitExceededException">
    /// The merged profile would hold more events or consent records than one profile may, or the user would hold more than <see cref="InputLimits.MaxLinkedIdsPerProfile"/> linked ids (the anonymous id and any
    /// already stitched to it count); nothing is merged, linked or logged.
    /// </exception>
    public IdentifyResult Identify(string anonymousId, string userId)
    {
        var v = new ViolationList();
        v.RequiredId("anonymous_id", anonymousId);
        v.RequiredId("user_id", userId);
        if (anonymousId == userId && anonymousId.Length > 0)
        {
            v.Add("anonymous_id", "must differ from user_id");
        }

        v.ThrowIfAny();
        var update = Apply(anonymousId, userId, _writer.Live(_writer.Time.GetUtcNow()), out var merged, out var duplicates);
        return new IdentifyResult(update.After, merged, duplicates);
    }

    // Refuses a merge whose profile would hold more events or consent records than one profile may (nothing logged yet).
    private void CheckLimits(Profile merged, Profile into)
    {
        if (merged.Events.Count > _events.EventLimit && merged.Events.Count > into.Events.Count)
        {
            throw new LimitExceededException($"merged, the user would hold {merged.Events.Count:N0} events, past the {_events.EventLimit:N0} one profile may hold; nothing was merged or linked");
        }

        if (merged.ConsentTrail.Count > InputLimits.MaxConsentRecordsPerProfile && merged.ConsentTrail.Count > into.ConsentTrail.Count)
        {
            throw new LimitExceededException($"merged, the user's consent trail would hold {merged.ConsentTrail.Count:N0} records, past the {InputLimits.MaxConsentRecordsPerProfile:N0} one profile keeps; nothing was merged or linked");
        }
    }

    /// <summary>
    /// Under both profiles' locks: logs the merge (write-ahead), then merges. Nothing is logged when both ids
    /// already resolve to one profile. Holding both locks while logging keeps the record in order with every
    /// write to either profile, so a compaction that captures them after its rotation either sees the merge or
    /// finds the record in the log it replays. Events are logged under the key they were sent for and links are
    /// followed on replay, so an event logged before or after the merge record ends up in the same profile.
    /// </summary>
    internal ProfileUpdate Apply(string anonymousId, string userId, WriteStamp stamp, out int merged, out int duplicates)
    {
        int m = 0, d = 0;
        var customerMerged = false;
        string? linkedInto = null;
        if (!stamp.Log && IsUndoneLater(anonymousId, userId, stamp))
        {
            (merged, duplicates) = (0, 0);
            var held = _writer.Store.Get(userId) ?? new Profile(userId);
            return new ProfileUpdate(held, held);
        }

        var update = _writer.Store.Merge(
            anonymousId,
            userId,
            (into, from, version) =>
            {
                linkedInto = into.UserId; // the profile the ids lead to, whichever of its ids was given
                var result = from is null ? into : into.Merge(from, version, out m, out d);
                customerMerged = from is { Orders: > 0 };
                if (stamp.Log && from is not null)
                {
                    // The limits a profile's own writes keep hold for the merged one too (a replay restores what was accepted).
                    CheckLimits(result, into);
                }

                if (stamp.Log)
                {
                    _writer.Log.Append(stamp.Stamp(new MergeChange(anonymousId, userId), version)); // a link alone too: see IsUndoneLater
                }

                if (from is null)
                {
                    return into;
                }

                // The anonymous id leaves its segments (watchers see it leave) and is then no member of anything:
                // from now on it resolves to the user, who is counted once, under the user's id.
                _writer.Memberships.Retire(from.UserId, _writer.Catalogs.Current.Version, stamp.Now, $"identify:{userId}", publish: _writer.Consent.Gate(from) == ConsentGate.FullProfile);
                return _writer.Derive(result, stamp, $"identify:{anonymousId}");
            },
            stamp.Version,
            stamp.Log ? InputLimits.MaxLinkedIdsPerProfile : int.MaxValue, // a replay restores what was acknowledged
            onlyUnlinkedSource: stamp.Log);

        _writer.PurchasesMayHaveChanged(update, populationChanged: customerMerged); // the anonymous id was a customer: the population lost one, whatever the user's totals did
        if (linkedInto is not null)
        {
            Linked?.Invoke(anonymousId, userId, linkedInto);
        }

        (merged, duplicates) = (m, d);
        return update;
    }

    // A replayed merge that the store restored so far shows was undone before the snapshot was taken (an erasure of the
    // user dropped the link, and the snapshot holds what came after): the anonymous id is linked to another user now (live,
    // a linked id is never merged into a second user), or it has a profile written after the merge (live, every write to
    // it after the merge went to the user). Applying it would take that later history into the erased user.
    private bool IsUndoneLater(string anonymousId, string userId, WriteStamp stamp)
    {
        var store = _writer.Store;
        var source = store.Resolve(anonymousId);
        if (source != anonymousId)
        {
            return source != store.Resolve(userId);
        }

        return stamp.Version > 0 && store.Get(anonymousId) is { } later && later.Version > stamp.Version;
    }
}
