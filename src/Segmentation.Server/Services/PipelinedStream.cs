using System.Threading.Channels;
using Grpc.Core;

namespace Segmentation.Server.Services;

/// <summary>
/// Answers a bidirectional stream message by message, in order, with the answers written by a second loop: when
/// answers queue up they go out in one buffered batch and one flush instead of one flush per message. Shared by
/// <c>ProfileService.StreamEvents</c> and its baseline <c>DiagnosticsService.EchoStream</c>, so that the baseline
/// measures exactly the stream handling the ingestion pays.
/// </summary>
internal static class PipelinedStream
{
    /// <summary>
    /// Reads <paramref name="requests"/> until the client completes it, answering each message with
    /// <paramref name="answer"/>. <paramref name="weigh"/> gives a message's weight (StreamEvents: its events) and may
    /// throw to refuse it; at most <paramref name="maxQueued"/> weight waits to be written, so a client that stops
    /// reading holds that much in the server and its stream is then no longer read. A message heavier than
    /// <paramref name="maxQueued"/> could never get its room: <paramref name="weigh"/> must refuse it. An exception
    /// from reading, weighing or answering stops the writer and is rethrown once the writer has finished.
    /// </summary>
    public static async Task RunAsync<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requests,
        IServerStreamWriter<TResponse> responses,
        int maxQueued,
        Func<TRequest, int> weigh,
        Func<TRequest, TResponse> answer,
        CancellationToken cancellation)
    {
        using var room = new SemaphoreSlim(maxQueued, maxQueued);
        // Not SingleReader: that channel cannot count what it holds, and the writer flushes by the count.
        var answers = Channel.CreateUnbounded<(TResponse Response, int Weight)>(new UnboundedChannelOptions { SingleWriter = true });
        var writer = WriteAnswers(answers.Reader, responses, room, cancellation);
        try
        {
            await foreach (var message in requests.ReadAllAsync(cancellation))
            {
                var weight = weigh(message);
                for (var i = 0; i < weight; i++)
                {
                    if (!room.Wait(0, CancellationToken.None)) // the fast path; the wait below observes cancellation
                    {
                        await room.WaitAsync(cancellation);
                    }
                }

                answers.Writer.TryWrite((answer(message), weight)); // unbounded: the room taken above bounds it
            }
        }
        catch
        {
            // Reading or answering failed (client gone, deadline, refused input): stop the writer and observe its
            // outcome before rethrowing.
            answers.Writer.TryComplete();
            await writer.ContinueWith(static _ => { }, TaskScheduler.Default);
            throw;
        }

        answers.Writer.TryComplete();
        await writer;
    }

    private static async Task WriteAnswers<TResponse>(ChannelReader<(TResponse Response, int Weight)> answers, IServerStreamWriter<TResponse> stream, SemaphoreSlim room, CancellationToken cancellation)
    {
        var buffered = new WriteOptions(WriteFlags.BufferHint);
        while (await answers.WaitToReadAsync(cancellation))
        {
            while (answers.TryRead(out var answer))
            {
                // Flush only with the last queued answer.
                stream.WriteOptions = answers.Count > 0 ? buffered : null;
                await stream.WriteAsync(answer.Response, cancellation);
                room.Release(answer.Weight);
            }
        }
    }
}
