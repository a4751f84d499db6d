using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Domain = Segmentation.Core.Experiments;

namespace Segmentation.Server.Mapping;

/// <summary>Maps experiments and their results to the contract.</summary>
internal static class ExperimentMapper
{
    public static ExperimentInfo ToProto(Core.Application.Experiments.ExperimentInfo info)
    {
        var e = info.Experiment;
        return new ExperimentInfo
        {
            Id = e.Id,
            SegmentId = e.Segment?.Id ?? "",
            Layer = e.Layer ?? "",
            LayerShare = e.LayerTo - e.LayerFrom,
            Description = e.Description,
            Status = info.Status switch
            {
                Core.Application.Experiments.ExperimentStatus.Scheduled => ExperimentStatus.Scheduled,
                Core.Application.Experiments.ExperimentStatus.Running => ExperimentStatus.Running,
                Core.Application.Experiments.ExperimentStatus.Stopped => ExperimentStatus.Stopped,
                _ => ExperimentStatus.Promoted,
            },
            StartTime = ValueMapper.Ticks(e.StartTicks),
            StopTime = e.StopTicks == long.MaxValue ? null : ValueMapper.Ticks(e.StopTicks),
            PrimaryMetric = e.PrimaryMetric,
            Guardrails = { e.Guardrails },
            MinimumDetectableEffect = e.MinimumDetectableEffect ?? 0,
            Bandit = e.IsBandit,
            Arms = { e.Arms.Select((a, i) => new ExperimentArmInfo { Id = a.Id, Weight = e.Allocation[i], Overrides = { a.Overrides.Select(k => k.ToString().ToLowerInvariant()) } }) },
            Exposure = e.Exposure == Core.Catalog.ExposureTrigger.Impression ? ExposureTrigger.Impression : ExposureTrigger.Decision,
            PromotedArmId = e.Promoted ?? "",
            ExposedUsers = info.Exposed,
        };
    }

    public static GetExperimentResultsResponse ToProto(Core.Application.Experiments.ExperimentReport report)
    {
        var r = report.Result;
        return new GetExperimentResultsResponse
        {
            Experiment = ToProto(report.Info),
            ComputedAt = Timestamp.FromDateTimeOffset(report.ComputedAt),
            ControlArmId = r.ControlArmId,
            Arms =
            {
                r.Arms.Select(a => new ArmResult
                {
                    ArmId = a.ArmId,
                    Weight = a.Weight,
                    ExpectedShare = a.ExpectedShare,
                    AssignedUsers = a.Assigned,
                    ExposedUsers = a.Exposed,
                    Metrics = { a.Metrics.Select(ToProto) },
                }),
            },
            SampleRatio = new SampleRatioCheck { ChiSquared = r.SampleRatio.ChiSquared, PValue = r.SampleRatio.PValue, Mismatch = r.SampleRatio.Mismatch, NotCheckedReason = r.SampleRatio.NotChecked ?? "" },
            Comparisons = { r.Comparisons.Select(ToProto) },
            UsersPerArmNeeded = r.UsersPerArmNeeded ?? 0,
            Recommendation = r.Recommendation switch
            {
                Domain.Recommendation.KeepRunning => Recommendation.KeepRunning,
                Domain.Recommendation.Winner => Recommendation.Winner,
                Domain.Recommendation.NoDifference => Recommendation.NoDifference,
                Domain.Recommendation.GuardrailHarmed => Recommendation.GuardrailHarmed,
                _ => Recommendation.Invalid,
            },
            WinningArmId = r.WinningArmId ?? "",
            Reason = r.Reason,
            AnalyzedSince = report.AnalyzedSince is { } since ? Timestamp.FromDateTimeOffset(since) : null,
            Breakdowns =
            {
                r.Breakdowns.Select(b => new SegmentBreakdown
                {
                    SegmentId = b.SegmentId,
                    ExposedUsers = b.Exposed,
                    Comparisons = { b.Comparisons.Select(ToProto) },
                    Arms = { b.Arms.Select(a => new SegmentArmValue { ArmId = a.ArmId, ExposedUsers = a.Exposed, Primary = ToProto(a.Primary) }) },
                }),
            },
        };
    }

    private static ArmMetricValue ToProto(Domain.ArmMetricValue m) => new() { Metric = m.Metric, Users = m.Users, Mean = m.Mean, Variance = m.Variance, Total = m.Total };

    private static MetricComparison ToProto(Domain.MetricComparison c) => new()
    {
        Metric = c.Metric,
        ArmId = c.ArmId,
        Guardrail = c.Guardrail,
        Test = c.Test,
        Difference = c.Comparison.Difference,
        DifferenceCi = new Interval { Lower = c.Comparison.DifferenceLower, Upper = c.Comparison.DifferenceUpper },
        Lift = c.Comparison.Lift,
        LiftCi = new Interval { Lower = c.Comparison.LiftLower, Upper = c.Comparison.LiftUpper },
        SequentialDifference = new Interval { Lower = c.SequentialDifference.Lower, Upper = c.SequentialDifference.Upper },
        SequentialLift = new Interval { Lower = c.SequentialLift.Lower, Upper = c.SequentialLift.Upper },
        Statistic = c.Comparison.Statistic,
        PValue = c.Comparison.PValue,
        AdjustedPValue = c.AdjustedPValue,
        Cuped = c.Cuped,
        VarianceReduction = c.VarianceReduction,
        Verdict = c.Verdict switch
        {
            Domain.Verdict.Better => Verdict.Better,
            Domain.Verdict.Worse => Verdict.Worse,
            _ => Verdict.Inconclusive,
        },
    };
}
