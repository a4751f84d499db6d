using System.Threading.Channels;
using Segmentation.Core.Events;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Records the single events of concurrent callers together, with durability on: one thread takes every event waiting
/// and records them as one batch (<see cref="EventRecorder.TrackAll"/>), so they share one change-log commit, while the
/// callers wait without holding a thread each. A caller blocked in <see cref="EventRecorder.Track"/> holds a thread
/// until its fsync; under load the thread pool then grows slowly, and few writes ever wait together to share a commit.
/// </summary>
/// <remarks>
/// Each event is validated and applied on its own as <see cref="EventRecorder.Track"/> does, and its caller gets the same
/// answer or the same exception. A batch that meets a profile another writer holds commits what it has prepared first,
/// then waits for that profile (the callers behind it wait one commit longer); a failed commit fails the callers of the
/// events it did not apply and of those after it, while the callers of the commits before it get their answers. Events
/// of one caller are recorded in the order the calls were made. All the work of recording runs on the batcher's thread.
/// </remarks>
public sealed class EventBatcher : IDisposable
{
    /// <summary>The most events recorded together.</summary>
    public const int MaxBatch = 256;

    private readonly EventRecorder _recorder;
    // The caller that adds an event wakes the batcher's thread itself (it only sets the event the thread blocks on),
    // rather than through a thread-pool item that a pool busy with blocked writers would be slow to run.
    private readonly Channel<IWaiting> _waiting = Channel.CreateUnbounded<IWaiting>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
    private readonly Thread _worker;
    private Exception? _defect; // what stopped the thread, when a defect did

    internal EventBatcher(EventRecorder recorder)
    {
        _recorder = recorder;
        _worker = new Thread(Run) { IsBackground = true, Name = "segmentation-event-batcher" };
        _worker.Start();
    }

    /// <summary>Records <paramref name="e"/> with the events waiting beside it; completes once it is applied and durable.</summary>
    /// <exception cref="Validation.ValidationException">The event is invalid (in the task).</exception>
    /// <exception cref="Validation.LimitExceededException">The profile holds the most events it may (in the task).</exception>
    /// <exception cref="ObjectDisposedException">The batcher is stopped.</exception>
    public Task<TrackResult> TrackAsync(BehaviourEvent e, string prefix = "event")
    {
        ArgumentNullException.ThrowIfNull(e);
        return Enqueue(new One(e, prefix)).Task;
    }

    /// <summary>
    /// Records one caller's events together, in order and in the same batch (one run of <see cref="EventRecorder.TrackAll"/>
    /// with the events waiting beside them), so they share one commit; completes once they are applied and durable, with
    /// their results in order. <paramref name="refusals"/> is filled as <see cref="EventRecorder.TrackAll"/> fills it: a
    /// failed commit fails every event of the group from the first it did not apply.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The batcher is stopped (nothing of the group is recorded).</exception>
    public Task<EventResult[]> TrackAllAsync(IReadOnlyList<EventRecorder.BatchItem> items, Exception?[] refusals)
    {
        ArgumentNullException.ThrowIfNull(items);
        ArgumentNullException.ThrowIfNull(refusals);
        if (refusals.Length < items.Count)
        {
            throw new ArgumentException($"refusals has room for {refusals.Length} events, the group has {items.Count}", nameof(refusals));
        }

        return Enqueue(new Group(items, refusals)).Task;
    }

    private T Enqueue<T>(T waiting)
        where T : IWaiting
    {
        if (!_waiting.Writer.TryWrite(waiting))
        {
            throw Volatile.Read(ref _defect) is { } defect
                ? new InvalidOperationException("the event batcher stopped after a defect; the event was not recorded (restart the service)", defect)
                : new ObjectDisposedException(nameof(EventBatcher), "the service is stopping: the event was not recorded");
        }

        return waiting;
    }

    /// <summary>
    /// Refuses later calls, records what is waiting (while the change log is still open; after it is closed those
    /// callers get <see cref="ObjectDisposedException"/> and nothing of theirs is applied), then stops the thread.
    /// </summary>
    public void Dispose()
    {
        _waiting.Writer.TryComplete();
        _worker.Join();
    }

