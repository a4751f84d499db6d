using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Grpc.Core;

namespace Segmentation.Server.Services;

/// <summary>
/// Answers a bidirectional stream message by message, in order, with the answers written by a second loop: when
/// answers queue up they go out in one buffered batch and one flush instead of one flush per message. Shared by
/// <c>ProfileService.StreamEvents</c> and its baseline <c>DiagnosticsService.EchoStream</c>, so that the baseline
/// measures exactly the stream handling the ingestion pays.
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
    public static async Task RunAsync<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requests,
        IServerStreamWriter<TResponse> responses,
        int maxQueued,
        Func<TRequest, int> weigh,
        Func<TRequest, int, TResponse> answer,
        CancellationToken cancellation,
        CancellationToken stopReading = default)
    {
        using var room = new SemaphoreSlim(maxQueued, maxQueued);
        // Not SingleReader: that channel cannot count what it holds, and the writer flushes by the count.
        var answers = Channel.CreateUnbounded<(TResponse Response, int Weight)>(new UnboundedChannelOptions { SingleWriter = true });
        // Cancelled by the call, or by the writer when a write fails: the reader must not wait for room (or for the
        // client's next message) that a dead writer will never give back.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var writer = WriteAnswers(answers.Reader, responses, room, stop);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, stopReading);
        try
        {
            try
            {
                await foreach (var message in requests.ReadAllAsync(reading.Token))
                {
                    var weight = weigh(message);
                    for (var i = 0; i < weight; i++)
                    {
                        if (!room.Wait(0, CancellationToken.None)) // the fast path; the wait below observes cancellation
                        {
                            await room.WaitAsync(reading.Token);
                        }
                    }

                    answers.Writer.TryWrite((answer(message, weight), weight)); // unbounded: the room taken above bounds it
                }
            }
            catch (OperationCanceledException) when (stopReading.IsCancellationRequested && !stop.IsCancellationRequested)
            {
                // Reading stopped: what was read is answered below.
            }
        }
        catch
        {
            // Reading or answering failed (client gone, deadline, refused input, or the writer failed and stopped the
            // reading): stop the writer and observe its outcome before rethrowing; a failed write is the cause to report.
            answers.Writer.TryComplete();
            await writer.ContinueWith(static _ => { }, TaskScheduler.Default);
            if (writer.Exception?.InnerException is { } failedWrite && !cancellation.IsCancellationRequested)
            {
                ExceptionDispatchInfo.Throw(failedWrite);
            }

            throw;
        }

        answers.Writer.TryComplete();
        await writer;
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
