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
            var removedHere = 0;
            bool more;
            do
            {
                var update = Apply(key, e => retention.IsExpired(e, nowTicks), _writer.Live(now), out var removed, out more);
                removedHere += update.Changed ? removed : 0;
            }
            while (more);

            if (removedHere > 0)
            {
                profiles++;
                events += removedHere;
            }
        }

        return new RetentionResult(profiles, events);
    }

    /// <summary>
    /// The most bytes of event ids one logged removal names: a profile whose many events expire at once (more than
    /// about 100,000 of 36-character ids) is swept in several writes, each logged within the change log's record size,
    /// instead of one record too large to log.
    /// </summary>
    internal const int MaxExpiredIdBytesPerWrite = 4 * 1024 * 1024;

    // An id's size in the logged JSON at most: its quotes and comma, and each character as one byte when printable
    // ASCII the encoder leaves as it is, else six (an escape; a surrogate pair is two).
    private static long JsonSize(string id)
    {
        long size = 3;
        foreach (var c in id)
        {
            size += c is >= ' ' and <= '~' and not ('"' or '\\' or '<' or '>' or '&' or '\'' or '+' or '`') ? 1 : 6;
        }

        return size;
    }

    internal ProfileUpdate Apply(string key, Func<StoredEvent, bool> expired, WriteStamp stamp, out int removed) =>
        Apply(key, expired, stamp, out removed, out _);

    /// <summary>
    /// Under the user's lock: removes the events <paramref name="expired"/> selects, logs their ids
    /// (write-ahead), derives again and takes their ids out of the segment history's causes, so a removed
    /// event is named nowhere.
    /// </summary>
    /// <remarks><paramref name="more"/>: a live sweep stopped at <see cref="MaxExpiredIdBytesPerWrite"/>; call again for the rest.</remarks>
    internal ProfileUpdate Apply(string key, Func<StoredEvent, bool> expired, WriteStamp stamp, out int removed, out bool more)
    {
        var count = 0;
        var stopped = false;
        var update = _writer.Store.Update(
            key,
            (p, version) =>
            {
                stopped = false;
                if (stamp.AlreadyIn(p))
                {
                    return p;
                }

                var gone = new List<string>();
                long bytes = 0;
                foreach (var e in p.Events)
                {
                    if (!expired(e))
                    {
                        continue;
                    }

                    var size = JsonSize(e.EventId);
                    if (stamp.Log && gone.Count > 0 && bytes + size > MaxExpiredIdBytesPerWrite)
                    {
                        stopped = true;
                        break;
                    }

                    gone.Add(e.EventId);
                    bytes += size;
                }

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
        more = stopped && update.Changed;
        _writer.PurchasesMayHaveChanged(update);
        return update;
    }
}
