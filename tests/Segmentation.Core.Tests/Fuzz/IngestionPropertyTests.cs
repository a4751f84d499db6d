using CsCheck;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Fuzz;

/// <summary>
/// Random sequences of event, traits and identify writes — many of them malformed — against one user
/// and one anonymous id. Every write is accepted, a duplicate, or rejected with field violations, and
/// after every write both profiles satisfy their invariants.
/// </summary>
public sealed class IngestionPropertyTests : IDisposable
{
    private readonly TestWorld _world = new(now: Fuzz.Now);
    private int _case;

    private abstract record Op;

    private sealed record TrackOp(BehaviourEvent Event, bool Mutated) : Op;

    private sealed record TrackManyOp((BehaviourEvent Event, bool Mutated)[] Events) : Op;

    private sealed record TraitsOp(Dictionary<string, object?> Traits, AttributeLayer Layer, DateTimeOffset? At, string Source, bool Anonymous) : Op;

    private sealed record IdentifyOp(string? Anonymous, string? User) : Op;

    private static readonly Gen<Op> Ops = Gen.Frequency(
        (10, Fuzz.Event.Select(e => (Op)new TrackOp(e.Event, e.Mutated))),
        (2, Fuzz.Event.Array[0, 6].Select(e => (Op)new TrackManyOp(e))),
        (4, Gen.Select(Fuzz.Traits, Gen.Bool).Select((t, anon) => (Op)new TraitsOp(t.Traits, t.Layer, t.At, t.Source, anon))),
        (1, Gen.Select(Gen.Frequency((4, Gen.Const((string?)null)), (1, Fuzz.WeirdString.Select(s => (string?)s))), Gen.Frequency((4, Gen.Const((string?)null)), (1, Fuzz.WeirdString.Select(s => (string?)s))))
            .Select((a, u) => (Op)new IdentifyOp(a, u))));

    [Fact]
    public void Every_write_is_accepted_duplicate_or_rejected_and_profiles_stay_consistent()
    {
        Ops.Array[1, 30].Sample(Run, iter: Fuzz.Iter(300), threads: 1, print: Print);
    }

    private static string Print(Op[] ops) => string.Join(Environment.NewLine, ops.Select(o => o switch
    {
        TrackOp t => $"Track {Describe(t.Event)} mutated={t.Mutated}",
        TrackManyOp m => "TrackMany [" + string.Join("; ", m.Events.Select(e => Describe(e.Event))) + "]",
        IdentifyOp i => $"Identify anonymous={Cut(i.Anonymous)} user={Cut(i.User)}",
        TraitsOp t => $"SetTraits {(t.Anonymous ? "A" : "U")} layer={t.Layer} at={t.At:O} source={Cut(t.Source)} " + string.Join(", ", t.Traits.Select(kv => $"{Cut(kv.Key)}={(kv.Value is string s ? Cut(s) : kv.Value is string[] l ? "[" + string.Join(",", l.Select(Cut)) + "]" : kv.Value)}")),
        _ => o.ToString(),
    }));

    private static string Describe(BehaviourEvent e) =>
        $"{{id={Cut(e.EventId)} type={Cut(e.Type)} user={Cut(e.UserId)} anon={Cut(e.AnonymousId)} at={e.Timestamp:O} value={e.Value:R} ctx={e.Context} order={Cut(e.OrderId)} " +
        $"lines=[{string.Join(", ", e.Lines.Select(l => $"{Cut(l.ProductId)} x{l.Quantity} @{l.UnitPrice:R}"))}] props={e.Properties.Count}}}";

    // Short, with control and non-ASCII characters escaped so a failing case can be read and retyped.
    private static string Cut(string? s) =>
        s is null ? "null" : "\"" + string.Concat(s.Take(40).Select(c => c is >= ' ' and <= '~' ? c.ToString() : $"\\u{(int)c:x4}")) + (s.Length > 40 ? $"…({s.Length})" : "") + "\"";

