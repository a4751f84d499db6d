using Grpc.Core;
using Segmentation.Server.Services;

namespace Segmentation.Server.Tests;

/// <summary>
/// The stream handling StreamEvents and EchoStream share, driven by in-memory streams so that the order of reads and
/// writes is set by the test rather than by the transport.
/// </summary>
public sealed class PipelinedStreamTests
{
    private const int MaxQueued = 4096;

    [Fact]
    public async Task A_client_that_sends_faster_than_answers_are_written_and_never_reads_is_no_longer_read()
    {
        // The client always has messages ready well ahead of what the server has written, so after the first answer
        // the queue never looks empty; buffered writes return at once, and after one flush that goes through (the
        // first answer may find the queue empty) a write that flushes waits for a reader that never comes.
        var requests = new EndlessRequests(limit: 200_000);
        var responses = new UnreadResponses(requests);
        using var cancel = new CancellationTokenSource();
        var run = PipelinedStream.RunAsync(requests, responses, MaxQueued, weigh: static _ => 1, answer: static (message, _) => message, cancel.Token);

        try
        {
            await requests.StalledFor(TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(30));
        }
        finally
        {
            await cancel.CancelAsync();
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);

        // Without a flush every so many answers the writer never waits, and all 200,000 messages are read. With it: the
        // answers a flush took out, the room (answers written since, which the transport holds, count in it), and the
        // message read that waited for room. Regression: buffered answers gave their room back at once, so the server
        // held up to FlushEvery answers more than the room.
        Assert.InRange(responses.Written, PipelinedStream.FlushEvery, 2 * PipelinedStream.FlushEvery - 1);
        Assert.InRange(requests.Read, responses.Written + 1, responses.Flushed + MaxQueued + 1);
    }

    [Fact]
    public async Task Answers_are_written_in_order_each_made_with_the_weight_its_message_was_given()
    {
        var requests = new EndlessRequests(limit: 20_000);
        var written = new List<int>();
        var responses = new RecordingResponses(written);
        await PipelinedStream.RunAsync(requests, responses, maxQueued: 1000, weigh: static m => 1 + (m % 3), answer: static (m, weight) => m * 10 + weight, CancellationToken.None);

        Assert.Equal(Enumerable.Range(0, 20_000).Select(m => m * 10 + 1 + (m % 3)), written);
    }

    [Fact]
    public async Task A_refused_message_ends_the_stream_after_the_answers_before_it_are_written()
    {
        var requests = new EndlessRequests(limit: 1000);
        var written = new List<int>();
        var responses = new RecordingResponses(written);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => PipelinedStream.RunAsync(
            requests, responses, MaxQueued, weigh: static m => m == 500 ? throw new InvalidOperationException("refused") : 1, answer: static (m, _) => m, CancellationToken.None));

