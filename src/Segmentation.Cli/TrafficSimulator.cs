using System.Collections.Concurrent;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>The ground truth a simulation draws from.</summary>
/// <param name="ViewsPerUser">Page views per user; each is one Decide call and one impression.</param>
/// <param name="ClickRate">Chance that an impression is clicked.</param>
/// <param name="ConversionRate">Chance that a user converts (once, after their last view), unless their segment has its own.</param>
/// <param name="SegmentConversionRates">Conversion rate per segment id, overriding <paramref name="ConversionRate"/>.</param>
/// <param name="ArmLifts">Relative lift of click and conversion rates per arm (<c>arm</c> or <c>experiment:arm</c>): 0.2 is +20 %.</param>
/// <param name="OrderValue">Mean order value of a conversion (drawn between half and one and a half times it).</param>
/// <param name="Seed">Seed of every draw; event ids carry it and each user's draws follow from it and the user id, so outcomes sent again for the same seed and user come back as duplicates.</param>
/// <param name="Parallelism">Users simulated at once.</param>
internal sealed record SimulationTruth(
    int ViewsPerUser = 3,
    double ClickRate = 0.1,
    double ConversionRate = 0.1,
    IReadOnlyDictionary<string, double>? SegmentConversionRates = null,
    IReadOnlyDictionary<string, double>? ArmLifts = null,
    double OrderValue = 40,
    int Seed = 1,
    int Parallelism = 8)
{
    /// <summary>The true conversion rate of a user of <paramref name="segment"/> served <paramref name="experiment"/>'s <paramref name="arm"/>.</summary>
    public double Conversion(string segment, string experiment, string arm) =>
        Math.Clamp((SegmentConversionRates is not null && SegmentConversionRates.TryGetValue(segment, out var own) ? own : ConversionRate) * (1 + Lift(experiment, arm)), 0, 1);

    /// <summary>The true click rate of an impression of that arm.</summary>
    public double Click(string experiment, string arm) => Math.Clamp(ClickRate * (1 + Lift(experiment, arm)), 0, 1);

    private double Lift(string experiment, string arm) =>
        arm.Length == 0 || ArmLifts is null ? 0 : ArmLifts.GetValueOrDefault($"{experiment}:{arm}", ArmLifts.GetValueOrDefault(arm, 0));
}

/// <summary>What a simulation did, per experiment arm ("" for decisions in no experiment).</summary>
/// <param name="Users">Users simulated.</param>
/// <param name="Decisions">Decide calls.</param>
/// <param name="Outcomes">Outcomes recorded (not counting those the service had already: <paramref name="Duplicates"/>).</param>
/// <param name="Arms">Per "experiment:arm": users, and users who converted.</param>
/// <param name="Duplicates">Outcomes the service had recorded already (the same seed and user simulated before).</param>
internal sealed record SimulationSummary(int Users, long Decisions, long Outcomes, IReadOnlyDictionary<string, (int Users, int Converted)> Arms, long Duplicates = 0);

/// <summary>
/// Drives a running service with realistic traffic whose truth is known: each user views pages (a Decide call each,
/// then an impression of the decision), clicks with the arm's true click rate and converts at most once with their
/// segment's and arm's true conversion rate, credited to their last decision. What the service then reports about
/// its experiments can be checked against that truth (segctl simulate; the end-to-end experiment test).
/// </summary>
internal sealed class TrafficSimulator(CallInvoker invoker)
{
    /// <summary>
    /// The seed of one user's draws: a fixed function of the simulation's seed and the user's id, the same in every
    /// process and whatever else is simulated with the user, as the user's event ids are. (It was HashCode.Combine, which
    /// is randomised per process, then the user's position in the list, which changes when the members do: either way a
    /// re-run drew differently under the same event ids and recorded clicks and conversions the first run had not.)
    /// </summary>
    internal static int DrawSeed(int seed, string user)
    {
        var hash = 2166136261u; // FNV-1a over the id's UTF-16 code units
        foreach (var c in user)
        {
            hash = unchecked((hash ^ c) * 16777619u);
        }

        return unchecked((int)(((uint)seed * 0x9E3779B1u) ^ (hash * 0x85EBCA77u)));
    }

