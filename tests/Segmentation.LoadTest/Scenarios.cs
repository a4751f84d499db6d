using System.Diagnostics;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.LoadTest;

/// <summary>
/// The calls one mode makes; each iteration records exactly one measured call (Echo or Decide). decide-miss
/// sends a TrackEvent before each Decide (the profile changes between calls; only the Decide is measured,
/// the TrackEvents are counted apart); decide-with-event sends the same page view inside the Decide (one call, the
/// event counted as a track); decide-fresh sends a page path never seen before, so every Decide is
/// computed in full without a write in between.
/// </summary>
internal sealed class Scenarios(LoadOptions options, IReadOnlyList<string> users, EchoRequest echoRequest)
{
    /// <summary>The storefront request every Decide sends: a product page on a phone in the UK.</summary>
    public static readonly RequestContext Context = new() { Device = "mobile", Country = "GB", PageType = "product", PagePath = "/gifts/christmas" };

    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);
    private readonly string _runId = Guid.NewGuid().ToString("N")[..8];

    /// <summary>Runs one iteration of <paramref name="mode"/> on <paramref name="channel"/>, recording into <paramref name="stats"/> when <paramref name="measured"/>.</summary>
    public async Task RunOnceAsync(string mode, CallInvoker channel, int worker, long iteration, Random random, WorkerStats stats, bool measured)
    {
        switch (mode)
        {
            case "echo":
                await Measure(stats, measured, async () =>
                {
                    await Echo(channel);
                    return false;
                });
                break;
            case "decide-hit":
                await Decide(channel, users[(int)((worker + iteration) % Math.Min(options.HotUsers, users.Count))], stats, measured);
                break;
            case "echo-pair":
                // decide-miss's ceiling: the same two sequential RPCs per iteration with no work in the server, the
                // second one counted (the first as decide-miss counts its TrackEvent).
                if (await Unmeasured(stats, measured, () => Echo(channel)))
                {
                    await Measure(stats, measured, async () =>
                    {
                        await Echo(channel);
                        return false;
                    });
                }

                break;
            case "decide-miss":
                await TrackThenDecide(channel, OwnUser(worker, random), stats, measured);
                break;
            case "decide-with-event":
                // decide-miss's workload in one round trip: the page view goes with the Decide (DecideRequest.events),
                // recorded before the decision, which sees it; the event is counted as a track.
                await DecideWithEvent(channel, OwnUser(worker, random), stats, measured);
                break;
            case "decide-fresh":
                // A page path never sent before: the catalog reads page_path, so the decision cannot come from
                // the cache and is computed in full (rules, resolution, five renders), without a write before it.
                var fresh = Context.Clone();
                fresh.PagePath = string.Create(CultureInfo.InvariantCulture, $"/gifts/item-{_runId}-{Interlocked.Increment(ref _paths)}"); // of the run: a pass's iterations start at 0 again
                await Decide(channel, users[random.Next(users.Count)], stats, measured, fresh, mustCompute: true);
                break;
            case "mixed":
                var user = users[random.Next(users.Count)];
                if (random.Next(100) < options.MissPercent)
                {
                    await TrackThenDecide(channel, user, stats, measured);
                }
                else
                {
                    await Decide(channel, user, stats, measured);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown mode");
        }
    }

    /// <summary>A page view with every required context field, so the profile version changes.</summary>
    public static Event PageView(string user, string eventId) => new()
    {
        EventId = eventId,
        Type = "page_view",
        UserId = user,
        Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
        Context = new EventContext { Source = "web", Device = "mobile", SessionId = "load-" + user, PageType = "product", PagePath = "/gifts/christmas" },
    };

    // A new event id on every call of the run, whatever the mode, pass or worker: an id sent before (each mode's workers
    // draw the same users in the same order, so decide-miss and decide-with-event would repeat each other's events)
    // would be a duplicate, a write that changes nothing.
    private long _events;

    private long _paths;

    // One of the worker's own users (users worker, worker + workers, ...): a user two workers shared could have one's
    // Decide answered from the cache the other's had just filled after their TrackEvents, a hit counted as a miss.
    private string OwnUser(int worker, Random random)
    {
        var workers = Math.Min(options.Concurrency, users.Count);
        var slot = worker % workers;
        var owned = ((users.Count - slot - 1) / workers) + 1;
        return users[slot + (workers * random.Next(owned))];
    }

    private string NextEventId() => string.Create(CultureInfo.InvariantCulture, $"load-{_runId}-{Interlocked.Increment(ref _events)}");

    private static DateTime Deadline() => DateTime.UtcNow + CallTimeout;

    // mustCompute: a decision the mode claims is computed in full; one answered from the cache fails the run (a catalog
    // that stopped reading the context the mode varies would otherwise turn it into cache hits, reported as misses).
    private static Task Decide(CallInvoker channel, string user, WorkerStats stats, bool measured, RequestContext? context = null, bool mustCompute = false) =>
        Measure(stats, measured, async () =>
        {
            var response = await new DecisionService.DecisionServiceClient(channel).DecideAsync(new DecideRequest { UserId = user, Context = context ?? Context }, deadline: Deadline());
            if (mustCompute && response.Decision.FromCache)
            {
                throw new RpcException(new Status(StatusCode.DataLoss, "a decision meant to be computed in full was answered from the cache"));
            }

            return response.Decision.FromCache;
        });

    private Task<EchoResponse> Echo(CallInvoker channel) =>
        new DiagnosticsService.DiagnosticsServiceClient(channel).EchoAsync(echoRequest, deadline: Deadline()).ResponseAsync;

    private async Task TrackThenDecide(CallInvoker channel, string user, WorkerStats stats, bool measured)
    {
        if (await Unmeasured(stats, measured, async () =>
            {
                var tracked = await new ProfileService.ProfileServiceClient(channel).TrackEventAsync(
                    new TrackEventRequest { Event = PageView(user, NextEventId()) }, deadline: Deadline());
                if (tracked.Duplicate)
                {
                    throw new RpcException(new Status(StatusCode.AlreadyExists, "the page view was a duplicate: the profile did not change"));
                }
            }))
        {
            await Decide(channel, user, stats, measured);
        }
    }

    private async Task DecideWithEvent(CallInvoker channel, string user, WorkerStats stats, bool measured)
    {
        var request = new DecideRequest { UserId = user, Context = Context, Events = { PageView("", NextEventId()) } };
        await Measure(stats, measured, async () =>
        {
            var response = await new DecisionService.DecisionServiceClient(channel).DecideAsync(request, deadline: Deadline());
            if (response.EventResults is not [{ Status: EventStatus.Accepted }])
            {
                throw new RpcException(new Status(StatusCode.AlreadyExists, "the page view carried by the Decide was not recorded as a new event"));
            }

            if (measured)
            {
                stats.Tracks++;
            }

            return response.Decision.FromCache;
        });
    }

    // The call before the measured one (counted apart as a "track"); false when it failed (its status recorded).
    private static async Task<bool> Unmeasured(WorkerStats stats, bool measured, Func<Task> call)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            await call();
            if (measured)
            {
                stats.Tracks++;
                stats.TrackLatencies.Add(Stopwatch.GetTimestamp() - start);
            }

            return true;
        }
        catch (RpcException ex)
        {
            if (measured)
            {
                stats.Error(ex.StatusCode);
            }

            return false;
        }
    }

    // Records one call's latency, whether the server served it from its cache, or its gRPC status on failure.
    private static async Task Measure(WorkerStats stats, bool measured, Func<Task<bool>> call)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            var fromCache = await call();
            if (measured)
            {
                stats.Latencies.Add(Stopwatch.GetTimestamp() - start);
                stats.CacheHits += fromCache ? 1 : 0;
            }
        }
        catch (RpcException ex)
        {
            if (measured)
            {
                stats.Error(ex.StatusCode);
            }
        }
    }
}
