using System.Globalization;
using System.Runtime.ExceptionServices;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Records behavioural events: validates each, refuses one past its type's retention or past the
/// profile's event limit, skips an event id already recorded, and applies it under the user's lock,
/// logged write-ahead and derived before the call returns.
/// </summary>
public sealed class EventRecorder
{
    private readonly ProfileWriter _writer;

    internal EventRecorder(ProfileWriter writer) => _writer = writer;

    /// <summary>Most events one profile holds; an event beyond it is refused (RESOURCE_EXHAUSTED) until retention or erasure makes room.</summary>
    public int EventLimit { get; internal set; } = InputLimits.MaxEventsPerProfile;

    /// <summary>The quality of the events sent so far: accepted, duplicates, rejections by reason, completeness.</summary>
    public EventQuality Quality { get; } = new();

    /// <summary>Called with each event accepted (not a duplicate) and the profile holding it; must be quick and must not throw.</summary>
    public Action<BehaviourEvent, Profile>? Accepted { get; set; }

    /// <summary>Validates and records one event. Throws <see cref="ValidationException"/> when invalid.</summary>
    public TrackResult Track(BehaviourEvent e, string prefix = "event")
    {
        ArgumentNullException.ThrowIfNull(e);
        ProfileUpdate update;
        try
        {
            update = Apply(e.ProfileKey, StoredEvent.From(e), Validate(e, prefix));
        }
        catch (Exception ex) when (RefusesAlone(ex))
        {
            CountRefusal(ex, prefix);
            throw;
        }

        Recorded(e, update);
        return new TrackResult(update.After, !update.Changed);
    }

    // Validates an event and refuses one past its type's retention; returns the stamp of its write.
    private WriteStamp Validate(BehaviourEvent e, string prefix)
    {
        var now = _writer.Time.GetUtcNow();
        EventValidator.Validate(e, now, prefix);
        var retention = _writer.Retention;
        if (retention.IsExpired(e.Type, e.Timestamp.UtcTicks, now.UtcTicks))
        {
            throw new ValidationException($"{prefix}.timestamp", $"is older than the retention period of '{(e.Type.Length > 64 ? e.Type[..64] : e.Type)}' events ({retention.For(e.Type)!.Value.TotalDays:0.##} days): such events are not stored") { PastRetention = true };
        }

        return _writer.Live(now);
    }

    /// <summary>
    /// True for the exceptions that refuse one event on its own, whatever the others of its batch: it is invalid
    /// (<see cref="ValidationException"/>) or its profile holds the most events it may (<see cref="LimitExceededException"/>).
    /// </summary>
    public static bool RefusesAlone(Exception refusal) => refusal is ValidationException or LimitExceededException;

    // Counts an event refused on its own under its reason.
    private void CountRefusal(Exception refusal, string prefix)
    {
        if (refusal is ValidationException invalid)
        {
            Quality.Rejected(invalid.Violations, prefix);
        }
        else
        {
            Quality.Rejected("event_limit");
        }
    }

    // Counts a recorded event and tells the listener: once it is applied (and durable).
    private void Recorded(BehaviourEvent e, ProfileUpdate update)
    {
        if (!update.Changed)
        {
            Quality.Duplicate();
            return;
        }

        Quality.Accepted(e);
        Accepted?.Invoke(e, update.After);
    }

    /// <summary>
    /// Records many events; each is validated and applied on its own, so one bad event is rejected by
    /// itself and never affects the others. Results are returned in order, once all are recorded (see
    /// <see cref="TrackAll"/>). A batch of no events, or of more than
    /// <see cref="InputLimits.MaxEventsPerCall"/>, is refused whole (<see cref="ValidationException"/>).
    /// </summary>
    public IEnumerable<EventResult> TrackMany(IReadOnlyList<BehaviourEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        InputLimits.CheckEventsPerCall(events.Count);
        var items = new BatchItem[events.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = new BatchItem(i, events[i], BatchField(i));
        }

        return TrackAll(items);
    }

