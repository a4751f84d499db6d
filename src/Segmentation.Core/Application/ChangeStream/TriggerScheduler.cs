using System.Globalization;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.ChangeStream;

/// <summary>A trigger scheduled by a user's entry into its segment.</summary>
/// <param name="UserId">The user.</param>
/// <param name="TriggerId">The trigger.</param>
/// <param name="SegmentId">Its segment.</param>
/// <param name="EnteredOffset">The stream offset of the entry into the segment.</param>
/// <param name="EnteredTicks">When the user entered (UTC ticks).</param>
/// <param name="DueTicks">When it comes due (UTC ticks).</param>
public sealed record PendingTrigger(string UserId, string TriggerId, string SegmentId, long EnteredOffset, long EnteredTicks, long DueTicks);

/// <summary>The pending triggers and the stream offset up to which entries are accounted for in them.</summary>
/// <param name="Cursor">Entries up to this offset have scheduled or cancelled what they should.</param>
/// <param name="Pending">The triggers not yet due.</param>
public sealed record TriggerCheckpoint(long Cursor, IReadOnlyList<PendingTrigger> Pending);

/// <summary>
/// Schedules the catalog's triggers from the change stream and fires them when due. It reads the stream like any
/// consumer: an entry into a segment arms each trigger of the segment for that user (a later entry re-arms it,
/// replacing the earlier one); leaving the segment disarms the triggers that need the user to still be a member.
/// When a trigger comes due it fires, as a <see cref="ChangeKind.Triggered"/> entry of the stream, only if it is still
/// in the catalog, the user still exists, is still in the segment (unless the trigger says otherwise) and no
/// <c>unless</c> event happened since the entry. Durable through <see cref="Capture"/>/<see cref="Restore"/> and the
/// stream itself: after a restart the entries after the checkpoint are read again, so nothing is lost; a trigger
/// that fired just before a crash may fire again (at least once).
/// </summary>
public sealed class TriggerScheduler(ChangeFeed feed, CatalogProvider catalogs, MembershipIndex memberships, IProfileStore profiles, ConsentPolicy? consent = null)
{
    /// <summary>Most triggers pending at once; entries beyond it are not scheduled (and counted in <see cref="Dropped"/>).</summary>
    public const int MaxPending = 1_000_000;

    private const string CausePrefix = "entered:";

    /// <summary>
    /// How long a trigger that needs membership waits past its time for the user's memberships to catch up with the
    /// serving catalog (a publish is re-evaluated over every user in the background); then the membership recorded decides.
    /// </summary>
    public static readonly TimeSpan MaxWaitForMemberships = TimeSpan.FromMinutes(5);

    private readonly Lock _gate = new();
    private readonly PriorityQueue<PendingTrigger, long> _queue = new();
    private readonly Dictionary<(string User, string Trigger), long> _armed = [];
    private readonly List<FeedEntry> _batch = [];
    private long _cursor = -1; // -1: start from the stream's end on the first tick
    private long _saved = -1;

    /// <summary>Triggers armed and not yet due.</summary>
    public int Pending { get { lock (_gate) { return _armed.Count; } } }

    /// <summary>Entries not scheduled because <see cref="MaxPending"/> triggers were pending.</summary>
    public long Dropped { get; private set; }

    /// <summary>Entries the scheduler could not read because the stream no longer retained them (it fell behind the retention window).</summary>
    public long Missed { get; private set; }

    /// <summary>Triggers fired so far.</summary>
    public long Fired { get; private set; }

    /// <summary>Loads a checkpoint at start-up, before the first <see cref="Tick"/>: the stream is read again from its cursor.</summary>
    public void Restore(TriggerCheckpoint checkpoint)
    {
        lock (_gate)
        {
            foreach (var p in checkpoint.Pending)
            {
                Arm(p);
            }

            _cursor = _saved = checkpoint.Cursor;
        }
    }

    /// <summary>
    /// Reads the stream's new entries (arming and disarming), then fires every trigger due at <paramref name="now"/>.
    /// Returns how many fired.
    /// </summary>
    public int Tick(DateTimeOffset now)
    {
        lock (_gate)
        {
            if (_cursor < 0)
            {
                _cursor = feed.Last;
            }

            Scan();
            return memberships.IsComplete ? FireDue(now) : 0; // while memberships are rebuilt after a restart, "still a member" cannot be told
        }
    }