        Assert.Equal("refused", ex.Message);
        Assert.Equal(Enumerable.Range(0, 500), written);
    }

    [Fact]
    public async Task A_failed_write_ends_the_stream_with_its_error_instead_of_leaving_the_reader_waiting_for_room()
    {
        // The client keeps sending; the tenth write fails. The reader used to fill the queue and then wait for room
        // that the dead writer never gave back, until the call's deadline (for ever without one).
        var requests = new EndlessRequests(limit: 200_000);
        var responses = new FailingResponses(failAt: 10);
        var run = PipelinedStream.RunAsync(requests, responses, MaxQueued, weigh: static _ => 1, answer: static (m, _) => m, CancellationToken.None);

        var ex = await Assert.ThrowsAsync<IOException>(() => run.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal("write failed", ex.Message);
        Assert.InRange(requests.Read, 10, MaxQueued + 11); // it stopped reading: no more than the queue's bound past the failure
    }

    [Fact]
    public async Task Messages_already_there_are_answered_together_up_to_the_group_weight_and_one_not_there_yet_ends_the_group()
    {
        var requests = new ArrivingRequests(limit: 15, late: [10]);
        var written = new List<int>();
        var groups = new List<int[]>();
        await PipelinedStream.RunGroupedAsync(requests, new RecordingResponses(written), MaxQueued, weigh: static _ => 1, answer: (group, answers) =>
        {
            groups.Add([.. group.Select(m => m.Message)]);
            answers.AddRange(group.Select(m => m.Message * 10));
        }, maxGroupWeight: 4, CancellationToken.None);

        Assert.Equal([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11, 12, 13], [14]], groups);
        Assert.Equal(Enumerable.Range(0, 15).Select(m => m * 10), written);
    }

    [Fact]
    public async Task A_refused_message_in_the_middle_of_a_group_ends_the_stream_after_the_messages_before_it_are_answered()
    {
        var (ex, written) = await GroupsOf64UntilFailure<InvalidOperationException>(
            weigh: static m => m == 500 ? throw new InvalidOperationException("refused") : 1,
            answer: static (group, answers) => answers.AddRange(group.Select(m => m.Message)));

        Assert.Equal("refused", ex.Message);
        Assert.Equal(Enumerable.Range(0, 500), written); // 500 is not a multiple of 64: the last group was answered early
    }

    [Fact]
    public async Task A_group_whose_answer_fails_ends_the_stream_with_that_error_after_the_groups_before_it()
    {
        var (ex, written) = await GroupsOf64UntilFailure<IOException>(
            weigh: static _ => 1,
            answer: static (group, answers) => answers.AddRange(group[0].Message == 128 ? throw new IOException("the disk is full") : group.Select(m => m.Message)));

        Assert.Equal("the disk is full", ex.Message);
        Assert.Equal(Enumerable.Range(0, 128), written);
    }

    [Fact]
    public async Task A_group_whose_answer_fails_part_way_writes_the_answers_it_gave_then_ends_the_stream()
    {
        var (ex, written) = await GroupsOf64UntilFailure<IOException>(
            weigh: static _ => 1,
            answer: static (group, answers) =>
            {
                answers.AddRange(group.Select(m => m.Message).TakeWhile(m => m != 70));
                if (answers.Count < group.Count)
                {
                    throw new IOException("the disk is full");
                }
            });

        Assert.Equal("the disk is full", ex.Message);
        Assert.Equal(Enumerable.Range(0, 70), written);
    }

    [Fact]
    public async Task A_group_whose_answer_fails_after_giving_every_answer_writes_them_all_then_ends_the_stream()
    {
        // Regression: the answers were queued only when fewer than the group's messages had been given, so a failure
        // after the last one (a flush that failed once every event was applied) dropped the whole group's answers.
        var (ex, written) = await GroupsOf64UntilFailure<IOException>(
            weigh: static _ => 1,
            answer: static (group, answers) =>
            {
                answers.AddRange(group.Select(m => m.Message));
                if (group[0].Message == 128)
                {
                    throw new IOException("the disk is full");
                }
            });

        Assert.Equal("the disk is full", ex.Message);
        Assert.Equal(Enumerable.Range(0, 192), written);
    }

    [Fact]
    public async Task A_group_that_fails_while_the_next_message_is_being_read_ends_that_read_before_the_call_ends()
    {
        var requests = new ReadThatWaits();
        var run = PipelinedStream.RunGroupedAsync(requests, new RecordingResponses([]), MaxQueued, weigh: static _ => 1,
            answer: static (_, _) => throw new IOException("the disk is full"), maxGroupWeight: 64, CancellationToken.None);

        await Assert.ThrowsAsync<IOException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(requests.Second!.IsCompleted); // cancelled and awaited; it used to be left reading after the call ended
        Assert.True(requests.SecondCancelled);
    }

    // Message 0 at once, then a read that waits for a message that never comes, until it is cancelled.
    private sealed class ReadThatWaits : IAsyncStreamReader<int>
    {
        public int Current { get; private set; } = -1;

        public Task<bool>? Second { get; private set; }

        public bool SecondCancelled { get; private set; }

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (Current < 0)
            {
                Current = 0;
                return Task.FromResult(true);
            }

            var read = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            cancellationToken.Register(() =>
            {
                SecondCancelled = true;
                read.TrySetCanceled(cancellationToken);
            });
            return Second = read.Task;
        }
    }

    // 1,000 messages, each there at once, answered in groups of up to 64 until weighing or answering fails: the failure and
    // the answers written before it.
    private static async Task<(TException Failure, List<int> Written)> GroupsOf64UntilFailure<TException>(
        Func<int, int> weigh, Action<IReadOnlyList<(int Message, int Weight)>, List<int>> answer)
        where TException : Exception
    {
        var written = new List<int>();
        var failure = await Assert.ThrowsAsync<TException>(() => PipelinedStream.RunGroupedAsync(
            new EndlessRequests(limit: 1000), new RecordingResponses(written), MaxQueued, weigh, answer, maxGroupWeight: 64, CancellationToken.None));
        return (failure, written);
    }

    // Messages 0, 1, 2, … up to a limit, each ready at once except those in `late`, which arrive a moment after they are asked for.
    private sealed class ArrivingRequests(int limit, int[] late) : IAsyncStreamReader<int>
    {
        private int _next;

        public int Current { get; private set; } = -1;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (_next == limit)
            {
                return Task.FromResult(false);
            }

            var message = _next++;
            if (!late.Contains(message))
            {
                Current = message;
                return Task.FromResult(true);
            }

            return Task.Delay(20, cancellationToken).ContinueWith(_ =>
            {
                Current = message;
                return true;
            }, cancellationToken, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    // Messages 0, 1, 2, … up to a limit, each ready at once.
    private sealed class EndlessRequests(int limit) : IAsyncStreamReader<int>
    {
        private int _read;

        public int Current { get; private set; } = -1;

        public int Read => Volatile.Read(ref _read);

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_read == limit)
            {
                return Task.FromResult(false);
            }

            Current = _read;
            Interlocked.Increment(ref _read);
            return Task.FromResult(true);
        }

        // Returns once no message has been read for three samples `still` apart in a row (one quiet sample can be a
        // thread pool starved for a moment on a busy machine, not a stall); fails after `atMost`.
        public async Task StalledFor(TimeSpan still, TimeSpan atMost)
        {
            var deadline = DateTime.UtcNow + atMost;
            var last = -1;
            var quiet = 0;
            while (DateTime.UtcNow < deadline)
            {
                var now = Read;
                quiet = now == last ? quiet + 1 : 0;
                if (quiet == 3)
                {
                    return;
                }

                last = now;
                await Task.Delay(still);
            }

            Assert.Fail($"still reading after {atMost}: {Read} messages");
        }
    }

    // A client that reads the first flush and nothing after: buffered writes are taken at once (each only once the
    // client has sent messages well ahead of it), and a later write that flushes waits until the call is cancelled.
    private sealed class UnreadResponses(EndlessRequests requests) : IServerStreamWriter<int>
    {
        private bool _flushedOnce;

        public int Written { get; private set; }

        // Answers the flush that went through took out (it and those written before it).
        public int Flushed { get; private set; }

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(int message) => WriteAsync(message, CancellationToken.None);

        public async Task WriteAsync(int message, CancellationToken cancellationToken)
        {
            var flush = WriteOptions is not { } options || (options.Flags & WriteFlags.BufferHint) == 0;
            if (flush)
            {
                if (_flushedOnce)
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }

                _flushedOnce = true;
                Flushed = Written + 1;
            }

            // Two more read than this one and the next: the next one's successor is queued when the next is taken.
            while (requests.Read < message + 4)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await Task.Yield();
            }

            Written++;
        }
    }

    // Writes that succeed until the one at `failAt`, which fails as a broken transport would.
    private sealed class FailingResponses(int failAt) : IServerStreamWriter<int>
    {
        private int _writes;

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(int message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(int message, CancellationToken cancellationToken) =>
            ++_writes == failAt ? Task.FromException(new IOException("write failed")) : Task.CompletedTask;
    }

    private sealed class RecordingResponses(List<int> written) : IServerStreamWriter<int>
    {
        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(int message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(int message, CancellationToken cancellationToken)
        {
            written.Add(message);
            return Task.CompletedTask;
        }
    }
}
