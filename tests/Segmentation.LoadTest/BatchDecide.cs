using System.Diagnostics;
using System.Globalization;
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

    /// <summary>
    /// Gives every batch user the server does not hold (the <c>load-N</c> ids that pad the demo's customers up to the
    /// batch size) a history of its own before anything is measured: a year of visits, product views and one to five
    /// orders, seeded by the id, so no batch decides for empty profiles (cheaper than a customer's, and not a send's
    /// audience). Event ids are fixed per user: a second run against the same server adds nothing. Returns how many
    /// users were given one.
    /// </summary>
    public async Task<int> SeedAsync(GrpcChannel channel)
    {
        var client = new ProfileService.ProfileServiceClient(channel);
        var now = DateTimeOffset.UtcNow;
        var seeded = users.Where(u => u.StartsWith("load-", StringComparison.Ordinal)).ToList();
        var request = new TrackEventsRequest();
        foreach (var user in seeded)
        {
            var random = new Random(int.Parse(user.AsSpan("load-".Length), CultureInfo.InvariantCulture)); // the same history in every run
            var orders = random.Next(1, 6);
            for (var j = 0; j < orders; j++)
            {
                var at = now.AddDays(-random.Next(1, 365)).AddMinutes(-random.Next(0, 1440));
                Add(user, $"{j}-v", "page_view", at.AddMinutes(-20));
                Add(user, $"{j}-p", "product_view", at.AddMinutes(-10), product: $"P{random.Next(1, 400)}");
                Add(user, $"{j}-o", "purchase", at, value: Math.Round(10 + (random.NextDouble() * 290), 2), order: $"seed-{user}-{j}");
            }

            if (request.Events.Count > 1_000 - 15) // a call takes 1,000 events; a user adds at most 15
            {
                await SendAsync();
            }
        }

        if (request.Events.Count > 0)
        {
            await SendAsync();
        }

        return seeded.Count;

        void Add(string user, string suffix, string type, DateTimeOffset at, double value = 0, string order = "", string product = "") => request.Events.Add(new Event
        {
            EventId = $"seed-{user}-{suffix}",
            Type = type,
            UserId = user,
            Timestamp = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(at),
            Value = value,
            Currency = value > 0 ? "GBP" : "",
            OrderId = order,
            ProductId = product,
            Context = new EventContext { Source = "web", Device = "desktop", SessionId = $"seed-{user}", PageType = type == "purchase" ? "checkout" : type == "product_view" ? "product" : "home" },
        });

        async Task SendAsync()
        {
            var response = await client.TrackEventsAsync(request, deadline: DateTime.UtcNow.AddSeconds(60));
            if (response.Rejected > 0)
            {
                throw new InvalidOperationException($"seeding the batch users: {response.Rejected} events rejected ({response.Results.First(r => r.Violations.Count > 0).Violations[0]})");
            }

            request = new TrackEventsRequest();
        }
    }

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
