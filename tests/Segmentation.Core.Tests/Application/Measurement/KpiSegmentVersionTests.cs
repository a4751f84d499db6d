using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Measurement;

/// <summary>The KPI store keeps the segment versions and experiment arms its kept days decided into, not every one ever.</summary>
public sealed class KpiSegmentVersionTests
{
    private static readonly DateTimeOffset Start = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Versions_no_kept_day_decided_into_are_forgotten_and_a_segments_newest_is_kept()
    {
        // Regression (review): every publish added a version of each segment decided into, and the store kept each with
        // its catalog's segment (rules, templates) for good — a catalog directory edited daily pinned a year of catalogs.
        using var world = new TestWorld();
        var (vip, other) = (world.Catalogs.Current.Segments[0], world.Catalogs.Current.Segments[1]);
        var kpis = new KpiStore();
        for (var version = 1; version <= 50; version++)
        {
            kpis.AddDecision(Start.AddHours(version).UtcTicks, new DecisionKey(vip, version, "web"), "u1");
        }

        kpis.AddDecision(Start.UtcTicks, new DecisionKey(other, 7, "web"), "u2"); // no newer version: kept for its variants
        Assert.Equal(51, kpis.SegmentVersions().Count());

        var later = Start.AddDays(KpiStore.RetentionDays + 5);
        kpis.AddDecision(later.UtcTicks, new DecisionKey(vip, 51, "web"), "u1");
        kpis.AddDecision(later.AddDays(-1).UtcTicks, new DecisionKey(vip, 50, "web"), "u3"); // an older version still deciding (a decision made before a publish, counted late)

        Assert.Equal(new[] { (vip.Id, 50L), (vip.Id, 51L), (other.Id, 7L) }.Order(), kpis.SegmentVersions().Select(s => (s.Segment, s.Version)).Order());
    }

    [Fact]
    public void A_version_whose_outcomes_are_still_kept_keeps_its_variants()
    {
        // Regression (own review): only decisions kept a version; an outcome credited days after its decision (within the
        // attribution window) kept its row in a 90-day range, and the row lost its variant id once the version was forgotten.
        using var world = new TestWorld();
        var vip = world.Catalogs.Current.Segments[0];
        var kpis = new KpiStore();
        kpis.AddDecision(Start.UtcTicks, new DecisionKey(vip, 1, "web"), "u1");
        kpis.AddOutcome(Start.AddDays(5).UtcTicks, vip.Id, 1, "web", VariantKind.Content, Core.Outcomes.OutcomeType.Click, 0);
        kpis.AddDecision(Start.AddDays(93).UtcTicks, new DecisionKey(vip, 2, "web"), "u1");

        var report = kpis.Query(new KpiQuery(Start.AddDays(4), Start.AddDays(94), [KpiDimension.Variant, KpiDimension.CatalogVersion]));

        var row = Assert.Single(report.Rows, r => r.CatalogVersion == 1 && r.Variant == VariantKind.Content);
        Assert.Equal(vip.Variants[(int)VariantKind.Content].Id, row.VariantId);
    }

    [Fact]
    public void An_arm_no_kept_day_decided_into_is_forgotten_and_an_arm_still_served_is_kept()
    {
        using var world = new TestWorld();
        var catalog = world.Catalogs.Current;
        var segment = catalog.Segments[0];
        var (old, served) = (new ExperimentArm("a", 1, segment.Variants, [], "old-test"), new ExperimentArm("b", 1, segment.Variants, [], "new-test"));
        var kpis = new KpiStore();
        kpis.AddDecision(Start.UtcTicks, new DecisionKey(segment, 1, "web", Arm: old), "u1");
        kpis.AddDecision(Start.UtcTicks, new DecisionKey(segment, 1, "web", Arm: served), "u1");

        kpis.AddDecision(Start.AddDays(KpiStore.RetentionDays + 5).UtcTicks, new DecisionKey(segment, 1, "web", Arm: served), "u1");

        Assert.Equal([served.Key], kpis.ArmVariantIds().Select(a => a.Key).ToArray());
    }

    [Fact]
    public void A_series_past_its_point_bound_is_refused_naming_include_series_and_the_same_range_without_one_is_answered()
    {
        // Regression (review): a series' response was unbounded (a 90-day series by variant and channel of a large catalog
        // is about 200 MB, past what any client accepts by default).
        using var world = new TestWorld();
        var vip = world.Catalogs.Current.Segments[0];
        var kpis = new KpiStore { MaxSeriesPoints = 100 };
        for (var hour = 0; hour < 101; hour++)
        {
            kpis.AddDecision(Start.AddHours(hour).UtcTicks, new DecisionKey(vip, 1, "web"), "u1");
        }

        var refused = Assert.Throws<ValidationException>(() => kpis.Query(new KpiQuery(Start, Start.AddHours(101), [KpiDimension.Segment], Series: true)));
        Assert.Equal("include_series", Assert.Single(refused.Violations).Field);
        Assert.Contains("101", Assert.Single(refused.Violations).Description, StringComparison.Ordinal);

        Assert.Equal(100, Assert.Single(kpis.Query(new KpiQuery(Start, Start.AddHours(100), [KpiDimension.Segment], Series: true)).Rows).Series.Count);
        Assert.Equal(101, Assert.Single(kpis.Query(new KpiQuery(Start, Start.AddHours(101), [KpiDimension.Segment])).Rows).Kpis.Decisions);
    }
}
