using System.Runtime.ExceptionServices;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Decisions;

/// <summary>A decision and the results of the events recorded just before it, in the order they were sent.</summary>
/// <param name="Decision">The decision, made after the events were recorded.</param>
/// <param name="Events">One result per event: accepted, a duplicate of a recorded event, or rejected and why.</param>
public sealed record TrackedDecision(Decision Decision, IReadOnlyList<EventResult> Events);

/// <summary>
/// Records a caller's events for one user and then decides for that user: what a storefront does on a page render
/// (record the page view, then decide what the page shows) in one call instead of two, the decision seeing what was
/// recorded. Each event is recorded as <see cref="EventRecorder.TrackOne"/> records an event of a batch, so a rejected
/// event is reported in its result and never fails the decision.
/// </summary>
public sealed class TrackAndDecide(ProfileIngestion ingestion, DecisionEngine engine, IProfileStore profiles)
{
    /// <summary>The most events one decision may carry (a page's events, not a bulk load: that is what batches and streams are for).</summary>
    public const int MaxEvents = 100;

    /// <summary>
    /// Throws <see cref="ValidationException"/> on <c>events</c> when a decision carries more than <see cref="MaxEvents"/>;
    /// callers check it before spending anything on the call (its rate-limit tokens).
    /// </summary>
    public static void CheckEventCount(int count)
    {
        if (count > MaxEvents)
        {
            throw new ValidationException("events", $"at most {MaxEvents} events per decision (got {count}); send more with TrackEvents or StreamEvents");
        }
    }

    /// <summary>
    /// Records <paramref name="events"/> in order, then decides for <paramref name="request"/>. An event naming no user
    /// is recorded for the request's user id and anonymous id; one naming a user must name the profile decided for
    /// (the request's user id, or its anonymous id when it has no user id, or an id linked to the same profile), or it is
    /// rejected. Nothing is recorded when the request itself is invalid (<see cref="ValidationException"/>) or carries
    /// too many events. When the durable store cannot take a write (a full disk), that event and the ones after it are
    /// reported as not recorded (sending them again is safe) and the decision is still made, on what was recorded.
    /// <paramref name="cancellation"/> is checked before the events and once they are recorded: a call abandoned while they
    /// were written (a slow commit past the caller's deadline) makes no decision — none is counted, and no experiment arm
    /// is exposed to a user who never saw it —; its events stay recorded (sending them again gives duplicates).
    /// With durability on, the events are recorded in one batch with those other callers sent meanwhile, sharing one
    /// change-log commit (<see cref="ProfileIngestion.TrackAllAsync"/>), while the caller waits without holding a thread;
    /// without it, this completes at once.
    /// </summary>
    public async Task<TrackedDecision> DecideAsync(DecisionRequest request, IReadOnlyList<BehaviourEvent> events, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(events);
        cancellation.ThrowIfCancellationRequested();
        CheckEventCount(events.Count);
        request.ThrowIfInvalid();

        var results = events.Count == 0 ? [] : new EventResult[events.Count];
        if (events.Count > 0)
        {
            await RecordAsync(request, events, results).ConfigureAwait(false);
            cancellation.ThrowIfCancellationRequested();
        }

        return new TrackedDecision(engine.Decide(request, CancellationToken.None), results);
    }

    // Records the events that name the user decided for, in order and together, and fills every event's result.
    private async Task RecordAsync(DecisionRequest request, IReadOnlyList<BehaviourEvent> events, EventResult[] results)
    {
        var items = new List<EventRecorder.BatchItem>(events.Count);
        for (var i = 0; i < events.Count; i++)
        {
            var (e, field) = (events[i], EventRecorder.BatchField(i));
            var follows = items.Count > 0; // in order: after an event that could not be written, the rest are not tried
            if (e.UserId.Length == 0 && e.AnonymousId.Length == 0)
            {
                items.Add(new(i, e with { UserId = request.UserId, AnonymousId = request.AnonymousId }, field) { FollowsPrevious = follows });
            }
            else if (string.Equals(e.ProfileKey, request.SubjectId, StringComparison.Ordinal)
                || string.Equals(profiles.Resolve(e.ProfileKey), profiles.Resolve(request.SubjectId), StringComparison.Ordinal))
            {
                items.Add(new(i, e, field) { FollowsPrevious = follows });
            }
            else
            {
                var named = e.UserId.Length > 0 ? "user_id" : "anonymous_id";
                FieldViolation[] violations = [new($"{field}.{named}", "must be empty or name the user decided for (the request's user_id, or its anonymous_id when it has none, or an id linked to that user)")];
                ingestion.Events.Quality.Rejected(violations, field);
                results[i] = new EventResult(i, e.EventId, EventStatus.Rejected, null, violations);
            }
        }

        if (items.Count == 0)
        {
            return;
        }

        var refusals = new Exception?[items.Count];
        EventResult[] recorded;
        try
        {
            recorded = await ingestion.TrackAllAsync(items, refusals).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or StorageUnavailableException)
        {
            // The service is stopping, or the store refused the whole batch: nothing was recorded, and the page still gets
            // its decision.
            foreach (var (index, e, _) in items)
            {
                results[index] = NotStored(index, e);
            }

            return;
        }

        for (var j = 0; j < items.Count; j++)
        {
            var (index, e, _) = items[j];
            if (refusals[j] is StorageUnavailableException or ObjectDisposedException)
            {
                results[index] = NotStored(index, e); // the commit failed or the store closed: this event and the ones after it
            }
            else if (refusals[j] is null || EventRecorder.RefusesAlone(refusals[j]!))
            {
                results[index] = recorded[j]; // recorded, a duplicate, or rejected on its own with its violations
            }
            else
            {
                ExceptionDispatchInfo.Throw(refusals[j]!); // a defect in this event's write: the call fails, as it always has
            }
        }
    }

    // An event the durable store could not take: not applied, so sending it again later records it.
    private static EventResult NotStored(int index, BehaviourEvent e) =>
        new(index, e.EventId, EventStatus.Rejected, null, [new(EventRecorder.BatchField(index), "not recorded: the service cannot store events now (storage unavailable); send it again later")]);
}
