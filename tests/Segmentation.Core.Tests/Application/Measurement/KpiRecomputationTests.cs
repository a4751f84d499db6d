using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Measurement;

/// <summary>
/// KPIs equal an independent recomputation from the raw outcome stream: thousands of users in three segments
/// with different response rates, decided over ten days on two channels, and an outcome stream with re-sent
/// event ids, second conversions of one order, outcomes after the attribution window, unknown decision ids,
/// conversions without a decision id, all delivered out of order. The expected KPIs are computed here from the
/// stream by a plain model of the documented rules, not by the service's code.
/// </summary>
public class KpiRecomputationTests
{
    private static readonly string[] Tiers = ["gold", "silver", "bronze"];

    // Per segment: impression, click-given-impression and conversion-given-click rates that differ.
    private static readonly Dictionary<string, (double Impression, double Click, double Conversion)> Rates = new()
    {
        ["gold"] = (0.9, 0.30, 0.40),
        ["silver"] = (0.8, 0.15, 0.20),
        ["bronze"] = (0.7, 0.05, 0.10),
    };

    private sealed record Decided(string Id, string User, string Segment, string Channel, DateTimeOffset At);

    [Fact]
    public void Kpis_equal_a_recomputation_from_the_raw_outcome_stream()
    {
        var start = new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero);
        using var w = new TestWorld(
            TestCatalogs.Source(Tiers.Select(t => TestCatalogs.Segment(t, "value", $"{{ field: traits.tier, eq: {t} }}")).ToArray()),
            now: start);
        var random = new Random(20261202);
        const int Users = 3_000;
        for (var u = 0; u < Users; u++)
        {
            w.Ingestion.SetTraits($"u{u}", new Dictionary<string, object?> { ["tier"] = Tiers[u % 3] }, "crm", AttributeLayer.ZeroParty, null);
        }

        // Decisions: each user one to three times over ten days, on the web or by email.
        var decided = new List<Decided>();
        foreach (var hour in Enumerable.Range(0, 240))
        {
            w.Clock.Now = start.AddHours(hour);
            for (var k = 0; k < 25; k++)
            {
                var user = $"u{random.Next(Users)}";
                var channel = random.Next(4) == 0 ? "email" : "web";
                var d = w.Engine.Decide(new DecisionRequest(user, "", new RequestContext(Channel: channel)));
                decided.Add(new Decided(d.DecisionId, user, d.Winner.Id, channel, d.EvaluatedAt));
            }
        }

        // The raw outcome stream.
        var stream = new List<Outcome>();
        var n = 0;
        foreach (var d in decided)
        {
            var (pi, pc, pv) = Rates[d.Segment];
            var variant = random.Next(2) == 0 ? VariantKind.Offer : VariantKind.Content;
            if (random.NextDouble() >= pi)
            {
                continue;
            }

            var shownAt = d.At.AddMinutes(random.Next(1, 60));
            stream.Add(new Outcome($"o{n++}", OutcomeType.Impression, d.Id, d.User, "", variant, shownAt));
            if (random.NextDouble() >= pc)
            {
                continue;
            }

            // One click in twenty arrives after the attribution window.
            var clickAt = random.Next(20) == 0 ? d.At.AddDays(8) : shownAt.AddMinutes(random.Next(1, 120));
            stream.Add(new Outcome($"o{n++}", OutcomeType.Click, d.Id, d.User, "", variant, clickAt));
            if (random.NextDouble() < pv)
            {
                var order = $"order-{n}";
                var value = Math.Round(10 + (random.NextDouble() * 90), 2);
                var boughtAt = clickAt.AddMinutes(30);
                // Half the conversions name the decision; half come from the order system with no decision id.
                stream.Add(new Outcome($"o{n++}", OutcomeType.Conversion, random.Next(2) == 0 ? d.Id : "", d.User, "", variant, boughtAt, order, value, "GBP"));
                if (random.Next(10) == 0)
                {
                    stream.Add(new Outcome($"o{n++}", OutcomeType.Conversion, d.Id, d.User, "", variant, boughtAt.AddMinutes(1), order, value, "GBP")); // same order again
                }
            }
        }

        for (var i = 0; i < 200; i++)
        {
            stream.Add(new Outcome($"o{n++}", OutcomeType.Click, Guid.CreateVersion7().ToString(), $"u{random.Next(Users)}", "", null, start.AddDays(random.Next(10)))); // unknown ids
        }

