using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Grpc.Core;

namespace Segmentation.Server.Services;

/// <summary>
/// Answers a bidirectional stream one answer per message, in order (message by message, or the messages already
/// arrived together), with the answers written by a second loop: when answers queue up they go out in one buffered
/// batch and one flush instead of one flush per message. Shared by <c>ProfileService.StreamEvents</c> and its baseline
/// <c>DiagnosticsService.EchoStream</c>, so that the baseline measures the stream handling the ingestion pays (message
/// by message; with durability on, StreamEvents answers the messages already arrived together).
/// </summary>
public static class PipelinedStream
{
    /// <summary>
    /// Answers written without a flush at most: a buffered write returns without waiting for the client, so only a
    /// flush lets a client that does not read hold the writer back. Answers that queue up faster than they are written
    /// still leave in batches of this many.
    /// </summary>
    public const int FlushEvery = 64;

    /// <summary>
    /// Reads <paramref name="requests"/> until the client completes it, answering each message with
    /// <paramref name="answer"/> (given the message and its weight). <paramref name="weigh"/> gives a message's weight,
    /// at least 1 (StreamEvents: its events), and may throw to refuse it. At most <paramref name="maxQueued"/> weight
    /// waits to be written or sits written in the transport's buffer until a flush (it counts until a flush has taken it
    /// out), and answers are flushed at least every <see cref="FlushEvery"/> answers, so a client that stops reading
    /// holds at most that much in the server, and its stream is then no longer read. A message heavier than <paramref name="maxQueued"/> could never
    /// get its room: <paramref name="weigh"/> must refuse it. When reading, weighing or answering throws, reading stops,
    /// the answers already queued are written, and the exception is rethrown; when writing an answer throws, reading
    /// stops too and that exception is rethrown. When <paramref name="stopReading"/> is cancelled (the server stops),
    /// no further message is read, the answers to those read are written, and the call returns as if the client had
    /// completed its stream.
    /// </summary>
    public static Task RunAsync<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requests,
        IServerStreamWriter<TResponse> responses,
        int maxQueued,
        Func<TRequest, int> weigh,
        Func<TRequest, int, TResponse> answer,
        CancellationToken cancellation,
        CancellationToken stopReading = default)
    {
        ArgumentNullException.ThrowIfNull(answer);
        return RunGroupedAsync(requests, responses, maxQueued, weigh, (group, answers) => answers.Add(answer(group[0].Message, group[0].Weight)), maxGroupWeight: 1, cancellation, stopReading);
    }

    /// <summary>
    /// <see cref="RunAsync"/>, answering the messages that have already arrived together: while the next message is
    /// there without waiting, it joins the group, up to <paramref name="maxGroupWeight"/> weight (a message heavier than
    /// that is a group of its own); the group is answered when the next message is not there yet, when it is full, or
    /// before the reader waits for room. <paramref name="answer"/> is given the group, in order, and adds one answer per
    /// message to the list, in the same order; when it throws, the answers it added are written (to the first messages
    /// of the group), the rest of the group is not answered, and the stream ends with its exception. With
    /// <paramref name="maxGroupWeight"/> 1 every message is answered as soon as it is read, as <see cref="RunAsync"/> does.
    /// </summary>
    public static async Task RunGroupedAsync<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requests,
        IServerStreamWriter<TResponse> responses,
        int maxQueued,
        Func<TRequest, int> weigh,
        Action<IReadOnlyList<(TRequest Message, int Weight)>, List<TResponse>> answer,
        int maxGroupWeight,
        CancellationToken cancellation,
        CancellationToken stopReading = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(weigh);
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxGroupWeight, 1);
        using var room = new SemaphoreSlim(maxQueued, maxQueued);
        // Not SingleReader: that channel cannot count what it holds, and the writer flushes by the count.
        var answers = Channel.CreateUnbounded<(TResponse Response, int Weight)>(new UnboundedChannelOptions { SingleWriter = true });
        // Cancelled by the call, or by the writer when a write fails: the reader must not wait for room (or for the
        // client's next message) that a dead writer will never give back.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var writer = WriteAnswers(answers.Reader, responses, room, stop);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, stopReading);
        var group = new Group<TRequest, TResponse>(answer, answers.Writer);
        Task<bool>? reads = null; // a read of the client's next message in progress
        try
        {
            try
            {
                while (true)
                {
                    reads = requests.MoveNext(reading.Token);
                    if (!reads.IsCompleted)
                    {
                        group.Answer(); // nothing more has arrived: answer what has before waiting for the client
                    }

                    var more = await reads;
                    reads = null;
                    if (!more)
                    {
                        break;
                    }

                    var message = requests.Current;
                    var weight = weigh(message);
                    if (group.Weight + weight > maxGroupWeight)
                    {
                        group.Answer();
                    }

                    for (var i = 0; i < weight; i++)
                    {
                        if (!room.Wait(0, CancellationToken.None)) // the fast path; the wait below observes cancellation
                        {
                            group.Answer(); // its answers are what gives room back
                            await room.WaitAsync(reading.Token);
                        }
                    }

                    group.Add(message, weight);
                    if (group.Weight >= maxGroupWeight)
                    {
                        group.Answer();
                    }
                }
            }
            catch (OperationCanceledException) when (stopReading.IsCancellationRequested && !stop.IsCancellationRequested)
            {
                // Reading stopped: what was read is answered below.
            }

            group.Answer();
        }
        catch (Exception failure)
        {
            // Reading, weighing or answering failed (client gone, deadline, refused input, or the writer failed and
            // stopped the reading): the messages read before it are answered (each was as it was read, before groups),
            // then the writer is stopped and its outcome observed before rethrowing; a failed write is the cause to report.
            var cause = ExceptionDispatchInfo.Capture(failure);
            try
            {
                group.Answer();
            }
            catch (Exception answering)
            {
                cause = ExceptionDispatchInfo.Capture(answering);
            }

            if (reads is not null)
            {
                // A read of the next message may be in progress (answering failed meanwhile): it must end before the call.
                await reading.CancelAsync();
                await reads.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
            }

            answers.Writer.TryComplete();
            await writer.ContinueWith(static _ => { }, TaskScheduler.Default);
            if (writer.Exception?.InnerException is { } failedWrite && !cancellation.IsCancellationRequested)
            {
                ExceptionDispatchInfo.Throw(failedWrite);
            }

            cause.Throw();
        }

        answers.Writer.TryComplete();
        await writer;
    }

    // The messages read and not answered yet, with their room taken.
    private sealed class Group<TRequest, TResponse>(Action<IReadOnlyList<(TRequest Message, int Weight)>, List<TResponse>> answer, ChannelWriter<(TResponse Response, int Weight)> answers)
    {
        private readonly List<(TRequest Message, int Weight)> _messages = [];
        private readonly List<TResponse> _answers = [];

        public int Weight { get; private set; }

        public void Add(TRequest message, int weight)
        {
            _messages.Add((message, weight));
            Weight += weight;
        }

        // Answers the group and queues its answers for the writer; the group is empty afterwards, also when answering throws.
        public void Answer()
        {
            if (_messages.Count == 0)
            {
                return;
            }

            try
            {
                answer(_messages, _answers);
                if (_answers.Count != _messages.Count)
                {
                    throw new InvalidOperationException($"a group of {_messages.Count} messages was given {_answers.Count} answers");
                }

                Queue();
            }
            catch when (_answers.Count <= _messages.Count)
            {
                Queue(); // the answers given before it failed (all of them, when it failed after the last), to the first messages of the group
                throw;
            }
            finally
            {
                _messages.Clear();
                _answers.Clear();
                Weight = 0;
            }
        }

        private void Queue()
        {
            for (var i = 0; i < _answers.Count; i++)
            {
                answers.TryWrite((_answers[i], _messages[i].Weight)); // unbounded: the room taken bounds it
            }
        }
    }

    private static async Task WriteAnswers<TResponse>(ChannelReader<(TResponse Response, int Weight)> answers, IServerStreamWriter<TResponse> stream, SemaphoreSlim room, CancellationTokenSource stop)
    {
        var buffered = new WriteOptions(WriteFlags.BufferHint);
        var unflushed = 0;
        var held = 0; // the weight of answers written without a flush: the transport holds them until the next one
        try
        {
            while (await answers.WaitToReadAsync(stop.Token))
            {
                while (answers.TryRead(out var answer))
                {
                    // Flush with the last queued answer, and at least every FlushEvery answers. An answer's room is given
                    // back once a flush has taken it out: a buffered write returns at once, so giving it back then let a
                    // client that does not read hold FlushEvery answers more than the room.
                    var flush = answers.Count == 0 || ++unflushed >= FlushEvery;
                    stream.WriteOptions = flush ? null : buffered;
                    await stream.WriteAsync(answer.Response, stop.Token);
                    held += answer.Weight;
                    if (flush)
                    {
                        room.Release(held);
                        (held, unflushed) = (0, 0);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await stop.CancelAsync(); // RunAsync awaits this task before it disposes the source
            throw;
        }
    }
}
