using Segmentation.Core.Decisions;
using Segmentation.Core.Rendering;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Decisions;

/// <summary>
/// Known customers of the UCI Online Retail sample run through the whole pipeline (import, RFM,
/// default catalog, priority, rendering). "Now" is the day after the last invoice (2011-12-10).
/// The facts in each case were computed independently from the CSV (see RfmIndependentTests).
/// </summary>
public sealed class GoldenProfileTests : IClassFixture<GoldenProfileTests.DemoWorld>
{
    private readonly DemoWorld _demo;

    public GoldenProfileTests(DemoWorld demo) => _demo = demo;

    public sealed class DemoWorld : IDisposable
    {
        public DemoWorld() => World.ImportDemo();

        public TestWorld World { get; } = new();

        public void Dispose() => World.Dispose();
    }

    [Theory]
    // 13 orders, £8,892.32, last order 25 days ago, RFM 4-5-5: VIP (revenue >= £1,000) outranks champions.
    [InlineData("12415", "vip")]
    // 4 orders, £453.00, last order 40 days ago, RFM 4-4-5: champions; repeat_buyer is excluded by champions.
    [InlineData("12347", "champions")]
    // 3 orders, £333.04, last order 249 days ago, RFM 1-4-5: at-risk high value outranks churned.
    [InlineData("12348", "at_risk_high_value")]
    // 1 order, £17.40, 310 days ago, RFM 1-1-1: lost customer outranks churned.
    [InlineData("12350", "lost_customers")]
    // 1 order, £23.40, 4 days ago: first-time buyer.
    [InlineData("12367", "first_time_buyer")]
    // 3 orders, £76.00, 22 days ago, RFM 4-4-3 (not a champion), UK: repeat buyer.
    [InlineData("12747", "repeat_buyer")]
    // 1 order of £231.86, 60 days ago, RFM 3-1-5, Switzerland: wholesale (AOV >= £150) outranks overseas.
    [InlineData("12371", "wholesale_buyer")]
    public void Known_customers_get_their_expected_segment(string customer, string expected)
    {
        var d = _demo.World.Decide(customer);

        Assert.Equal(expected, d.Winner.Id);
        Assert.False(d.FallbackUsed);
        Assert.All(Enum.GetValues<VariantKind>(), k => Assert.False(string.IsNullOrWhiteSpace(d.Variant(k).Text)));
    }

    [Fact]
    public void Overseas_champion_also_matches_the_lower_priority_segments_it_belongs_to()
    {
        var d = _demo.World.Decide("12347"); // Iceland, 4 orders

        var statuses = d.Matched.ToDictionary(m => m.Segment.Id, m => m.Status);
        Assert.Equal(MatchStatus.Winner, statuses["champions"]);
        Assert.Equal(MatchStatus.Excluded, statuses["repeat_buyer"]);
        Assert.Equal(MatchStatus.Outranked, statuses["overseas_customer"]);
    }

    [Fact]
    public void Rendered_copy_uses_the_customers_own_numbers()
    {
        var d = _demo.World.Decide("12747");
        var all = string.Join(" ", Enum.GetValues<VariantKind>().Select(k => d.Variant(k).Text));

        Assert.All(Enum.GetValues<VariantKind>(), k => Assert.False(d.Variant(k).FallbackUsed));
        Assert.Contains("3", all, StringComparison.Ordinal); // 3 orders appear in the repeat-buyer copy
    }

    [Fact]
    public void A_customer_without_an_id_in_the_data_is_unknown_and_gets_the_fallback()
    {
        var d = _demo.World.Decide("no-such-customer");
        Assert.True(d.FallbackUsed);
        Assert.Equal("general_audience", d.Winner.Id);
    }

    [Fact]
    public void Every_demo_customer_gets_a_decision_without_render_failures()
    {
        var failures = _demo.World.Renderer.FailureCount;
        var winners = _demo.World.Store.Snapshot().Select(p => _demo.World.Decide(p.UserId).Winner.Id).ToList();

        Assert.Equal(3569, winners.Count);
        Assert.Equal(failures, _demo.World.Renderer.FailureCount);
        Assert.True(winners.Distinct().Count() >= 8, "the demo population spreads over many segments");
    }
}
