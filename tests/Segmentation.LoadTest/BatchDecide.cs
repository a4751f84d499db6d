using System.Diagnostics;
using Grpc.Core;
using Grpc.Net.Client;
using Segmentation.Contracts.V1;

namespace Segmentation.LoadTest;

/// <summary>
/// decide-batch: <see cref="LoadOptions.BatchCalls"/> concurrent <c>DecisionService.DecideBatch</c> calls, each for
/// <see cref="LoadOptions.BatchSize"/> users with a page path never sent before (so no decision comes from the
/// cache), one after another until the time is up, as an email platform preparing a send drives it. Every
/// result is checked: in request order, for the user asked, a decision. Records per call the time to its
/// first result and to its last; throughput is users decided per second.
/// </summary>
internal sealed class BatchDecide(LoadOptions options, IReadOnlyList<string> users)
{
    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];
    private long _batches;

    /// <summary>Runs every caller until <paramref name="stopAt"/>; batches that end in [measureFrom, stopAt) are recorded.</summary>
    public async Task<WorkerStats[]> RunAsync(GrpcChannel[] channels, long measureFrom, long stopAt)
    {
        var stats = Enumerable.Range(0, options.BatchCalls).Select(_ => new WorkerStats()).ToArray();
        await Task.WhenAll(Enumerable.Range(0, options.BatchCalls).Select(c => Task.Run(() => RunCaller(channels[c % channels.Length], stats[c], measureFrom, stopAt))));
        return stats;
    }

    private async Task RunCaller(GrpcChannel channel, WorkerStats stats, long measureFrom, long stopAt)
    {
        var client = new DecisionService.DecisionServiceClient(channel);
        while (Stopwatch.GetTimestamp() < stopAt)
        {
            var n = Interlocked.Increment(ref _batches);
            var request = new DecideBatchRequest
            {
                Channel = options.BatchChannel == "email" ? Channel.Email : Channel.Web,
                Purpose = ConsentPurpose.Personalization, // decide for everyone: the send's consent check is not what is measured
                Context = Scenarios.Context.Clone(),
            };
            request.Context.PagePath = $"/newsletter/{_runId}-{n}";
            var offset = (int)(n * 7919 % users.Count);
            for (var i = 0; i < options.BatchSize; i++)
            {
                request.UserIds.Add(users[(offset + i) % users.Count]);
            }

            var start = Stopwatch.GetTimestamp();
            long first = 0;
            var received = 0;
            var wrong = 0;
            try
            {
                using var call = client.DecideBatch(request, deadline: DateTime.UtcNow.AddSeconds(60));
                await foreach (var item in call.ResponseStream.ReadAllAsync())
                {
                    if (received == 0)
                    {
                        first = Stopwatch.GetTimestamp() - start;
                    }

                    if (item.Index != received || item.UserId != request.UserIds[received] || item.ResultCase != DecideBatchResponse.ResultOneofCase.Decision || item.Decision.FromCache)
                    {
                        wrong++;
                    }

                    received++;
                }
            }
            catch (RpcException ex)
            {
                stats.Error(ex.StatusCode);
                continue;
            }

            var end = Stopwatch.GetTimestamp();
            if (end < measureFrom || end >= stopAt)
            {
                continue;
            }

            if (received != options.BatchSize || wrong > 0)
            {
                stats.Error(StatusCode.DataLoss); // results missing, out of order, not decisions, or served from the cache
                continue;
            }

            stats.Latencies.Add(end - start);
            stats.FirstResultLatencies.Add(first);
            stats.Items += received;
        }
    }
}
