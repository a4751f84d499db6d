using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rules;

namespace Segmentation.Benchmarks.Decisions;

/// <summary>
/// A whole decision for one realistic shopper over the 50-segment catalog.
/// </summary>
/// <remarks>
/// <see cref="ResolveOnMiss"/> is the decision without rendering (rules and resolution to the winner),
/// <see cref="RulesOnMiss"/> its rules part, <see cref="DecideOnMiss"/> the whole pure decision with
/// the winner's five variants rendered.
/// </remarks>
[MemoryDiagnoser]
public class DecisionBenchmark
{
    private BenchWorld _world = null!;
    private CatalogSnapshot _catalog = null!;
    private Profile _profile = null!;
    private RfmModel _rfm = null!;
    private DecisionRequest _request = null!;
    private bool[] _matched = null!;
    private CatalogSnapshot _withExperiment = null!;

    private DecisionEngine _unmeasured = null!;

    [GlobalSetup]
    public void Setup()
    {
        _world = new BenchWorld();
        _catalog = _world.Catalogs.Current;
        _profile = _world.Shopper;
        _rfm = _world.Rfm.Current;
        _matched = new bool[_catalog.Segments.Count];
        _shipped = new BenchWorld(catalog: new EmbeddedCatalogSource()); // the shopper's profile laid out for that catalog, as the server keeps it
        _shippedProfile = _shipped.Shopper;
        _shippedRfm = _shipped.Rfm.Current;
        _shippedMatched = new bool[_shipped.Catalogs.Current.Segments.Count];
        _request = new DecisionRequest(BenchWorld.ShopperId, "", _world.Request, _world.Now);
        _world.Engine.Decide(_request);
        _world.Engine.Decide(_request); // asked twice: cached for DecideOnHit

        // The same engine without measurement (no ledger: a decision id, no remembered decision): what remembering
        // decisions for attribution and KPIs adds to a cache hit.
        _unmeasured = new DecisionEngine(_world.Catalogs, _world.Store, _world.Rfm, _world.Cache, _world.Decider, _world.Clock, _world.Get<Segmentation.Core.Privacy.ConsentPolicy>(), measurement: null);

        // The same catalog with an experiment on the shopper's winning segment whose arms override nothing: what
        // randomising after arbitration adds to a decision, rendering the same variants.
        var winner = DecideOnMiss().Winner.Id;
        var experiment = $$"""
            experiments:
              - id: bench_test
                segment: {{winner}}
                arms:
                  - { id: control, weight: 1 }
                  - { id: treatment, weight: 1 }
            """;
        var files = _catalog.Files.Where(f => f.Name != "experiments.yaml").ToList(); // the default catalog's own example experiment could overlap
        _withExperiment = CatalogLoader.Load(new InMemoryCatalogSource([.. files, new CatalogFile("experiments.yaml", experiment)], "bench"));
        if (DecideOnMissInExperiment().Arm is null)
        {
            throw new InvalidOperationException("the shopper should be in the benchmark's experiment");
        }

        // The same catalog with email contact policies (caps by engagement, suppression, quiet hours).
        _withPolicies = CatalogLoader.Load(new InMemoryCatalogSource([.. _catalog.Files, new CatalogFile("policies.yaml", BenchWorld.EmailPolicies)], "bench"));
        _reloaded = CatalogLoader.Load(new InMemoryCatalogSource([.. _catalog.Files], "bench")); // loaded as the one above, without the policies
        _email = _world.Request with { Channel = "email" };
        _policyWinner = DecideOnMissWithContactPolicy().Winner;
        if (DecideOnMissWithContactPolicy().Contact is null || DecideOnMissOnEmail().Contact is not null)
        {
            throw new InvalidOperationException("only the catalog with policies should give a contact verdict");
        }

        for (var v = 0; v < 3_000; v++)
        {
            _world.Track("bench-long-history", EventTypes.PageView, _world.Now.AddMinutes(-(1 + (260 * v))));
        }

        _longHistory = _world.Store.Get("bench-long-history")!;
        _withOutcomeRules = CatalogLoader.Load(new InMemoryCatalogSource([.. _catalog.Files, new CatalogFile("policies.yaml", OutcomeRules)], "bench"));
        if (ContactPolicyVerdictLongHistory() is null)
        {
            throw new InvalidOperationException("the long-history user should get a contact verdict");
        }
    }

    private CatalogSnapshot _withPolicies = null!;
    private CatalogSnapshot _reloaded = null!;
    private Core.Requests.RequestContext _email = null!;

    /// <summary>As <see cref="DecideOnMiss"/> on the email channel, in a catalog without contact policies (the baseline of the next).</summary>
    [Benchmark]
    public Decision DecideOnMissOnEmail() =>
        _world.Decider.Decide(_catalog, BenchWorld.ShopperId, _profile, _email, _world.Now, _rfm, explain: false);

    /// <summary>
    /// <see cref="DecideOnMissOnEmail"/> on a catalog compiled exactly as the policies' one is (a second load of the same
    /// files, not the published start-up catalog): the like-for-like baseline of the next.
    /// </summary>
    [Benchmark]
    public Decision DecideOnMissOnEmailReloaded() =>
        _world.Decider.Decide(_reloaded, BenchWorld.ShopperId, _profile, _email, _world.Now, _rfm, explain: false);

    /// <summary>The same with email contact policies evaluated (target: at most 200 ns more).</summary>
    [Benchmark]
    public Decision DecideOnMissWithContactPolicy() =>
        _world.Decider.Decide(_withPolicies, BenchWorld.ShopperId, _profile, _email, _world.Now, _rfm, explain: false);