    private void Run(Op[] ops)
    {
        // Fresh ids per run (and per shrink attempt): profiles from earlier runs never interfere.
        var run = Interlocked.Increment(ref _case);
        var user = $"fz{run}-u";
        var anon = $"fz{run}-a";
        var model = new Model(user, anon);

        foreach (var op in ops)
        {
            var before = (User: _world.Store.Get(user), Anon: _world.Store.Get(anon));
            var changed = op switch
            {
                TrackOp t => Track(Bind(t.Event, user, anon), t.Mutated, model),
                TrackManyOp m => TrackMany(m.Events.Select(e => (Bind(e.Event, user, anon), e.Mutated)).ToArray(), model),
                TraitsOp t => SetTraits(t, t.Anonymous ? anon : user),
                IdentifyOp i => Identify(i.Anonymous ?? anon, i.User ?? user, anon, user, model),
                _ => throw new InvalidOperationException(),
            };

            var after = (User: _world.Store.Get(user), Anon: _world.Store.Get(anon));
            if (!changed)
            {
                Assert.Same(before.User, after.User);
                Assert.Same(before.Anon, after.Anon);
            }

            CheckTransition(before.User, after.User);
            CheckTransition(before.Anon, after.Anon);
            CheckProfile(after.User, model.IdsOf(user));
            CheckProfile(after.Anon, model.IdsOf(anon));
        }
    }

    // The generators use "U" and "A" for the case's user and anonymous id; other ids are left as generated.
    private static BehaviourEvent Bind(BehaviourEvent e, string user, string anon) => e with
    {
        UserId = e.UserId == "U" ? user : e.UserId,
        AnonymousId = e.AnonymousId == "A" ? anon : e.AnonymousId,
    };

    private bool Track(BehaviourEvent e, bool mutated, Model model)
    {
        TrackResult result;
        try
        {
            result = _world.Ingestion.Track(e);
        }
        catch (ValidationException ex)
        {
            Assert.True(mutated, $"a well-formed event was rejected: {ex.Message}");
            CheckViolations(ex.Violations, "event.");
            return false;
        }

        model.Record(e, result.Duplicate);
        return !result.Duplicate;
    }

    private bool TrackMany((BehaviourEvent Event, bool Mutated)[] events, Model model)
    {
        if (events.Length == 0)
        {
            // A batch of no events is refused as a whole (1 to 1,000), changing nothing.
            Assert.Equal("events", Assert.Single(Assert.Throws<ValidationException>(() => _world.Ingestion.TrackMany([])).Violations).Field);
            return false;
        }

        var results = _world.Ingestion.TrackMany(events.Select(e => e.Event).ToList()).ToList();
        Assert.Equal(events.Length, results.Count);
        var changed = false;
        for (var i = 0; i < results.Count; i++)
        {
            var r = results[i];
            Assert.Equal(i, r.Index);
            if (r.Status == EventStatus.Rejected)
            {
                Assert.True(events[i].Mutated, "a well-formed event was rejected: " + string.Join("; ", r.Violations));
                Assert.Null(r.Profile);
                CheckViolations(r.Violations, $"events[{i}].");
            }
            else
            {
                Assert.Empty(r.Violations);
                model.Record(events[i].Event, r.Status == EventStatus.Duplicate);
                changed |= r.Status == EventStatus.Accepted;
            }
        }

        return changed;
    }

    private bool SetTraits(TraitsOp op, string key)
    {
        var before = _world.Store.Get(key);
        SetTraitsResult result;
        try
        {
            result = _world.Ingestion.SetTraits(key, op.Traits, op.Source, op.Layer, op.At);
        }
        catch (ValidationException ex)
        {
            CheckViolations(ex.Violations, "");
            return false;
        }

        Assert.Equal(op.Traits.Keys.Order(StringComparer.Ordinal), result.Applied.Concat(result.Ignored).Order(StringComparer.Ordinal));
        foreach (var name in result.Ignored.Where(n => op.Layer > AttributeLayer.Derived || !IsDerived(n))) // in the derived layer the service derives those: ignored
        {
            // Ignored only because a more reliable layer (or a newer write of the same layer) holds it. A write dated a
            // little ahead is taken as now. An attribute
            // observed from events is as new as its latest observation: the stored one keeps the time of the first
            // observation of its value (seed 0f7hQ17V7A61 found the oracle reading that one, where a later event had
            // observed the same country again).
            Assert.NotNull(before);
            var existing = before.AttributesAsObserved().Single(a => a.Name == name);
            Assert.True(existing.Layer > op.Layer || (existing.Layer == op.Layer && existing.UpdatedAt > (op.At is { } at && at < Fuzz.Now ? at : Fuzz.Now)), $"{name} was ignored over {existing}");
        }

        foreach (var name in result.Applied)
        {
            var stored = result.Profile.Attributes[name];
            if (op.Layer > AttributeLayer.Derived || !IsDerived(name))
            {
                Assert.Equal(op.Layer, stored.Layer);
            }
        }

        return result.Applied.Count > 0;
    }