    private const int OutcomeBatch = 500;

    /// <summary>Simulates <paramref name="users"/>; <paramref name="progress"/> gets the users done so far.</summary>
    public async Task<SimulationSummary> RunAsync(IReadOnlyList<string> users, SimulationTruth truth, IProgress<int>? progress = null, CancellationToken ct = default)
    {
        var decisions = new DecisionService.DecisionServiceClient(invoker);
        var outcomes = new OutcomeService.OutcomeServiceClient(invoker);
        var arms = new ConcurrentDictionary<string, (int Users, int Converted)>(StringComparer.Ordinal);
        var (decided, recorded, duplicates, done) = (0L, 0L, 0L, 0);
        var pending = new ConcurrentQueue<Outcome>();

        async Task FlushAsync(bool all)
        {
            while (pending.Count >= (all ? 1 : OutcomeBatch))
            {
                var request = new RecordOutcomesRequest();
                while (request.Outcomes.Count < OutcomeBatch && pending.TryDequeue(out var o))
                {
                    request.Outcomes.Add(o);
                }

                if (request.Outcomes.Count == 0)
                {
                    return;
                }

                var response = await outcomes.RecordOutcomesAsync(request, cancellationToken: ct);
                var again = response.Results.Count(r => r.Attribution == Attribution.Duplicate);
                Interlocked.Add(ref duplicates, again);
                Interlocked.Add(ref recorded, request.Outcomes.Count - again);
            }
        }

        await Parallel.ForEachAsync(Enumerable.Range(0, users.Count), new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, truth.Parallelism), CancellationToken = ct }, async (index, token) =>
        {
            var user = users[index];
            var random = new Random(DrawSeed(truth.Seed, user)); // the same draws for the same seed and user, in every process
            var prefix = $"sim-{truth.Seed}-{user}";
            Decision? last = null;
            for (var view = 0; view < truth.ViewsPerUser; view++)
            {
                var now = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow);
                last = (await decisions.DecideAsync(new DecideRequest { UserId = user, Channel = Channel.Web, Context = new RequestContext { PageType = "home" } }, cancellationToken: token)).Decision;
                Interlocked.Increment(ref decided);
                pending.Enqueue(Outcome($"{prefix}-{view}-imp", OutcomeType.Impression, last, user, now));
                if (random.NextDouble() < truth.Click(last.ExperimentId, last.ArmId))
                {
                    pending.Enqueue(Outcome($"{prefix}-{view}-click", OutcomeType.Click, last, user, now));
                }
            }

            var converted = last is not null && random.NextDouble() < truth.Conversion(last.Segment.Id, last.ExperimentId, last.ArmId);
            if (converted)
            {
                var value = Math.Round(truth.OrderValue * (0.5 + random.NextDouble()), 2);
                pending.Enqueue(Outcome($"{prefix}-buy", OutcomeType.Conversion, last!, user, Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow), new Conversion { OrderId = $"{prefix}-order", Value = value, Currency = "GBP" }));
            }

            var key = last is null || last.ExperimentId.Length == 0 ? "" : $"{last.ExperimentId}:{last.ArmId}";
            arms.AddOrUpdate(key, _ => (1, converted ? 1 : 0), (_, c) => (c.Users + 1, c.Converted + (converted ? 1 : 0)));
            await FlushAsync(all: false);
            progress?.Report(Interlocked.Increment(ref done));
        });

        await FlushAsync(all: true);
        return new SimulationSummary(users.Count, decided, recorded, arms, duplicates);
    }

    private static Outcome Outcome(string id, OutcomeType type, Decision decision, string user, Timestamp at, Conversion? conversion = null) => new()
    {
        EventId = id,
        Type = type,
        DecisionId = decision.DecisionId,
        UserId = user,
        Variant = VariantKind.Offer,
        Timestamp = at,
        Conversion = conversion,
    };
}