    /// <summary>One event of a batch: the index its result carries, the event, and the field its violations name.</summary>
    public readonly record struct BatchItem(int Index, BehaviourEvent Event, string Prefix)
    {
        /// <summary>
        /// True when this event comes after the one before it in the batch from the same caller, in order: when that
        /// one's write failed unexpectedly (not a rejection), this one is not tried either, and is refused with the same failure.
        /// </summary>
        public bool FollowsPrevious { get; init; }
    }

    /// <summary>
    /// Records a batch's events in order, each validated and applied on its own (one bad event is rejected by itself and
    /// never affects the others), and returns their results in order.
    /// </summary>
    /// <remarks>
    /// With a change log that keeps records, the batch's changes reach it in one group commit instead of one flush per
    /// event: each profile written keeps its lock, its change prepared but unseen, until the commit is on disk, and only
    /// then are the changes applied, so nothing is applied before it is durable. A profile another writer holds splits the
    /// batch: what is prepared is committed first, then the write waits for its turn. A failed commit applies none of the
    /// changes prepared with it, and the events after it are not tried; the commits before it stay applied. Without
    /// <paramref name="refusals"/> the failure (<see cref="Changes.StorageUnavailableException"/>) propagates, and with it
    /// the results of those earlier commits are lost to the caller (sending the batch again finds them duplicates).
    /// </remarks>
    /// <param name="items">The events, each with its result's index and its field name.</param>
    /// <param name="refusals">
    /// When given (as long as <paramref name="items"/>), the exception that refused each event, null for the others: a
    /// <see cref="ValidationException"/> or <see cref="LimitExceededException"/> for an event rejected on its own (as
    /// <see cref="Track"/> would throw it), or the failure of a commit for each event it did not apply and every event after
    /// it (their results say Rejected, without violations). A failed commit is then reported here instead of thrown, so
    /// the events of the commits before it keep their results.
    /// </param>
    public EventResult[] TrackAll(IReadOnlyList<BatchItem> items, Exception?[]? refusals = null)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (refusals is not null && refusals.Length < items.Count)
        {
            throw new ArgumentException($"refusals has room for {refusals.Length} events, the batch has {items.Count}", nameof(refusals));
        }

        var results = new EventResult[items.Count];
        using var batch = _writer.Log.KeepsRecords ? _writer.Store.BeginBatch() : null;
        if (batch is null)
        {
            for (var i = 0; i < results.Length; i++)
            {
                results[i] = TrackReported(items[i].Index, items[i].Event, items[i].Prefix, out var refusal);
                refusals?[i] = refusal;
            }

            return results;
        }

        var unit = new Unit();
        var failure = Prepare(batch, unit, items, results, refusals) ?? Commit(batch, unit, items, results);
        if (failure is not null)
        {
            if (refusals is null)
            {
                ExceptionDispatchInfo.Throw(failure);
            }

            // The commit that failed applied none of its events, and the events after it were not tried.
            for (var i = 0; i < results.Length; i++)
            {
                if (results[i] is null)
                {
                    results[i] = NotApplied(items[i].Index, items[i].Event);
                    refusals[i] = failure;
                }
            }
        }

