using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Events;

namespace Segmentation.Core.Tests.Support;

/// <summary>
/// <see cref="TrackAndDecide.DecideAsync"/> waited for in place, for tests whose world is in memory (it completes at once
/// there) or that check what a thrown exception is: the exception the call throws, not an AggregateException.
/// </summary>
public static class TrackAndDecideExtensions
{
    public static TrackedDecision Decide(this TrackAndDecide trackAndDecide, DecisionRequest request, IReadOnlyList<BehaviourEvent> events, CancellationToken cancellation = default) =>
        trackAndDecide.DecideAsync(request, events, cancellation).GetAwaiter().GetResult();
}
