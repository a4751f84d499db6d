using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;

namespace Segmentation.Core.Rules;

/// <summary>
/// Everything a compiled rule may read: the profile snapshot (null for unknown users), the request
/// context, the evaluation time and the population model. Rules also narrow <see cref="ValidUntilTicks"/>:
/// the earliest instant at which any result seen so far could change by the passage of time alone.
/// </summary>
public sealed class EvalContext
{
    /// <summary>Creates a context.</summary>
    public EvalContext(Profile? profile, RequestContext request, long nowTicks, RfmModel rfm)
    {
        Profile = profile;
        Request = request;
        NowTicks = nowTicks;
        Rfm = rfm;
    }

    /// <summary>The profile, or null for an unknown user.</summary>
    public Profile? Profile { get; }

    /// <summary>The request context.</summary>
    public RequestContext Request { get; }

    /// <summary>Evaluation time in UTC ticks.</summary>
    public long NowTicks { get; }

    /// <summary>The RFM model used for <c>rfm.*</c> fields.</summary>
    public RfmModel Rfm { get; }

    /// <summary>Earliest instant (UTC ticks) at which a result could change with time alone.</summary>
    public long ValidUntilTicks { get; private set; } = long.MaxValue;

    /// <summary>Records that a result read holds only until <paramref name="ticks"/>.</summary>
    public void Until(long ticks)
    {
        if (ticks > NowTicks && ticks < ValidUntilTicks)
        {
            ValidUntilTicks = ticks;
        }
    }
}