    private void Run()
    {
        var batch = new List<IWaiting>();
        var items = new List<EventRecorder.BatchItem>(MaxBatch);
        IWaiting? next = null; // read, but past the batch's room: it starts the next batch
        try
        {
            while (next is not null || _waiting.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                if (next is not null)
                {
                    Take(next, batch, items);
                    next = null;
                }

                while (_waiting.Reader.TryRead(out var waiting))
                {
                    if (items.Count > 0 && items.Count + waiting.Count > MaxBatch)
                    {
                        next = waiting; // a group is never split between two batches
                        break;
                    }

                    Take(waiting, batch, items);
                }

                Record(batch, items);
                batch.Clear();
                items.Clear();
            }
        }
        catch (Exception ex)
        {
            // Never reached by a refused event or a failed commit (Record answers those): a defect. No caller may wait
            // for a thread that is gone, so the batcher refuses everything from here on.
            Volatile.Write(ref _defect, ex);
            _waiting.Writer.TryComplete(ex);
            next?.Fail(ex);
            foreach (var waiting in batch)
            {
                waiting.Fail(ex);
            }

            while (_waiting.Reader.TryRead(out var left))
            {
                left.Fail(ex);
            }
        }
    }

    private static void Take(IWaiting waiting, List<IWaiting> batch, List<EventRecorder.BatchItem> items)
    {
        batch.Add(waiting);
        waiting.AddTo(items);
    }

    private void Record(List<IWaiting> batch, List<EventRecorder.BatchItem> items)
    {
        var refusals = new Exception?[items.Count];
        EventResult[] results;
        try
        {
            results = _recorder.TrackAll(items, refusals);
        }
        catch (Exception ex)
        {
            foreach (var waiting in batch)
            {
                waiting.Fail(ex);
            }

            return;
        }

        var first = 0;
        foreach (var waiting in batch)
        {
            waiting.Answer(results, refusals, first);
            first += waiting.Count;
        }
    }

    // A caller waiting: its events, recorded next to each other in one batch, and its answer (continued on the thread
    // pool, never on the batcher's thread).
    private interface IWaiting
    {
        int Count { get; }

        void AddTo(List<EventRecorder.BatchItem> items);

        // Answers from the batch's results and refusals, this caller's from first on.
        void Answer(EventResult[] results, Exception?[] refusals, int first);

        void Fail(Exception ex);
    }

    // A single event (TrackAsync): its result, or the exception that refused it.
    private sealed class One(BehaviourEvent e, string prefix) : TaskCompletionSource<TrackResult>(TaskCreationOptions.RunContinuationsAsynchronously), IWaiting
    {
        public int Count => 1;

        public void AddTo(List<EventRecorder.BatchItem> items) => items.Add(new EventRecorder.BatchItem(0, e, prefix));

        public void Answer(EventResult[] results, Exception?[] refusals, int first)
        {
            if (refusals[first] is { } refused)
            {
                TrySetException(refused);
            }
            else
            {
                TrySetResult(new TrackResult(results[first].Profile!, results[first].Status == EventStatus.Duplicate));
            }
        }

        public void Fail(Exception ex) => TrySetException(ex);
    }

    // A caller's events recorded together (TrackAllAsync): their results, their refusals copied to the caller's array.
    private sealed class Group(IReadOnlyList<EventRecorder.BatchItem> group, Exception?[] callerRefusals) : TaskCompletionSource<EventResult[]>(TaskCreationOptions.RunContinuationsAsynchronously), IWaiting
    {
        public int Count => group.Count;

        public void AddTo(List<EventRecorder.BatchItem> items) => items.AddRange(group);

        public void Answer(EventResult[] results, Exception?[] refusals, int first)
        {
            Array.Copy(refusals, first, callerRefusals, 0, group.Count);
            TrySetResult(results[first..(first + group.Count)]);
        }

        public void Fail(Exception ex) => TrySetException(ex);
    }
}
