using System.Globalization;
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
        TrackResult result;
        try
        {
            result = TrackValid(e, prefix);
        }
        catch (ValidationException ex)
        {
            Quality.Rejected(ex.Violations, prefix);
            throw;
        }
        catch (LimitExceededException)
        {
            Quality.Rejected("event_limit");
            throw;
        }

        if (result.Duplicate)
        {
            Quality.Duplicate();
        }
        else
        {
            Quality.Accepted(e);
            Accepted?.Invoke(e, result.Profile);
        }

        return result;
    }

    private TrackResult TrackValid(BehaviourEvent e, string prefix)
    {
        var now = _writer.Time.GetUtcNow();
        EventValidator.Validate(e, now, prefix);
        var retention = _writer.Retention;
        if (retention.IsExpired(e.Type, e.Timestamp.UtcTicks, now.UtcTicks))
        {
            throw new ValidationException($"{prefix}.timestamp", $"is older than the retention period of '{(e.Type.Length > 64 ? e.Type[..64] : e.Type)}' events ({retention.For(e.Type)!.Value.TotalDays:0.##} days): such events are not stored");
        }

        var update = Apply(e.ProfileKey, StoredEvent.From(e), _writer.Live(now));
        return new TrackResult(update.After, !update.Changed);
    }

    /// <summary>
    /// Records many events; each is validated and applied on its own, so one bad event is rejected by
    /// itself and never affects the others. Results are yielded in order. A batch of no events, or of more than
    /// <see cref="InputLimits.MaxEventsPerCall"/>, is refused whole (<see cref="ValidationException"/>).
    /// </summary>
    public IEnumerable<EventResult> TrackMany(IReadOnlyList<BehaviourEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        InputLimits.CheckEventsPerCall(events.Count);
        return Iterate(events);
    }

    private IEnumerable<EventResult> Iterate(IReadOnlyList<BehaviourEvent> events)
    {
        for (var i = 0; i < events.Count; i++)
        {
            yield return TrackOne(i, events[i], BatchField(i));
        }
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
    public EventResult TrackOne(int index, BehaviourEvent e, string prefix = "event")
    {
        ArgumentNullException.ThrowIfNull(e);
        try
        {
            var result = Track(e, prefix);
            return new EventResult(index, e.EventId, result.Duplicate ? EventStatus.Duplicate : EventStatus.Accepted, result.Profile, []);
        }
        catch (ValidationException ex)
        {
            return new EventResult(index, e.EventId, EventStatus.Rejected, null, ex.Violations);
        }
        catch (LimitExceededException ex)
        {
            return new EventResult(index, e.EventId, EventStatus.Rejected, null, [new FieldViolation(prefix, ex.Message)]);
        }
    }

    /// <summary>Under the user's lock: skips a recorded event id, logs the event (write-ahead), then applies and derives.</summary>
    internal ProfileUpdate Apply(string key, StoredEvent stored, WriteStamp stamp)
    {
        var update = _writer.Store.Update(
            key,
            (Recorder: this, Key: key, Event: stored, Stamp: stamp),
            static (p, v, w) =>
            {
                var (recorder, key, stored, stamp) = w;
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
                    writer.Log.Append(stamp.Event(key, stored, v));
                }

                var applied = p.Apply(stored, v);
                return ReferenceEquals(applied, p) ? p : writer.Derive(applied, stamp, Profile.EventCausePrefix, stored.EventId);
            },
            stamp.Version);
        if (update.Changed && stored.Type is EventTypes.Purchase or EventTypes.Refund)
        {
            _writer.Rfm.MarkDirty();
        }

        return update;
    }
}