    /// <summary>
    /// The state to save, or null when nothing changed since the last save. Its cursor is at most
    /// <paramref name="journaled"/>, so the entries after it are in the journal to be read again after a restart.
    /// </summary>
    public TriggerCheckpoint? Capture(long journaled)
    {
        lock (_gate)
        {
            var cursor = Math.Min(Math.Max(_cursor, 0), journaled);
            if (cursor == _saved)
            {
                return null;
            }

            var pending = new List<PendingTrigger>(_armed.Count);
            foreach (var (p, _) in _queue.UnorderedItems)
            {
                if (_armed.TryGetValue((p.UserId, p.TriggerId), out var offset) && offset == p.EnteredOffset)
                {
                    pending.Add(p);
                }
            }

            _saved = cursor;
            return new TriggerCheckpoint(cursor, pending);
        }
    }

    /// <summary>
    /// Drops every pending trigger of <paramref name="userIds"/> (an erasure): none fires, for them or for a new profile
    /// under the same id, and the next save no longer holds them.
    /// </summary>
    public void Forget(IReadOnlySet<string> userIds)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        lock (_gate)
        {
            var dropped = _armed.Keys.Where(k => userIds.Contains(k.User)).ToList();
            if (dropped.Count == 0)
            {
                return;
            }

            foreach (var key in dropped)
            {
                _armed.Remove(key);
            }

            var kept = _queue.UnorderedItems.Where(x => !userIds.Contains(x.Element.UserId)).ToList();
            _queue.Clear();
            _queue.EnqueueRange(kept);
            _saved = long.MinValue; // the saved state names them: the next capture saves again
        }
    }

    private void Scan()
    {
        var catalog = catalogs.Current;
        while (true)
        {
            _batch.Clear();
            try
            {
                if (feed.ReadAfter(_cursor, _batch, 4096) == 0)
                {
                    return;
                }
            }
            catch (FeedOffsetException ex)
            {
                // Fell behind the retention window (a restart after a long outage, or a burst beyond the capacity):
                // what was not read cannot be scheduled; go on from the oldest retained entry.
                Missed += Math.Max(0, ex.Oldest - 1 - _cursor);
                _cursor = Math.Min(ex.Oldest - 1, ex.Last);
                continue;
            }

            foreach (var entry in _batch)
            {
                _cursor = entry.Offset;
                switch (entry.Kind)
                {
                    case ChangeKind.Entered when entry.Again:
                        // Announced again at a personalization consent given back (announced before the withdrawal): the
                        // user did not enter it now. What was armed before stays armed (consent is checked when it fires),
                        // and one that fired does not fire again. A segment first announced at a grant is a plain entry.
                        break;
                    case ChangeKind.Entered when catalog.TriggersBySegment.TryGetValue(entry.SegmentId, out var triggers):
                        foreach (var t in triggers)
                        {
                            if (_armed.Count >= MaxPending && !_armed.ContainsKey((entry.UserId, t.Id)))
                            {
                                Dropped++;
                                continue;
                            }

                            Arm(new PendingTrigger(entry.UserId, t.Id, t.Segment, entry.Offset, entry.At.UtcTicks, (entry.At + t.Delay).UtcTicks));
                        }

                        break;
                    case ChangeKind.Left when catalog.TriggersBySegment.TryGetValue(entry.SegmentId, out var triggers):
                        foreach (var t in triggers)
                        {
                            if (t.StillMember)
                            {
                                _armed.Remove((entry.UserId, t.Id));
                            }
                        }

                        break;
                    case ChangeKind.Triggered when entry.Trigger is { } id
                        && _armed.TryGetValue((entry.UserId, id), out var armed)
                        && entry.Cause == CausePrefix + armed.ToString(CultureInfo.InvariantCulture):
                        _armed.Remove((entry.UserId, id)); // read again after a restart: it already fired
                        break;
                }
            }
        }
    }

    private void Arm(PendingTrigger p)
    {
        _armed[(p.UserId, p.TriggerId)] = p.EnteredOffset; // a later entry replaces an earlier one
        _queue.Enqueue(p, p.DueTicks);
        if (_queue.Count > 2 * Math.Max(_armed.Count, 4096))
        {
            // Users who keep entering and leaving leave replaced items behind: keep only the armed ones.
            var live = _queue.UnorderedItems.Where(x => _armed.TryGetValue((x.Element.UserId, x.Element.TriggerId), out var o) && o == x.Element.EnteredOffset).ToList();
            _queue.Clear();
            _queue.EnqueueRange(live);
        }
    }

    private int FireDue(DateTimeOffset now)
    {
        var catalog = catalogs.Current;
        var fired = 0;
        List<PendingTrigger>? deferred = null;
        while (_queue.TryPeek(out var p, out var due) && due <= now.UtcTicks)
        {
            _queue.Dequeue();
            if (!_armed.TryGetValue((p.UserId, p.TriggerId), out var offset) || offset != p.EnteredOffset)
            {
                continue; // disarmed, or replaced by a later entry
            }

            if (!catalog.TriggersById.TryGetValue(p.TriggerId, out var trigger) || trigger.Segment != p.SegmentId)
            {
                _armed.Remove((p.UserId, p.TriggerId));
                continue;
            }

            if (trigger.StillMember && memberships.IsStale(p.UserId, catalog.Version, now.UtcTicks) && now.UtcTicks - p.DueTicks < MaxWaitForMemberships.Ticks)
            {
                // The user's memberships predate the serving catalog (or their time ran out): whether they are still a
                // member is known once the refresh reaches them, when leaving disarms the trigger. Checked again then.
                (deferred ??= []).Add(p);
                continue;
            }

            _armed.Remove((p.UserId, p.TriggerId));
            if (FireIfStillHolds(trigger, p, now, catalog.Version))
            {
                fired++;
            }
        }

        foreach (var p in deferred ?? [])
        {
            _queue.Enqueue(p, now.UtcTicks + TimeSpan.TicksPerSecond);
        }

        Fired += fired;
        return fired;
    }

    /// <summary>Called after a due trigger's conditions were read and before it fires or not (tests: an erasure meanwhile).</summary>
    internal Action<string>? BeforeFiring { get; set; }

    // Checks and fires under the user's write lock, so an erasure (which takes it to remove the profile and then blanks
    // the user's stream entries) comes wholly before the check, and nothing fires, or after the entry, which it blanks.
    private bool FireIfStillHolds(Catalog.SegmentTrigger trigger, PendingTrigger p, DateTimeOffset now, long catalogVersion)
    {
        var fired = false;
        if (profiles.Get(p.UserId) is null)
        {
            return false; // erased (or never stored): checked first, so no lock is taken under an id that has no profile
        }

        profiles.Update(p.UserId, (profile, _) =>
        {
            var holds = StillHolds(trigger, p, profiles.Get(p.UserId));
            BeforeFiring?.Invoke(p.UserId);
            if (holds)
            {
                feed.Append(p.UserId, p.SegmentId, ChangeKind.Triggered, now, catalogVersion, CausePrefix + p.EnteredOffset.ToString(CultureInfo.InvariantCulture), p.TriggerId);
                fired = true;
            }

            return profile; // unchanged: nothing is written
        });
        return fired;
    }

    private bool StillHolds(Catalog.SegmentTrigger trigger, PendingTrigger p, Profile? stored)
    {
        if (stored is not { } profile || (consent ?? ConsentPolicy.Default).Gate(profile) != ConsentGate.FullProfile)
        {
            return false; // erased, or personalization consent withdrawn: such users never appear in the stream
        }

        if (!string.Equals(profile.UserId, p.UserId, StringComparison.Ordinal))
        {
            return false; // an anonymous id merged into a user since: the user's own entry into the segment arms the user's trigger
        }

        if (trigger.StillMember && !memberships.SegmentsOf(p.UserId).Contains(p.SegmentId))
        {
            return false;
        }

        foreach (var type in trigger.Unless)
        {
            if (profile.Series(type).LastTicks > p.EnteredTicks)
            {
                return false; // e.g. purchased since abandoning the cart
            }
        }

        return true;
    }
}
