using CsCheck;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Fuzz;

/// <summary>
/// Random profiles (built through ingestion) and random request contexts and evaluation times: Decide
/// always returns a decision whose segment is in the catalog (the fallback at worst), never throws
/// anything but a validation error for an oversized context, and is deterministic.
/// </summary>
public sealed class DecidePropertyTests : IDisposable
{
    private readonly TestWorld _world = new(now: Fuzz.Now);
    private int _case;

    private static readonly Gen<DateTimeOffset?> At = Gen.Frequency(
        (4, Gen.Const((DateTimeOffset?)null)),
        (3, Fuzz.WeirdTime.Select(t => (DateTimeOffset?)t)),
        (1, Gen.OneOf<DateTimeOffset?>(DateTimeOffset.MinValue.AddDays(1), DateTimeOffset.MaxValue.AddDays(-1), new DateTimeOffset(1, 1, 1, 0, 0, 1, TimeSpan.Zero))));

    private static readonly Gen<(BehaviourEvent[] Events, (Dictionary<string, object?> Traits, AttributeLayer Layer, DateTimeOffset? At, string Source)[] Traits)> History =
        Gen.Select(Fuzz.Event.Select(e => e.Event).Array[0, 25], Fuzz.Traits.Array[0, 3]);

    [Fact]
    public void Decide_returns_a_catalog_segment_and_is_deterministic()
    {
        Gen.Select(History, Fuzz.Context, At, Gen.Bool)
            .Sample((history, context, at, explain) => Decides(history.Events, history.Traits, context, at, explain), iter: Fuzz.Iter(200), threads: 1);
    }

    private void Decides(BehaviourEvent[] events, (Dictionary<string, object?> Traits, AttributeLayer Layer, DateTimeOffset? At, string Source)[] traits, RequestContext context, DateTimeOffset? at, bool explain)
    {
        var user = $"dz{Interlocked.Increment(ref _case)}";
        foreach (var e in events)
        {
            _world.Ingestion.TrackOne(0, e with { UserId = user, AnonymousId = "" });
        }

        foreach (var t in traits)
        {
            try
            {
                _world.Ingestion.SetTraits(user, t.Traits, t.Source, t.Layer, t.At);
            }
            catch (ValidationException)
            {
                // random traits are often invalid; that is the ingestion property's business
            }
        }

        var catalog = _world.Catalogs.Current;
        var profile = _world.Store.Get(user);
        Decision first;
        try
        {
            first = _world.Engine.Decide(new DecisionRequest(user, "", context, at, explain));
        }
        catch (ValidationException ex)
        {
            Assert.False(context.IsWithinLimits() && !(at < DecisionRequest.MinEvaluationTime), "rejected a valid request: " + ex.Message);
            Assert.All(ex.Violations, v => Assert.True(v.Field.StartsWith("context.", StringComparison.Ordinal) || v.Field == "timestamp", v.Field));
            return;
        }

        Assert.True(context.IsWithinLimits(), "an oversized context was accepted");
        Assert.False(at < DecisionRequest.MinEvaluationTime, "an evaluation time before 1970 was accepted");
        Assert.Same(catalog.ById[first.Winner.Id], first.Winner);
        Assert.Equal(first.FallbackUsed, ReferenceEquals(first.Winner, catalog.Fallback) && first.Matched.All(m => m.Status != MatchStatus.Winner));
        Assert.Equal(Enum.GetValues<VariantKind>().Length, first.Variants.Count);
        Assert.All(first.Matched, m => Assert.Same(catalog.ById[m.Segment.Id], m.Segment));
        Assert.Equal(explain, first.Explanation is not null);

        // Same inputs, same decision: through the engine again (possibly from the cache) and the pure decider.
        var second = _world.Engine.Decide(new DecisionRequest(user, "", context, first.EvaluatedAt, explain));
        var pure = new Decider(_world.Renderer).Decide(catalog, user, profile, context, first.EvaluatedAt, _world.Rfm.Current, explain);
        AssertSame(first, second);
        AssertSame(first, pure);
    }

    private static void AssertSame(Decision expected, Decision actual)
    {
        Assert.Equal(expected.Winner.Id, actual.Winner.Id);
        Assert.Equal(expected.FallbackUsed, actual.FallbackUsed);
        Assert.Equal(expected.Matched.Select(m => (m.Segment.Id, m.Status, m.SuppressedBy)), actual.Matched.Select(m => (m.Segment.Id, m.Status, m.SuppressedBy)));
        Assert.Equal(expected.Variants, actual.Variants);
    }

    public void Dispose() => _world.Dispose();
}
