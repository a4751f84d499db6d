using System.IO.Hashing;
using System.Text;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Application.Import;

/// <summary>What a simulation produced.</summary>
/// <param name="Decisions">Decisions made.</param>
/// <param name="Outcomes">Outcomes recorded.</param>
/// <param name="Rejected">Outcomes the recorder rejected (none, unless the simulation made an invalid one).</param>
public sealed record SimulationReport(int Decisions, int Outcomes, int Rejected = 0);

/// <summary>
/// SIMULATED decisions and outcomes for the demo, so KPIs mean something on a fresh machine: over the last
/// <c>days</c> days, a sample of users is decided for each day (web or email, at a random hour), and each
/// decision gets outcomes drawn with response rates that differ by segment — a base click rate by the
/// segment's family (intent 12 %, behaviour 9 %, value 7 %, need 5 %, context 4 %, psychographic 3 %) scaled
/// by a factor from 0.6 to 1.4 taken from the segment id, 80 % impressions (email: sends and 45 % opens),
/// a quarter of clicks converting at 20 to 120. Outcomes that would happen after <c>end</c> (a decision of its last
/// hours) are not made: they have not happened yet. These are not observations: nothing about real customers'
/// responses is known from the demo data, which has purchases only.
/// </summary>
public static class OutcomeSimulation
{
    /// <summary>Runs the simulation; deterministic for a given <paramref name="seed"/> and inputs.</summary>
    public static SimulationReport Run(DecisionEngine engine, OutcomeRecorder outcomes, IReadOnlyList<string> users, DateTimeOffset end, int days = 21, int perDay = 300, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(outcomes);
        ArgumentNullException.ThrowIfNull(users);
        if (users.Count == 0)
        {
            return new SimulationReport(0, 0);
        }

        var random = new Random(seed);
        var (decisions, recorded, rejected) = (0, 0, 0);
        var batch = new List<Outcome>();
        void Add(Outcome outcome)
        {
            if (outcome.Timestamp <= end)
            {
                batch.Add(outcome);
            }
        }

        for (var day = days; day >= 1; day--)
        {
            for (var k = 0; k < perDay; k++)
            {
                var at = end.AddDays(-day).AddMinutes(random.Next(24 * 60));
                var user = users[random.Next(users.Count)];
                var email = random.Next(10) < 3;
                var d = engine.DecideAsServed(new DecisionRequest(user, "", new RequestContext(Channel: email ? "email" : "web"), at));
                decisions++;
                var click = ClickRate(d.Winner);
                var id = $"sim-{d.DecisionId}";
                var variant = email ? (VariantKind?)null : random.Next(3) == 0 ? VariantKind.Content : VariantKind.Offer;
                bool shown;
                if (email)
                {
                    Add(new Outcome(id + "-s", OutcomeType.EmailSend, d.DecisionId, user, "", null, at.AddMinutes(1)));
                    shown = random.NextDouble() < 0.45;
                    if (shown)
                    {
                        Add(new Outcome(id + "-o", OutcomeType.EmailOpen, d.DecisionId, user, "", null, at.AddHours(2)));
                    }
                }
                else
                {
                    shown = random.NextDouble() < 0.8;
                    if (shown)
                    {
                        Add(new Outcome(id + "-i", OutcomeType.Impression, d.DecisionId, user, "", variant, at.AddSeconds(1)));
                    }
                    else if (random.Next(20) == 0)
                    {
                        Add(new Outcome(id + "-x", OutcomeType.Dismiss, d.DecisionId, user, "", variant, at.AddSeconds(5)));
                    }
                }

                if (shown && random.NextDouble() < click)
                {
                    Add(new Outcome(id + "-c", email ? OutcomeType.EmailClick : OutcomeType.Click, d.DecisionId, user, "", variant, at.AddHours(2).AddMinutes(5)));
                    if (random.Next(4) == 0)
                    {
                        var value = Math.Round(20 + (random.NextDouble() * 100), 2);
                        Add(new Outcome(id + "-v", OutcomeType.Conversion, d.DecisionId, user, "", variant, at.AddHours(3), $"sim-order-{d.DecisionId}", value, "GBP"));
                    }
                }

                if (batch.Count >= 500)
                {
                    Flush(outcomes, batch, ref recorded, ref rejected);
                }
            }
        }

        Flush(outcomes, batch, ref recorded, ref rejected);
        return new SimulationReport(decisions, recorded, rejected);
    }

    // The simulated click rate of a segment: its family's base rate, scaled by a factor from its id.
    private static double ClickRate(Segment segment)
    {
        var family = SegmentFamilies.DefaultPriority(segment.Type) switch
        {
            >= 600 => 0.12,
            >= 500 => 0.09,
            >= 400 => 0.07,
            >= 300 => 0.05,
            >= 200 => 0.04,
            _ => 0.03,
        };
        var factor = 0.6 + (0.8 * (XxHash32.HashToUInt32(Encoding.UTF8.GetBytes(segment.Id)) / (double)uint.MaxValue));
        return family * factor;
    }

    private static void Flush(OutcomeRecorder outcomes, List<Outcome> batch, ref int recorded, ref int rejected)
    {
        if (batch.Count == 0)
        {
            return;
        }

        foreach (var result in outcomes.RecordMany(batch))
        {
            if (result.Attribution == Attribution.Rejected)
            {
                rejected++;
            }
            else
            {
                recorded++;
            }
        }

        batch.Clear();
    }
}
