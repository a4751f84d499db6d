using Segmentation.Core.Application.Changes;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Brings the store back at start-up: applies changes read back from durable storage through the same
/// handlers as live writes, without logging them again.
/// </summary>
public sealed class ChangeReplayer
{
    private readonly ProfileWriter _writer;
    private readonly EventRecorder _events;
    private readonly TraitWriter _traits;
    private readonly IdentityStitcher _identity;
    private readonly ConsentRecorder _consent;
    private readonly ProfileEraser _eraser;
    private readonly RetentionSweeper _retention;
    private readonly ProfileRefresher _refresher;

    private long _expiriesReplayed;

    internal ChangeReplayer(ProfileWriter writer, EventRecorder events, TraitWriter traits, IdentityStitcher identity, ConsentRecorder consent, ProfileEraser eraser, RetentionSweeper retention, ProfileRefresher refresher)
    {
        _writer = writer;
        _events = events;
        _traits = traits;
        _identity = identity;
        _consent = consent;
        _eraser = eraser;
        _retention = retention;
        _refresher = refresher;
    }

    /// <summary>
    /// Applies a change read back from the change log, through the same path as the live write but
    /// without logging it again, at the record's time, version and RFM model, so the profile ends up exactly
    /// as it was acknowledged. A record whose version the profile already has (or an event already recorded,
    /// or a consent entry already in the trail) is skipped; an erasure removes again. Applying the same
    /// record twice therefore gives the same store (snapshot and log tail may overlap).
    /// </summary>
    public void Replay(ChangeRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var stamp = _writer.Replayed(record);
        switch (record)
        {
            case EventChange change:
                _events.Apply(change.Key, change.Event, stamp);
                break;
            case TraitsChange change:
                var schema = _writer.Catalogs.Current.Traits;
                _traits.Apply(
                    change.UserId,
                    [.. change.Attributes.Select(a => a.ToAttribute()).Select(a => schema.TryGetValue(a.Name, out var d) ? a.Shared(d.Name, d.Pii) : a)],
                    stamp,
                    change.Attributes.Count > 0 ? change.Attributes[0].Source : "replay",
                    null,
                    null);
                break;
            case MergeChange change:
                _identity.Apply(change.AnonymousId, change.UserId, stamp, out _, out _);
                break;
            case ConsentChange change:
                _consent.Apply(change.Key, change.Consent, stamp);
                break;
            case ForgetChange change:
                _writer.Store.RaiseVersion(change.Version);
                _eraser.Replay(change.UserId, change.Version);
                foreach (var linked in change.LinkedIds)
                {
                    _eraser.Replay(linked, change.Version);
                }

                break;
            case ExpireChange change:
                var ids = change.EventIds.ToHashSet(StringComparer.Ordinal);
                _retention.Apply(change.UserId, e => ids.Contains(e.EventId), stamp, out _);
                _expiriesReplayed++; // a removal logged and not yet compacted away (a compaction drops the record with the files)
                break;
            case RfmModelChange change:
                _writer.Rfm.Publish(change.ToModel(), replayed: true);
                break;
            default:
                throw new ArgumentException($"unknown change record {record.GetType().Name}", nameof(record));
        }
    }

    /// <summary>
    /// Restores the durable store at start-up, before anything else writes: loads the snapshot the
    /// directory's manifest names, replays the state it carries (the RFM models) and then the log segments
    /// after it, each change at its logged time, version and model, so that every profile is exactly as it
    /// was acknowledged; opens the log for appending; leaves the last logged RFM model current (dirty when
    /// purchases were logged after it, as the running server's was); and then applies retention at the current
    /// time, as the running server's next sweep would have, so no event past its retention is served after a
    /// restart. Memberships of profiles restored from the snapshot are evaluated separately
    /// (<see cref="ProfileRefresher.EvaluateNewMemberships"/>).
    /// </summary>
    public StoreRestore Restore(IStoreRecovery durable)
    {
        ArgumentNullException.ThrowIfNull(durable);
        var memberships = _writer.Memberships;
        memberships.Replaying = true; // what is replayed already happened: its membership changes are in the change stream's own journal
        LogReplay recovery;
        RestoredSnapshot? snapshot;
        RfmModel model;
        RetentionResult expired;
        try
        {
            snapshot = durable.RestoreSnapshot();
            if (snapshot is not null)
            {
                _writer.Store.RaiseVersion(snapshot.State.VersionFloor);
                foreach (var record in snapshot.State.Preamble)
                {
                    Replay(record);
                }
            }

            recovery = durable.ReplayLog(Replay);

            // The last logged model is current again, dirty when purchases were logged after it: the periodic
            // recomputation then follows as it would have. A log without any model (written before models were
            // logged) gets one now rather than scoring everyone 0 until then.
            var rfm = _writer.Rfm;
            model = rfm.Current.Version == 0 && rfm.IsDirty ? _refresher.RecomputeRfm() : rfm.Current;

            // What expired while the server was down, still unannounced: a user restored from the snapshot alone is
            // not in the index yet, so every segment they hold would read as entered. The change stream's reconciliation
            // announces what the restart changed, against the memberships it saved.
            expired = _retention.ApplyRetention();

            // A replayed write is evaluated at the time it was made: a user whose segments changed with time after their
            // last record (aged into a cart abandonment, announced live) would be back as of that record, and the
            // restart would announce the change undone and then again. They are evaluated now, as a restart finds them.
            _refresher.RefreshExpiredMemberships();
        }
        finally
        {
            memberships.Replaying = false;
        }

        return new StoreRestore(snapshot, recovery, model, expired) { ExpiriesReplayed = _expiriesReplayed };
    }
}
