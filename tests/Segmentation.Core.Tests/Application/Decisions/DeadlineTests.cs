using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Decisions;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Decisions;

public class DeadlineTests
{
    private static TestWorld World() => new(TestCatalogs.Source(
        TestCatalogs.Segment("mobile", "contextual", "{ field: context.device, eq: mobile }")));

    [Fact]
    public void Decide_does_no_work_for_a_call_already_abandoned()
    {
        using var w = World();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        Assert.Throws<OperationCanceledException>(() => w.Engine.Decide(new DecisionRequest("u1", "", RequestContext.Empty), cancelled.Token));
        Assert.Throws<OperationCanceledException>(() => new Decider(w.Renderer).Decide(w.Catalogs.Current, "u1", null, RequestContext.Empty, DateTimeOffset.UtcNow, w.Rfm.Current, explain: false, cancellation: cancelled.Token));
    }

    [Fact]
    public void DecideBatch_stops_between_users_once_cancelled()
    {
        using var w = World();
        using var cancellation = new CancellationTokenSource();
        var users = Enumerable.Range(0, 1000).Select(i => $"u{i}").ToList();
        var decided = 0;

        Assert.Throws<OperationCanceledException>(() =>
        {
            foreach (var _ in w.Engine.DecideBatch(users, RequestContext.Empty, null, explain: false, cancellation: cancellation.Token))
            {
                if (++decided == 10)
                {
                    cancellation.Cancel();
                }
            }
        });
        Assert.Equal(10, decided);
    }
}