        return results;
    }

    // Prepares the batch's events in order, committing what is prepared whenever a profile another writer holds is
    // next; returns the failure of such a commit (the events from there on are not tried), null when all are prepared.
    private Exception? Prepare(ProfileWriteBatch batch, Unit unit, IReadOnlyList<BatchItem> items, EventResult[] results, Exception?[]? refusals)
    {
        Exception? failedAlone = null; // the failure of the event before, when its write failed unexpectedly
        for (var i = 0; i < results.Length; i++)
        {
            var (index, e, prefix) = items[i];
            ArgumentNullException.ThrowIfNull(e);
            if (failedAlone is not null && items[i].FollowsPrevious)
            {
                // One caller's events in order: after one that could not be written, the rest are not tried.
                results[i] = NotApplied(index, e);
                refusals![i] = failedAlone;
                continue;
            }

            failedAlone = null;
            var (records, memberships) = (unit.Records.Count, unit.Memberships.Count);
            try
            {
                var stamp = Validate(e, prefix);
                var stored = StoredEvent.From(e);
                ProfileUpdate? update;
                while ((update = batch.TryUpdate(e.ProfileKey, new Write(this, e.ProfileKey, stored, stamp, unit), Mutate)) is null)
                {
                    if (Commit(batch, unit, items, results) is { } failure)
                    {
                        return failure; // another writer holds this profile: what is prepared went first, and failed
                    }

                    (records, memberships) = (0, 0);
                }

                unit.Written.Add((i, update.Value));
            }
            catch (Exception ex) when (refusals is not null && !RefusesAlone(ex))
            {
                // A failure of this event's write alone (its profile's lock was not kept, nothing of it prepared): what it
                // queued for the commit goes, and the batch goes on, as one call of Track would fail alone.
                unit.Records.RemoveRange(records, unit.Records.Count - records);
                unit.Memberships.RemoveFrom(memberships);
                results[i] = NotApplied(index, e);
                refusals[i] = ex;
                failedAlone = ex;
            }
            catch (Exception ex) when (RefusesAlone(ex))
            {
                CountRefusal(ex, prefix);
                results[i] = Rejected(index, e, prefix, ex);
                refusals?[i] = ex;
            }
        }

        return null;
    }

    /// <summary>The result of an event recorded: accepted, or a duplicate of one recorded before.</summary>
    public static EventResult Recorded(int index, BehaviourEvent e, TrackResult recorded) =>
        new(index, e.EventId, recorded.Duplicate ? EventStatus.Duplicate : EventStatus.Accepted, recorded.Profile, []);

    // The result of an event a failure kept from being applied (its commit's, or its own write's): rejected, its refusal
    // says why.
    private static EventResult NotApplied(int index, BehaviourEvent e) => new(index, e.EventId, EventStatus.Rejected, null, []);

    /// <summary>The result of an event refused on its own (<paramref name="refusal"/>: see <see cref="RefusesAlone"/>).</summary>
    public static EventResult Rejected(int index, BehaviourEvent e, string prefix, Exception refusal) =>
        new(index, e.EventId, EventStatus.Rejected, null, refusal is ValidationException invalid ? invalid.Violations : [new FieldViolation(prefix, refusal.Message)])
        {
            PastRetention = refusal is ValidationException { PastRetention: true },
        };

    // The writes of a batch not yet committed: their change-log records, their membership updates, and which results wait.
    private sealed class Unit
    {
        public List<Changes.ChangeRecord> Records { get; } = [];

        public PendingMemberships Memberships { get; } = new();

        public List<(int Item, ProfileUpdate Update)> Written { get; } = [];
    }

    // Writes the batch's records in one group commit, publishes its writes and answers their events; returns why the
    // commit failed (nothing of it applied, its events left unanswered), or null.
    private Exception? Commit(ProfileWriteBatch batch, Unit unit, IReadOnlyList<BatchItem> items, EventResult[] results)
    {
        Exception? refused = null;
        try
        {
            batch.Commit(
                unit.Records.Count == 0 ? null : () =>
                {
                    try
                    {
                        _writer.Log.AppendAll(unit.Records);
                    }
                    catch (Exception ex)
                    {
                        refused = ex;
                        throw;
                    }
                },
                unit.Memberships.Count == 0 ? null : () => unit.Memberships.Apply(_writer.Memberships));
        }
        catch (Exception failure) when (ReferenceEquals(failure, refused))
        {
            // Only the change log's refusal applies nothing; a failure after it (publishing) propagates as a defect.
            unit.Written.Clear();
            return failure;
        }
        finally
        {
            unit.Records.Clear();
            unit.Memberships.Clear();
        }

        foreach (var (item, update) in unit.Written)
        {
            var (index, e, _) = items[item];
            Recorded(e, update);
            MarkRfm(update, e.Type);

            results[item] = Recorded(index, e, new TrackResult(update.After, !update.Changed));
        }

        unit.Written.Clear();
        return null;
    }

    // "events[0]" to "events[999]", made once each: a batch's events are named by these on every write.
    private static readonly string?[] BatchFields = new string?[InputLimits.MaxEventsPerCall];

    /// <summary>
    /// The index of a stream's next event (<c>EventResult.index</c>, an int32 of the public contract): returns
    /// <paramref name="index"/> and advances it, from 2,147,483,647 back to 0 (never negative, however long the stream).
    /// </summary>
    public static int NextStreamIndex(ref int index)
    {
        var current = index;
        index = current == int.MaxValue ? 0 : current + 1;
        return current;
    }

    /// <summary>The field name of event <paramref name="position"/> of a batch (<c>events[position]</c>), for its violations.</summary>
    public static string BatchField(int position)
    {
        if ((uint)position >= (uint)BatchFields.Length)
        {
            return string.Create(CultureInfo.InvariantCulture, $"events[{position}]");
        }

        return BatchFields[position] ??= string.Create(CultureInfo.InvariantCulture, $"events[{position}]");
    }

    /// <summary>Records one event of a stream, reporting rather than throwing a validation failure.</summary>
    public EventResult TrackOne(int index, BehaviourEvent e, string prefix = "event") => TrackReported(index, e, prefix, out _);

    // TrackOne, also giving the exception that refused the event.
    private EventResult TrackReported(int index, BehaviourEvent e, string prefix, out Exception? refusal)
    {
        ArgumentNullException.ThrowIfNull(e);
        refusal = null;
        try
        {
            return Recorded(index, e, Track(e, prefix));
        }
        catch (Exception ex) when (RefusesAlone(ex))
        {
            refusal = ex;
            return Rejected(index, e, prefix, ex);
        }
    }

    /// <summary>Under the user's lock: skips a recorded event id, logs the event (write-ahead), then applies and derives.</summary>
    internal ProfileUpdate Apply(string key, StoredEvent stored, WriteStamp stamp)
    {
        var update = _writer.Store.Update(key, new Write(this, key, stored, stamp, null), Mutate, stamp.Version);
        MarkRfm(update, stored.Type);
        return update;
    }

    // A purchase or a refund applied makes the RFM model stale.
    private void MarkRfm(ProfileUpdate update, string type)
    {
        if (update.Changed && type is EventTypes.Purchase or EventTypes.Refund)
        {
            _writer.Rfm.MarkDirty();
        }
    }

    // One event's write: in a batch (Unit set) its record and membership update wait for the batch's commit.
    private readonly record struct Write(EventRecorder Recorder, string Key, StoredEvent Event, WriteStamp Stamp, Unit? Unit);

    // Under the user's lock: skips a recorded event id, logs the event (write-ahead; in a batch, the record waits for the
    // batch's commit), then applies and derives.
    private static Profile Mutate(Profile p, long v, Write w)
    {
        var (recorder, key, stored, stamp, unit) = w;
        if (p.HasEvent(stored.EventId) || stamp.AlreadyIn(p))
        {
            return p;
        }

        if (stamp.Log && p.Events.Count >= recorder.EventLimit)
        {
            throw new LimitExceededException($"the profile holds {recorder.EventLimit:N0} events, the most one profile may hold; this event was not stored");
        }

        var writer = recorder._writer;
        if (stamp.Log && writer.Log.KeepsRecords)
        {
            var record = stamp.Event(key, stored, v);
            if (unit is null)
            {
                writer.Log.Append(record);
            }
            else
            {
                unit.Records.Add(record);
            }
        }

        var applied = p.Apply(stored, v);
        return ReferenceEquals(applied, p) ? p : writer.Derive(applied, stamp, Profile.EventCausePrefix, stored.EventId, unit?.Memberships);
    }
}
