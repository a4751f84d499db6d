using Segmentation.Core.Application.Changes;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Applies the retention policy: removes events older than their type's retention from every profile,
/// so they stop counting everywhere (aggregates, derived traits, segments, the history's causes).
/// </summary>
public sealed class RetentionSweeper
{
    private readonly ProfileWriter _writer;

    internal RetentionSweeper(ProfileWriter writer) => _writer = writer;

    /// <summary>How long events are kept.</summary>
    public RetentionPolicy Policy => _writer.Retention;

    /// <summary>
    /// Sweeps at the current time: per profile, under its lock, removes the events older than their type's
    /// retention with their ids, replays the aggregates over the rest (the same replay as a late event's) and
    /// derives again. Run periodically; compact durable storage afterwards so removed events also leave the
    /// disk (on replay they are skipped anyway).
    /// </summary>
    public RetentionResult ApplyRetention(CancellationToken cancellation = default)
    {
        var retention = _writer.Retention;
        if (retention.IsKeepForever)
        {
            return new RetentionResult(0, 0);
        }

        var now = _writer.Time.GetUtcNow();
        var nowTicks = now.UtcTicks;
        int profiles = 0, events = 0;
        foreach (var key in _writer.Store.Snapshot().Select(p => p.UserId).ToList())
        {
            cancellation.ThrowIfCancellationRequested();
            var update = Apply(key, e => retention.IsExpired(e, nowTicks), _writer.Live(now), out var removed);
            if (update.Changed && removed > 0)
            {
                profiles++;
                events += removed;
            }
        }

        return new RetentionResult(profiles, events);
    }

    /// <summary>
    /// Under the user's lock: removes the events <paramref name="expired"/> selects, logs their ids
    /// (write-ahead), derives again and takes their ids out of the segment history's causes, so a removed
    /// event is named nowhere.
    /// </summary>
    internal ProfileUpdate Apply(string key, Func<StoredEvent, bool> expired, WriteStamp stamp, out int removed)
    {
        var count = 0;
        var update = _writer.Store.Update(
            key,
            (p, version) =>
            {
                if (stamp.AlreadyIn(p))
                {
                    return p;
                }

                var gone = p.Events.Where(expired).Select(e => e.EventId).ToList();
                if (gone.Count == 0)
                {
                    return p;
                }

                if (stamp.Log)
                {
                    _writer.Log.Append(stamp.Stamp(new ExpireChange(p.UserId, gone), version));
                }

                var ids = gone.ToHashSet(StringComparer.Ordinal);
                var next = p.WithoutEvents(e => ids.Contains(e.EventId), version, out count).WithoutEventCauses(ids);
                return _writer.Derive(next, stamp, "retention");
            },
            stamp.Version);
        removed = count;
        _writer.PurchasesMayHaveChanged(update);
        return update;
    }
}
