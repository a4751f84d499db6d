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
    private readonly Channel<Pending> _waiting = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
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
        var pending = new Pending(e, prefix);
        if (!_waiting.Writer.TryWrite(pending))
        {
            throw Volatile.Read(ref _defect) is { } defect
                ? new InvalidOperationException("the event batcher stopped after a defect; the event was not recorded (restart the service)", defect)
                : new ObjectDisposedException(nameof(EventBatcher), "the service is stopping: the event was not recorded");
        }

        return pending.Task;
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
        var batch = new List<Pending>(MaxBatch);
        var items = new List<EventRecorder.BatchItem>(MaxBatch);
        try
        {
            while (_waiting.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                while (batch.Count < MaxBatch && _waiting.Reader.TryRead(out var pending))
                {
                    batch.Add(pending);
                    items.Add(new EventRecorder.BatchItem(0, pending.Event, pending.Prefix));
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
            foreach (var pending in batch)
            {
                pending.TrySetException(ex);
            }

            while (_waiting.Reader.TryRead(out var left))
            {
                left.TrySetException(ex);
            }
        }
    }

    private void Record(List<Pending> batch, List<EventRecorder.BatchItem> items)
    {
        var refusals = new Exception?[items.Count];
        EventResult[] results;
        try
        {
            results = _recorder.TrackAll(items, refusals);
        }
        catch (Exception ex)
        {
            foreach (var pending in batch)
            {
                pending.TrySetException(ex);
            }

            return;
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (refusals[i] is { } refused)
            {
                batch[i].TrySetException(refused);
            }
            else
            {
                batch[i].TrySetResult(new TrackResult(results[i].Profile!, results[i].Status == EventStatus.Duplicate));
            }
        }
    }

    // An event waiting to be recorded, and its caller's answer (continued on the thread pool, never on the batcher's thread).
    private sealed class Pending(BehaviourEvent e, string prefix) : TaskCompletionSource<TrackResult>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public BehaviourEvent Event { get; } = e;

        public string Prefix { get; } = prefix;
    }
}
