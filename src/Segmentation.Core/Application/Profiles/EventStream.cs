using Segmentation.Core.Events;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// One message of an event stream: a single event, or a batch of events with, optionally, a single event before it.
/// </summary>
/// <param name="Event">The single event: with <paramref name="Events"/> empty, the message's only event (required); beside a batch, the event before it, or null.</param>
/// <param name="Events">The batch, named <c>events[i]</c> in violations; empty for a message of one event.</param>
public readonly record struct StreamMessage(BehaviourEvent? Event, IReadOnlyList<BehaviourEvent> Events)
{
    /// <summary>True for a message of one event, answered with one result.</summary>
    public bool IsSingle => Events is not { Count: > 0 };

    /// <summary>How many events the message carries, so how many results answer it.</summary>
    public int EventCount => CountEvents(Event is not null, Events?.Count ?? 0);

    /// <summary>How many events a message carries: one with no batch; otherwise the batch and the event beside it, if any.</summary>
    public static int CountEvents(bool hasEvent, int batch) => batch == 0 ? 1 : batch + (hasEvent ? 1 : 0);
}

/// <summary>What a group of a stream's messages came to.</summary>
/// <param name="Answered">The results of each message answered, in stream order: one result for a single event, one per event for a batch.</param>
/// <param name="Failure">
/// Null when every message of the group is answered; otherwise the failure that ends the stream at the first message not
/// answered (a failed commit, or one event's write that failed unexpectedly). None of the events of the messages after it
/// is applied; in that message, the events before the failure may be (sent again, they come back duplicates).
/// </param>
public sealed record StreamGroupResult(IReadOnlyList<ArraySegment<EventResult>> Answered, Exception? Failure);

/// <summary>
/// One client's stream of events, recorded a group of messages at a time in the order they arrived: results carry a
/// running index over the whole stream, each event is validated and refused on its own, and the events of a group are one
/// caller's in order (after one whose write fails unexpectedly, none after it is tried). With durability on, a group's
/// events share one change-log commit.
/// </summary>
/// <remarks>Not thread-safe: one stream's groups are recorded one after another.</remarks>
public sealed class EventStream
{
    /// <summary>The most events recorded together when writes are batched (with durability on: one commit for them).</summary>
    public const int MaxGroupedEvents = 256;

    private readonly EventRecorder _recorder;
    private int _index;

    internal EventStream(EventRecorder recorder, bool batchesWrites)
    {
        _recorder = recorder;
        GroupLimit = batchesWrites ? MaxGroupedEvents : 1;
    }

    /// <summary>
    /// The most events worth recording together: <see cref="MaxGroupedEvents"/> when writes share commits, otherwise 1 (each
    /// message is recorded, and can be answered, as soon as it is read).
    /// </summary>
    public int GroupLimit { get; }

    /// <summary>How many events of this stream have been recorded or refused (counting from 0; past int32's range, it restarts at 0 as the results' indexes do).</summary>
    public int Received => _index;

    /// <summary>Records one message of a single event; never throws for the event's own faults (its result says them).</summary>
    public EventResult RecordOne(BehaviourEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return _recorder.TrackOne(EventRecorder.NextStreamIndex(ref _index), e, "event");
    }

    /// <summary>Records a group of messages, in order, and returns each answered message's results and the failure that stopped the rest, if any.</summary>
    public StreamGroupResult Record(IReadOnlyList<StreamMessage> group)
    {
        ArgumentNullException.ThrowIfNull(group);
        foreach (var message in group)
        {
            if (message.Events is null || (message.IsSingle && message.Event is null))
            {
                throw new ArgumentException("a message needs its batch (empty for a single event) and, without one, its event", nameof(group));
            }
        }

        if (group is [{ IsSingle: true } single])
        {
            return new([new ArraySegment<EventResult>([RecordOne(single.Event!)])], null);
        }

        var items = new List<EventRecorder.BatchItem>();
        foreach (var message in group)
        {
            if (message.Event is { } first)
            {
                Add(items, first, "event");
            }

            for (var i = 0; i < message.Events.Count; i++)
            {
                Add(items, message.Events[i], EventRecorder.BatchField(i));
            }
        }

        var refusals = new Exception?[items.Count];
        var results = _recorder.TrackAll(items, refusals);
        var failed = Array.FindIndex(refusals, static r => r is not null && !EventRecorder.RefusesAlone(r));
        var answered = new List<ArraySegment<EventResult>>(group.Count);
        var next = 0;
        foreach (var message in group)
        {
            var count = message.EventCount;
            if (failed >= 0 && next + count > failed)
            {
                return new(answered, refusals[failed]);
            }

            answered.Add(new ArraySegment<EventResult>(results, next, count));
            next += count;
        }

        return new(answered, null);
    }

    // One caller's events in stream order: after one whose write fails unexpectedly, the rest are not tried.
    private void Add(List<EventRecorder.BatchItem> items, BehaviourEvent e, string prefix) =>
        items.Add(new EventRecorder.BatchItem(EventRecorder.NextStreamIndex(ref _index), e, prefix) { FollowsPrevious = items.Count > 0 });
}