        var resent = stream.OrderBy(_ => random.Next()).Take(stream.Count / 10).ToList(); // re-sent event ids
        var arrival = stream.Concat(resent).OrderBy(_ => random.Next()).ToList(); // out of order
        w.Clock.Now = start.AddDays(19); // every outcome is in the past now

        foreach (var batch in arrival.Chunk(OutcomeRecorder.MaxPerCall))
        {
            Assert.DoesNotContain(w.Outcomes.RecordMany(batch), r => r.Attribution == Attribution.Rejected);
        }

        w.Measurement.Drain();
        var report = w.Measurement.Kpis.Query(new KpiQuery(start, start.AddDays(19), [KpiDimension.Segment]));

        var expected = Recompute(decided, arrival, TimeSpan.FromDays(7));
        foreach (var tier in Tiers)
        {
            var actual = Assert.Single(report.Rows, r => r.SegmentId == tier).Kpis;
            var e = expected.Segments[tier];
            Assert.Equal((e.Decisions, e.Impressions, e.Clicks, e.Conversions), (actual.Decisions, actual.Impressions, actual.Clicks, actual.Conversions));
            Assert.Equal(e.Revenue, actual.Revenue, 6);
            Assert.InRange(actual.Reach, e.Reach * 0.97, e.Reach * 1.03);
        }

        Assert.Equal(expected.Unattributed, report.UnattributedOutcomes);

        // The rates differ as generated: gold's click-through rate is the highest, bronze's the lowest.
        var ctr = Tiers.Select(t => report.Rows.Single(r => r.SegmentId == t).Kpis.ClickThroughRate).ToArray();
        Assert.True(ctr[0] > ctr[1] && ctr[1] > ctr[2], string.Join(", ", ctr));
    }

    private sealed class Expected
    {
        public long Decisions;
        public long Impressions;
        public long Clicks;
        public long Conversions;
        public double Revenue;
        public HashSet<string> Users = [];

        public long Reach => Users.Count;
    }

    // The documented rules, applied to the stream in arrival order.
    private static (Dictionary<string, Expected> Segments, long Unattributed) Recompute(List<Decided> decided, List<Outcome> arrival, TimeSpan window)
    {
        var segments = decided.Select(d => d.Segment).Distinct().ToDictionary(s => s, _ => new Expected());
        foreach (var d in decided)
        {
            segments[d.Segment].Decisions++;
            segments[d.Segment].Users.Add(d.User);
        }

        var byId = decided.ToDictionary(d => d.Id);
        var seenEvents = new HashSet<string>();
        var creditedOrders = new HashSet<string>(); // an order counts once, whichever decision it is credited to (or none)
        var impressions = new Dictionary<string, List<(DateTimeOffset At, Decided Decision)>>();
        long unattributed = 0;
        foreach (var o in arrival)
        {
            if (!seenEvents.Add(o.EventId))
            {
                continue; // a re-sent event id is not counted again
            }

            Decided? credited = null;
            if (o.DecisionId.Length > 0)
            {
                if (byId.TryGetValue(o.DecisionId, out var d) && d.User == o.UserId && o.Timestamp >= d.At.AddMinutes(-5) && o.Timestamp - d.At <= window)
                {
                    credited = d;
                }
            }
            else if (impressions.TryGetValue(o.UserId, out var shown))
            {
                var last = shown.Where(s => s.At <= o.Timestamp).OrderBy(s => s.At).LastOrDefault();
                if (last.Decision is { } touched && o.Timestamp - last.At <= window && o.Timestamp - touched.At <= window)
                {
                    credited = touched;
                }
            }

            if (credited is null)
            {
                if (o.Type != OutcomeType.Conversion || creditedOrders.Add(o.OrderId!))
                {
                    unattributed++;
                }

                continue;
            }

            var s = segments[credited.Segment];
            switch (o.Type)
            {
                case OutcomeType.Impression:
                    s.Impressions++;
                    (impressions.TryGetValue(o.UserId, out var list) ? list : impressions[o.UserId] = []).Add((o.Timestamp, credited));
                    break;
                case OutcomeType.Click:
                    s.Clicks++;
                    break;
                case OutcomeType.Conversion when creditedOrders.Add(o.OrderId!):
                    s.Conversions++;
                    s.Revenue += o.Value;
                    break;
            }
        }

        return (segments, unattributed);
    }
}
