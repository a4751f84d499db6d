using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.LoadTest;

/// <summary>
/// stream-ingest and stream-batch: <see cref="LoadOptions.Streams"/> concurrent <c>ProfileService.StreamEvents</c> calls,
/// each sending valid page views for many distinct synthetic users as fast as the results come back: one event per
/// message (stream-ingest) or batches of <see cref="LoadOptions.StreamBatch"/> per message (stream-batch, as a bulk
/// sender with events ready would), at most <see cref="LoadOptions.Window"/> events in flight per stream, results read
/// concurrently. Records, per event, the time from writing its message to reading its result, and the result's status.
/// echo-stream: stream-ingest's ceiling, the same streams and window over <c>DiagnosticsService.EchoStream</c>, which
/// answers through the same stream handling with no work: each message carries as many bytes as the page view it
/// stands for and asks for as many back as that event's result would take.
/// </summary>
internal sealed class StreamIngest(LoadOptions options)
{
    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];
    private long _sequence;

    /// <summary>Runs every stream until <paramref name="stopAt"/>; results received in [measureFrom, stopAt) are recorded.</summary>
    public async Task<WorkerStats[]> RunAsync(GrpcChannel[] channels, long measureFrom, long stopAt, int batch, bool echo = false)
    {
        var stats = Enumerable.Range(0, options.Streams).Select(_ => new WorkerStats()).ToArray();
        await Task.WhenAll(Enumerable.Range(0, options.Streams).Select(s => Task.Run(() =>
        {
            var channel = channels[s % options.StreamConnectionsUsed];
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(((stopAt - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency) + 30);
            var position = 0; // the stream's own count, as the server's result index
            return echo
                ? Pump(new DiagnosticsService.DiagnosticsServiceClient(channel).EchoStream(deadline: deadline), stats[s], measureFrom, stopAt, 1, () => EchoOfPageView(position++), CountEcho)
                : Pump(new ProfileService.ProfileServiceClient(channel).StreamEvents(deadline: deadline), stats[s], measureFrom, stopAt, batch, () => PageViews(batch), CountResults);
        })));
        return stats;
    }

    private async Task Pump<TRequest, TResponse>(AsyncDuplexStreamingCall<TRequest, TResponse> call, WorkerStats stats, long measureFrom, long stopAt, int batch, Func<TRequest> next, Action<WorkerStats, TResponse, long> count)
    {
        using var _ = call;
        var messagesInFlight = Math.Max(1, options.Window / batch);
        using var window = new SemaphoreSlim(messagesInFlight, messagesInFlight);

        // Results come back in request order, so the send times queue up in the same order (one per message).
        var sent = new System.Collections.Concurrent.ConcurrentQueue<long>();
        var reader = Task.Run(async () =>
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                var now = Stopwatch.GetTimestamp();
                sent.TryDequeue(out var start);
                window.Release();
                if (now >= measureFrom && now < stopAt)
                {
                    count(stats, response, now - start);
                }
            }
        });

        try
        {
            while (Stopwatch.GetTimestamp() < stopAt)
            {
                if (!await window.WaitAsync(TimeSpan.FromSeconds(1)))
                {
                    if (reader.IsCompleted)
                    {
                        break; // the response stream ended early (an error): awaited below
                    }

                    continue;
                }

                var message = next();
                sent.Enqueue(Stopwatch.GetTimestamp());
                await call.RequestStream.WriteAsync(message);
            }

            await call.RequestStream.CompleteAsync();
            await reader;
        }
        catch (RpcException ex)
        {
            stats.Error(ex.StatusCode);
        }
    }

    private StreamEventsRequest PageViews(int batch)
    {
        var message = new StreamEventsRequest();
        if (batch == 1)
        {
            message.Event = PageView(Interlocked.Increment(ref _sequence));
        }
        else
        {
            for (var i = 0; i < batch; i++)
            {
                message.Events.Add(PageView(Interlocked.Increment(ref _sequence)));
            }
        }

        return message;
    }

    // A message of the size of one page view's StreamEvents message, asking for an answer of the size of its result
    // (a result at the stream's position, accepted), with no event in it.
    private EchoStreamRequest EchoOfPageView(int position)
    {
        var pageView = PageView(Interlocked.Increment(ref _sequence));
        var result = new StreamEventsResponse
        {
            Result = new EventResult { Index = position, EventId = pageView.EventId, Status = EventStatus.Accepted, UserId = pageView.UserId, ProfileVersion = 100 },
        };
        var answer = BytesField(result.CalculateSize(), 0);
        var askFor = CodedOutputStream.ComputeUInt32Size((uint)answer) + 1;
        return new EchoStreamRequest { Payload = Zeros(BytesField(new StreamEventsRequest { Event = pageView }.CalculateSize(), askFor)), ResponseBytes = (uint)answer };
    }

    // The length of a bytes field (field number below 16) that, with `otherFields` bytes beside it, makes a message of
    // `messageSize` bytes (or as near below as lengths allow).
    private static int BytesField(int messageSize, int otherFields)
    {
        var length = Math.Max(0, messageSize - otherFields - 2);
        while (length > 0 && 1 + CodedOutputStream.ComputeLengthSize(length) + length + otherFields > messageSize)
        {
            length--;
        }

        return length;
    }

    // Page views differ in size by a few digits: one payload per size, shared.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, ByteString> ZerosBySize = new();

    private static ByteString Zeros(int length) => ZerosBySize.GetOrAdd(length, static n => ByteString.CopyFrom(new byte[n]));

    private static void CountResults(WorkerStats stats, StreamEventsResponse response, long latency)
    {
        if (response.Result is { } single)
        {
            Count(stats, single, latency);
        }

        foreach (var result in response.Results)
        {
            Count(stats, result, latency);
        }
    }

    private static void CountEcho(WorkerStats stats, EchoStreamResponse response, long latency)
    {
        stats.Latencies.Add(latency);
        stats.Accepted++;
    }

    private static void Count(WorkerStats stats, EventResult result, long latency)
    {
        stats.Latencies.Add(latency);
        switch (result.Status)
        {
            case EventStatus.Accepted: stats.Accepted++; break;
            case EventStatus.Duplicate: stats.Duplicate++; break;
            default: stats.Rejected++; break;
        }
    }

    // A valid page view with every required context field, for one of IngestUsers synthetic users.
    private Event PageView(long n)
    {
        var user = "ingest-" + (n % options.IngestUsers).ToString(CultureInfo.InvariantCulture);
        return new Event
        {
            EventId = string.Create(CultureInfo.InvariantCulture, $"si-{_runId}-{n}"),
            Type = "page_view",
            UserId = user,
            Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
            Context = new EventContext
            {
                Source = "web",
                Device = (n & 1) == 0 ? "mobile" : "desktop",
                SessionId = string.Create(CultureInfo.InvariantCulture, $"{user}-{_runId}"),
                PageType = "product",
                PagePath = "/gifts/christmas",
                Country = "GB",
            },
        };
    }
}