    private static bool IsDerived(string name) => Core.Scoring.DerivedScores.Traits.Any(t => t.Key == name);

    private bool Identify(string anonymousId, string userId, string anon, string user, Model model)
    {
        try
        {
            _world.Ingestion.Identify(anonymousId, userId);
        }
        catch (ValidationException ex)
        {
            CheckViolations(ex.Violations, "");
            return false;
        }
        catch (PreconditionFailedException)
        {
            return false; // the anonymous id is linked to another user already: nothing merged
        }

        if (anonymousId == anon && userId == user)
        {
            model.Merge();
        }
        else if (anonymousId == anon || anonymousId == user || userId == anon || userId == user)
        {
            model.Detach(); // merged with an unrelated profile: only the structural invariants are checked
        }

        return true;
    }

    private static void CheckViolations(IReadOnlyList<FieldViolation> violations, string prefix)
    {
        Assert.NotEmpty(violations);
        foreach (var v in violations)
        {
            Assert.StartsWith(prefix, v.Field, StringComparison.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(v.Description));
        }
    }

    // A lower layer never replaces a higher one, attributes are never dropped (but a trait the service derived, once the
    // profile no longer derives it: a merge keeps one of two events sharing an id, and the intent that event gave can go
    // with it), and the version strictly increases whenever the profile changes.
    private void CheckTransition(Profile? before, Profile? after)
    {
        if (before is null)
        {
            return;
        }

        Assert.NotNull(after);
        if (ReferenceEquals(before, after))
        {
            return;
        }

        Assert.True(after.Version > before.Version, $"version went from {before.Version} to {after.Version} on a change");
        foreach (var (name, old) in before.Attributes)
        {
            if (!after.Attributes.TryGetValue(name, out var now))
            {
                Assert.True(old is { Layer: AttributeLayer.Derived, Source: ProfileWriter.DerivedSource }, $"attribute {name} disappeared");
                var derived = DerivedScores.Compute(name, new EvalContext(after, RequestContext.Empty, Fuzz.Now.UtcTicks, _world.Rfm.Current), _world.Catalogs.Current.Scoring);
                Assert.True(derived is null, $"derived attribute {name} disappeared although the profile derives {derived}");
                continue;
            }

            Assert.True(now.Layer >= old.Layer, $"{name}: {old.Layer} value replaced by a {now.Layer} one");
        }
    }

    private static void CheckProfile(Profile? p, IReadOnlySet<string>? expectedIds)
    {
        if (p is null)
        {
            Assert.True(expectedIds is null or { Count: 0 }, "events were accepted but there is no profile");
            return;
        }

        var events = p.Events;
        for (var i = 1; i < events.Count; i++)
        {
            Assert.True(events[i - 1].Ticks <= events[i].Ticks, $"events out of time order at {i}");
        }

        var ids = events.Select(e => e.EventId).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(events.Count, ids.Count);
        Assert.True(ids.SetEquals(p.EventIds), "EventIds differs from the events' ids");
        if (expectedIds is not null)
        {
            Assert.True(ids.SetEquals(expectedIds), $"expected events [{string.Join(",", expectedIds.Order())}], stored [{string.Join(",", ids.Order())}]");
        }

        foreach (var e in events)
        {
            Assert.True(double.IsFinite(e.Value) && e.Value >= 0, $"event {e.EventId} stored value {e.Value}");
            Assert.True(e.Quantity >= 1, $"event {e.EventId} stored quantity {e.Quantity}");
        }

        foreach (var (name, attribute) in p.Attributes)
        {
            Assert.True(Enum.IsDefined(attribute.Layer), $"{name} stored with undefined layer {(int)attribute.Layer}");
        }

        CheckAggregates(p);
        Assert.True(p.CurrentSegment is not null || (p.Events.Count == 0 && p.Attributes.Count == 0), "a profile with data has no segment");
    }

