using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Rendering;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Composition;

/// <summary>What the domain reads from configuration; the host fills it from its own settings.</summary>
public sealed class SegmentationCoreOptions
{
    /// <summary>The decision cache's bounds.</summary>
    public DecisionCacheOptions DecisionCache { get; set; } = new();

    /// <summary>The bounds of one template render.</summary>
    public RenderLimits Rendering { get; set; } = new();

    /// <summary>Attribution of outcomes and the decisions remembered for it.</summary>
    public Measurement.MeasurementOptions Measurement { get; set; } = new();

    /// <summary>What the change stream keeps for consumers to resume from.</summary>
    public Membership.ChangeFeedOptions ChangeStream { get; set; } = new();

    /// <summary>How segments' ordered member listings are kept.</summary>
    public Membership.ListingOptions MemberListings { get; set; } = new();

    /// <summary>Most events one profile holds.</summary>
    public int EventLimit { get; set; } = InputLimits.MaxEventsPerProfile;
}