    /// <summary>
    /// The policy verdict alone, as the Decider computes it for the shopper's winner (the same inputs, a fresh rule
    /// context): what the two methods above differ by, measured without the rest of the decision around it.
    /// </summary>
    [Benchmark]
    public ContactDecision? ContactPolicyVerdictAlone()
    {
        var context = new EvalContext(_profile, _email, _world.Now.UtcTicks, _rfm, _withPolicies.Features);
        return ContactEvaluation.Evaluate(_withPolicies.ContactPolicies, "email", _policyWinner, _profile, context, _email);
    }

    /// <summary>
    /// The policy verdict for a user with a long history (3,000 page views over about 18 months) and no negative outcome,
    /// under rules that read the history event by event (dismissals of the winning segment's decisions, ignored sends):
    /// they read only the events that can still count, not the whole history.
    /// </summary>
    [Benchmark]
    public ContactDecision? ContactPolicyVerdictLongHistory()
    {
        var context = new EvalContext(_longHistory, _email, _world.Now.UtcTicks, _rfm, _withOutcomeRules.Features);
        return ContactEvaluation.Evaluate(_withOutcomeRules.ContactPolicies, "email", _policyWinner, _longHistory, context, _email);
    }

    private Profile _longHistory = null!;
    private CatalogSnapshot _withOutcomeRules = null!;

    private const string OutcomeRules = """
        contact_policies:
          time_zone: Europe/London
          channels:
            email:
              caps: { high: 5/7d, active: 2/7d, declining: 1/7d, inactive: 0/7d, default: 2/7d }
              quiet_hours: "21:00-08:00"
          suppression:
            - { after: 2, outcomes: [dismiss], within: 7d, pause: 30d, scope: segment }
            - { after: 3, outcomes: [email_ignored], within: 30d, pause: 14d }
        """;

    /// <summary>A fresh rule context alone: the part of <see cref="ContactPolicyVerdictAlone"/> a decision has anyway.</summary>
    [Benchmark]
    public EvalContext RuleContextAlone() => new(_profile, _email, _world.Now.UtcTicks, _rfm, _withPolicies.Features);

    private Segment _policyWinner = null!;

    [GlobalCleanup]
    public void Cleanup()
    {
        _world.Dispose();
        _shipped.Dispose();
    }

    /// <summary>Cache miss: the pure decision (rules, resolution, five rendered variants).</summary>
    [Benchmark]
    public Decision DecideOnMiss() =>
        _world.Decider.Decide(_catalog, BenchWorld.ShopperId, _profile, _world.Request, _world.Now, _rfm, explain: false);

    /// <summary>As <see cref="DecideOnMiss"/>, the winner running an experiment: its arm assigned (target: at most 50 ns more).</summary>
    [Benchmark]
    public Decision DecideOnMissInExperiment() =>
        _world.Decider.Decide(_withExperiment, BenchWorld.ShopperId, _profile, _world.Request, _world.Now, _rfm, explain: false);

    /// <summary>Cache miss, the rules part as the Decider runs it: a fresh context and match array, the compiled catalog.</summary>
    [Benchmark]
    public bool[] RulesOnMiss()
    {
        var context = new EvalContext(_profile, _world.Request, _world.Now.UtcTicks, _rfm, _catalog.Features);
        var matched = new bool[_catalog.Segments.Count];
        _catalog.EvaluateAll(context, matched);
        return matched;
    }

    /// <summary>
    /// Cache miss without rendering: rules, priority, overrides, exclusions and fallback resolved to the
    /// winner with its validity bound (<see cref="Decider.Evaluate"/>, also used for memberships on write).
    /// </summary>
    [Benchmark]
    public Membership ResolveOnMiss() => Decider.Evaluate(_catalog, _profile, _world.Request, _world.Now, _rfm);

    /// <summary>
    /// The winner alone into a reused match array (<see cref="Decider.EvaluateWinner"/>): the same work as
    /// <see cref="ResolveOnMiss"/> without its result objects; the default-catalog counterpart of
    /// <see cref="TraitHeavyBenchmark"/>.
    /// </summary>
    [Benchmark]
    public int ResolveWinnerOnMiss() => Decider.EvaluateWinner(_catalog, _profile, _world.Request, _world.Now, _rfm, _matched).Winner.Rank;

    /// <summary>
    /// As <see cref="ResolveWinnerOnMiss"/> (the same shopper), on the catalog the server ships and serves by default (the
    /// embedded one, 25 segments) rather than the benchmarks' synthetic 50-segment catalog.
    /// </summary>
    [Benchmark]
    public int ResolveWinnerOnMissShippedCatalog() => Decider.EvaluateWinner(_shipped.Catalogs.Current, _shippedProfile, _shipped.Request, _shipped.Now, _shippedRfm, _shippedMatched).Winner.Rank;

    private BenchWorld _shipped = null!;
    private Profile _shippedProfile = null!;
    private RfmModel _shippedRfm = null!;
    private bool[] _shippedMatched = null!;

    /// <summary>Cache hit through the engine: validation, profile read, cache key, lookup, new decision id.</summary>
    [Benchmark]
    public Decision DecideOnHit() => _world.Engine.Decide(_request);

    /// <summary>The same cache hit through an engine without measurement: the baseline of what remembering decisions costs.</summary>
    [Benchmark]
    public Decision DecideOnHitWithoutMeasurement() => _unmeasured.Decide(_request);
}