    // Recomputes every aggregate from the stored events, independently of ProfileAggregates.Fold.
    private static void CheckAggregates(Profile p)
    {
        var a = p.Aggregates;
        var events = p.Events.ToList();
        Assert.Equal(events.Count, a.TotalEvents);
        Assert.Equal(events.Count == 0 ? long.MinValue : events.Min(e => e.Ticks), a.FirstSeenTicks);
        Assert.Equal(events.Count == 0 ? long.MinValue : events.Max(e => e.Ticks), a.LastSeenTicks);
        Assert.Equal(events.Select(e => e.SessionId).Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).Count(), p.Sessions);

        var purchases = events.Where(e => e.Type == EventTypes.Purchase).ToList();
        Assert.Equal(purchases.Count, a.Orders);
        Assert.Equal(purchases.Count == 0 ? long.MinValue : purchases.Min(e => e.Ticks), a.FirstPurchaseTicks);
        Assert.Equal(purchases.Count == 0 ? long.MinValue : purchases.Max(e => e.Ticks), a.LastPurchaseTicks);

        double revenue = 0; // a sum of money: rounded to 6 decimals after each addition (see ProfileAggregates.Money)
        var cart = 0;
        var cartAt = long.MinValue;
        foreach (var e in events)
        {
            switch (e.Type)
            {
                case EventTypes.Purchase:
                    revenue = Math.Round(revenue + e.Value, 6);
                    cart = 0;
                    break;
                case EventTypes.Refund:
                    revenue = Math.Round(revenue - e.Value, 6);
                    break;
                case EventTypes.AddToCart:
                    cart = (int)Math.Min(int.MaxValue, (long)cart + e.Quantity);
                    cartAt = e.Ticks;
                    break;
                case EventTypes.RemoveFromCart:
                    cart = Math.Max(0, cart - e.Quantity);
                    cartAt = e.Ticks;
                    break;
            }
        }

        Assert.True(double.IsFinite(a.Revenue), $"revenue {a.Revenue}");
        Assert.Equal(revenue, a.Revenue);
        Assert.True(a.CartItems >= 0, $"cart items {a.CartItems}");
        Assert.Equal(cart, a.CartItems);
        Assert.Equal(cartAt, a.CartUpdatedTicks);

        Assert.Equal(
            events.Where(e => e.Type == EventTypes.EmailSend && e.CampaignId is not null).Select(e => new EmailSend(e.Ticks, e.CampaignId!)),
            a.EmailSends);
        Assert.True(a.OpenedCampaigns.SetEquals(events.Where(e => e.Type is EventTypes.EmailOpen or EventTypes.EmailClick && e.CampaignId is not null).Select(e => e.CampaignId!)));
        Assert.True(a.ClickedCampaigns.SetEquals(events.Where(e => e.Type is EventTypes.EmailClick && e.CampaignId is not null).Select(e => e.CampaignId!)));

        var types = events.GroupBy(e => e.Type).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        Assert.Equal(types.Keys.Order(StringComparer.Ordinal), a.Series.Keys.Order(StringComparer.Ordinal));
        foreach (var (type, list) in types)
        {
            var series = p.Series(type);
            Assert.Equal(list.Select(e => e.Ticks), series.Ticks);
            var sum = 0d;
            foreach (var e in list)
            {
                sum += e.Value;
            }

            Assert.Equal(sum, series.SumInWindow(long.MaxValue, long.MaxValue, out _), 6);
        }

        Assert.Equal(events.Select(e => e.Ticks), p.AllEvents.Ticks);
    }

    // What ingestion should have recorded for the case's two profiles: the ids of accepted events.
    private sealed class Model(string user, string anon)
    {
        private readonly HashSet<string> _user = new(StringComparer.Ordinal);
        private HashSet<string> _anon = new(StringComparer.Ordinal);
        private bool _merged;
        private bool _detached;

        public HashSet<string>? IdsOf(string key) => _detached ? null : key == user ? _user : _anon;

        public void Record(BehaviourEvent e, bool duplicate)
        {
            var key = e.ProfileKey;
            if (_detached || (key != user && key != anon))
            {
                return;
            }

            var ids = key == user ? _user : _anon;
            Assert.Equal(ids.Contains(e.EventId), duplicate);
            ids.Add(e.EventId);
        }

        public void Merge()
        {
            if (!_merged)
            {
                _user.UnionWith(_anon);
                _anon = _user;
                _merged = true;
            }
        }

        public void Detach() => _detached = true;
    }

    public void Dispose() => _world.Dispose();
}
