using System.Diagnostics;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.LoadTest;

/// <summary>
/// stream-ingest: <see cref="LoadOptions.Streams"/> concurrent <c>ProfileService.StreamEvents</c> calls,
/// each sending valid page views for many distinct synthetic users as fast as the results come back:
/// at most <see cref="LoadOptions.Window"/> events in flight per stream, results read concurrently.
/// Records, per event, the time from write to its result, and the result's status.
/// </summary>
internal sealed class StreamIngest(LoadOptions options)
{
    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];
    private long _sequence;

    /// <summary>Runs every stream until <paramref name="stopAt"/>; results received in [measureFrom, stopAt) are recorded.</summary>
    public async Task<WorkerStats[]> RunAsync(GrpcChannel[] channels, long measureFrom, long stopAt)
    {
        var stats = Enumerable.Range(0, options.Streams).Select(_ => new WorkerStats()).ToArray();
        await Task.WhenAll(Enumerable.Range(0, options.Streams).Select(s => Task.Run(() => RunStream(channels[s % channels.Length], stats[s], measureFrom, stopAt))));
        return stats;
    }

    private async Task RunStream(GrpcChannel channel, WorkerStats stats, long measureFrom, long stopAt)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(((stopAt - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency) + 30);
        using var call = new ProfileService.ProfileServiceClient(channel).StreamEvents(deadline: deadline);
        using var window = new SemaphoreSlim(options.Window, options.Window);

        // Results come back in request order, so the send times queue up in the same order.
        var sent = new System.Collections.Concurrent.ConcurrentQueue<long>();
        var reader = Task.Run(async () =>
        {
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                var now = Stopwatch.GetTimestamp();
                sent.TryDequeue(out var start);
                window.Release();
                if (now < measureFrom || now >= stopAt)
                {
                    continue;
                }

                stats.Latencies.Add(now - start);
                switch (response.Result.Status)
                {
                    case EventStatus.Accepted: stats.Accepted++; break;
                    case EventStatus.Duplicate: stats.Duplicate++; break;
                    default: stats.Rejected++; break;
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

                var n = Interlocked.Increment(ref _sequence);
                sent.Enqueue(Stopwatch.GetTimestamp());
                await call.RequestStream.WriteAsync(new StreamEventsRequest { Event = PageView(n) });
            }

            await call.RequestStream.CompleteAsync();
            await reader;
        }
        catch (RpcException ex)
        {
            stats.Error(ex.StatusCode);
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
