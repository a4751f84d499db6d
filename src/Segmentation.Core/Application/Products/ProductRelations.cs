using System.Collections.Concurrent;
using System.Collections.Frozen;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;

namespace Segmentation.Core.Application.Products;

/// <summary>
/// Related products from the service's own data, updated as events arrive: two products are related when they are
/// bought in one order (weight 2), bought one after the other by the same user (1: "repeat purchase → upsell"), or
/// viewed within an hour of each other by the same user (1: "product viewed → similar products"). A user's related
/// products are those with the largest counts summed over their seeds (cart, recent views, last purchase): "customers
/// who bought this also bought", weighted by how often. Counts are kept per product for at most
/// <see cref="MaxNeighbours"/> others (the least counted is replaced, as in the space-saving algorithm) and for at
/// most <see cref="MaxProducts"/> products, product ids interned (at most four times as many; past them, a product joins
/// no list it is not in already) and popularity ranked for as many, so memory is bounded: about 7 KB per product with a
/// full list, some 150 MB at the very worst. An event looks back over at most <see cref="MaxLookBack"/> of the user's
/// events for the products it relates to. Templates read a frozen copy refreshed every <see cref="Refresh"/> on fixed
/// boundaries, and a decision that shows related products is valid until the next one — the decision cache is never stale.
/// </summary>
public sealed class ProductRelations : IRelatedProducts
{
    /// <summary>Most products tracked.</summary>
    public const int MaxProducts = 20_000;

    /// <summary>Most related products counted per product.</summary>
    public const int MaxNeighbours = 256;

    /// <summary>Related products kept per product in the frozen copy (with their counts).</summary>
    public const int Kept = 50;

    /// <summary>Most products of one order counted.</summary>
    public const int MaxBasket = 30;

    /// <summary>How often templates see new relations.</summary>
    public static readonly TimeSpan Refresh = TimeSpan.FromMinutes(10);

    /// <summary>Most of a user's events looked back over for the products an event relates to (newest first).</summary>
    public const int MaxLookBack = 1_024;

    private static readonly TimeSpan CoViewWindow = TimeSpan.FromHours(1);
    private readonly ConcurrentDictionary<string, Neighbours> _pairs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _popularity = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _ids = new(StringComparer.Ordinal); // one string per product id
    private readonly Lock _gate = new();
    private Frozen? _frozen;
    private int _tracked; // products in _pairs, counted here: ConcurrentDictionary.Count takes every lock
    private int _interned;
    private int _popular;

    private readonly TimeProvider _time;

    /// <summary>Relations whose copies follow <paramref name="time"/> (the system clock when null).</summary>
    public ProductRelations(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>Products tracked.</summary>
    public int Products => Volatile.Read(ref _tracked);

    /// <summary>Learns from an accepted event of <paramref name="profile"/> (which already holds it).</summary>
    public void Observe(BehaviourEvent e, Profile profile)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(profile);
        // Scratch lists of this thread: an accepted event allocates nothing here (the lists are read, never kept).
        var (basket, related) = t_scratch ??= ([], []);
        basket.Clear();
        related.Clear();
        switch (e.Type)
        {
            case EventTypes.Purchase:
                AddDistinct(basket, e.ProductId); // first: the product the profile keeps for the order is always in the basket
                for (var i = 0; i < e.Lines.Count && basket.Count < MaxBasket; i++)
                {
                    AddDistinct(basket, e.Lines[i].ProductId);
                }

                EarlierPurchases(profile.Events, profile.Events.Count, basket, related);
                ObservePurchase(basket, related);
                break;
            case EventTypes.ProductView when e.ProductId is { } viewed:
                RecentViews(profile.Events, profile.Events.Count, e.Timestamp.UtcTicks, viewed, related);
                ObserveView(viewed, related);
                break;
        }
    }

    [ThreadStatic]
    private static (List<string> Basket, List<string> Related)? t_scratch;

    private static void AddDistinct(List<string> products, string? product)
    {
        if (product is not null && !products.Contains(product))
        {
            products.Add(product);
        }
    }

    /// <summary>
    /// Learns from <paramref name="profiles"/>' kept histories, each in time order, as if their events arrived again:
    /// how the relations (derived data, not saved) come back after a restart. Purchases count with the user's earlier
    /// purchases and views with the views of the hour before; a profile keeps one product per order, so products bought
    /// together in one order are not related again this way (later orders relate them once more).
    /// </summary>
    /// <returns>The profiles learned from (the enumeration stops when <paramref name="cancellation"/> is signalled).</returns>
    public int Learn(IEnumerable<Profile> profiles, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(profiles);
        var count = 0;
        var recent = new List<string>();
        var basket = new string[1];
        foreach (var profile in profiles)
        {
            if (cancellation.IsCancellationRequested)
            {
                return count; // not a completed pass
            }

            var events = profile.Events;
            for (var i = 0; i < events.Count; i++)
            {
                if (events.ProductIdAt(i) is not { } product)
                {
                    continue;
                }

                recent.Clear();
                var type = events.TypeAt(i);
                if (type == EventTypes.Purchase)
                {
                    basket[0] = product;
                    EarlierPurchases(events, i, basket, recent);
                    ObservePurchase(basket, recent);
                }
                else if (type == EventTypes.ProductView)
                {
                    RecentViews(events, i, events.TicksAt(i), product, recent);
                    ObserveView(product, recent);
                }
            }

            count++;
        }

        Volatile.Write(ref _relearned, count);
        return count;
    }

    /// <summary>Profiles the last completed <see cref="Learn"/> learned from (0 until one completed).</summary>
    public int Relearned => Volatile.Read(ref _relearned);

    private int _relearned;

    /// <summary>Counts one order's products together, and each with the user's earlier purchases.</summary>
    public void ObservePurchase(IReadOnlyList<string> basket, IReadOnlyList<string> earlier)
    {
        for (var i = 0; i < basket.Count; i++) // by index: no enumerator is allocated per event
        {
            var a = basket[i];
            Popularity(a, 5);
            for (var j = 0; j < basket.Count; j++)
            {
                var b = basket[j];
                if (!ReferenceEquals(a, b) && a != b)
                {
                    Add(a, b, 2);
                }
            }

            for (var k = 0; k < earlier.Count; k++)
            {
                Add(earlier[k], a, 1);
                Add(a, earlier[k], 1);
            }
        }
    }

    /// <summary>Counts a viewed product with the user's other recent views.</summary>
    public void ObserveView(string product, IReadOnlyList<string> recent)
    {
        Popularity(product, 1);
        for (var i = 0; i < recent.Count; i++)
        {
            Add(recent[i], product, 1);
            Add(product, recent[i], 1);
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<string> Related(IReadOnlyList<string> seeds, IReadOnlySet<string> exclude, int max, long nowTicks, out long validUntilTicks)
    {
        // Copies follow the server's clock: a request dated past its refresh boundary (a preview dated next year, a
        // client's clock ahead) gets the current copy, valid for that instant only — building the copy of its time
        // would serve it to everyone until then, and to decisions cached under the current one too early.
        var serverBoundary = BoundaryOf(_time.GetUtcNow().UtcTicks);
        var ahead = BoundaryOf(nowTicks) > serverBoundary;
        var frozen = FrozenAt(ahead ? serverBoundary : nowTicks);
        // Valid for this instant only when ahead, or when the copy is an older one served during another request's
        // rebuild (its own end has passed: a decision must not be cached on it).
        validUntilTicks = ahead || frozen.Boundary + Refresh.Ticks <= nowTicks ? nowTicks + 1 : frozen.Boundary + Refresh.Ticks;
        var scores = new Dictionary<string, double>(StringComparer.Ordinal);
        for (var i = 0; i < seeds.Count; i++)
        {
            if (!frozen.Top.TryGetValue(seeds[i], out var related))
            {
                continue;
            }

            foreach (var (other, count) in related)
            {
                if (!exclude.Contains(other) && !seeds.Contains(other))
                {
                    scores[other] = scores.GetValueOrDefault(other) + count; // how often the other came with this seed
                }
            }
        }

        var result = scores.OrderByDescending(s => s.Value).ThenBy(s => s.Key, StringComparer.Ordinal).Take(max).Select(s => s.Key).ToList();
        foreach (var popular in frozen.Popular)
        {
            if (result.Count >= max)
            {
                break;
            }

            if (!exclude.Contains(popular) && !seeds.Contains(popular) && !result.Contains(popular))
            {
                result.Add(popular); // topped up with the most popular, as a new visitor would see
            }
        }

        return result;
    }

    /// <summary>The most popular products now (purchases weigh 5, views 1), at most <paramref name="max"/>.</summary>
    public IReadOnlyList<string> Popular(int max) =>
        [.. _popularity.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Take(max).Select(p => p.Key)];

    // The frozen copy for the boundary nowTicks falls in; a request for an earlier boundary (a batch with a fixed
    // evaluation time) gets the newest copy, never an older one rebuilt in its place. One request rebuilds it (up to
    // 20,000 products' neighbours sorted): the others meanwhile get the copy it replaces, valid for their instant only
    // (so nothing caches it), instead of waiting on the rebuild — decisions never queue behind it.
    private Frozen FrozenAt(long nowTicks)
    {
        var boundary = BoundaryOf(nowTicks);
        var frozen = Volatile.Read(ref _frozen);
        if (frozen is not null && frozen.Boundary >= boundary)
        {
            return frozen;
        }

        if (frozen is null)
        {
            _gate.Enter(); // the first copy: nothing to serve meanwhile
        }
        else if (!_gate.TryEnter())
        {
            return frozen;
        }

        try
        {
            if (_frozen is { } again && again.Boundary >= boundary)
            {
                return again;
            }

            Rebuilding?.Invoke();
            var top = _pairs.ToFrozenDictionary(p => p.Key, p => p.Value.Top(Kept), StringComparer.Ordinal);
            var next = new Frozen(boundary, top, [.. Popular(50)]);
            Volatile.Write(ref _frozen, next);
            return next;
        }
        finally
        {
            _gate.Exit();
        }
    }

    /// <summary>Test hook: runs when a request starts rebuilding the frozen copy, holding the rebuild.</summary>
    internal Action? Rebuilding { get; set; }

    private static long BoundaryOf(long ticks) => ticks - (ticks % Refresh.Ticks);

    private void Add(string a, string b, double weight)
    {
        if (!_pairs.TryGetValue(a, out var neighbours))
        {
            if (Volatile.Read(ref _tracked) >= MaxProducts)
            {
                return;
            }

            if (Intern(a) is not { } key)
            {
                return; // past the ids kept: each new key would keep its own copy of the id
            }

            var added = new Neighbours();
            neighbours = _pairs.GetOrAdd(key, added);
            if (ReferenceEquals(neighbours, added))
            {
                Interlocked.Increment(ref _tracked);
            }
        }

        // A product whose id cannot be interned any more only adds to a count it already has: as a new neighbour it would
        // keep the caller's copy of the id in every list it joins (5 million entries at most), not the one shared copy.
        var shared = Intern(b);
        neighbours.Add(shared ?? b, weight, mayJoin: shared is not null);
    }

    // The one copy of a product id, or null past the ids kept (at most MaxProducts * 4, the first seen).
    private string? Intern(string id)
    {
        if (_ids.TryGetValue(id, out var known))
        {
            return known;
        }

        if (Volatile.Read(ref _interned) >= MaxProducts * 4)
        {
            return null;
        }

        var kept = _ids.GetOrAdd(id, id);
        if (ReferenceEquals(kept, id))
        {
            Interlocked.Increment(ref _interned);
        }

        return kept;
    }

    // Popularity of at most MaxProducts * 4 products (the first seen; a new product beyond is not ranked).
    private void Popularity(string product, double weight)
    {
        while (true)
        {
            if (_popularity.TryGetValue(product, out var count))
            {
                if (_popularity.TryUpdate(product, count + weight, count))
                {
                    return;
                }
            }
            else if (Volatile.Read(ref _popular) >= MaxProducts * 4)
            {
                return;
            }
            else if (_popularity.TryAdd(Intern(product) ?? product, weight)) // bounded: at most MaxProducts * 4 entries
            {
                Interlocked.Increment(ref _popular);
                return;
            }
        }
    }

    // The user's distinct purchased products before this order (newest first, at most 5), not in it. The order itself is
    // passed over by its products: the product the profile keeps for it (the event's product, else its first line's) is
    // always in the basket.
    // At most MaxLookBack events back: a user who bought the same few products many times would otherwise make every
    // purchase scan their whole history (and a restart's Learn, every purchase of it: quadratic in the history).
    private static void EarlierPurchases(EventLog events, int end, IReadOnlyList<string> basket, List<string> result)
    {
        for (var i = end - 1; i >= Math.Max(0, end - MaxLookBack) && result.Count < 5; i--)
        {
            if (events.TypeAt(i) == EventTypes.Purchase && events.ProductIdAt(i) is { } p && !basket.Contains(p) && !result.Contains(p))
            {
                result.Add(p);
            }
        }
    }

    // The user's other products viewed within the hour up to `at`, among the events before `end` (newest first, at most 5),
    // at most MaxLookBack events back (thousands of views of one product within the hour, a bot or a polling client,
    // would otherwise make each view scan all the others).
    private static void RecentViews(EventLog events, int end, long at, string viewed, List<string> result)
    {
        var from = at - CoViewWindow.Ticks;
        for (var i = end - 1; i >= Math.Max(0, end - MaxLookBack) && result.Count < 5; i--)
        {
            var ticks = events.TicksAt(i);
            if (ticks < from)
            {
                break;
            }

            if (ticks <= at && events.TypeAt(i) == EventTypes.ProductView && events.ProductIdAt(i) is { } p && p != viewed && !result.Contains(p))
            {
                result.Add(p);
            }
        }
    }

    private sealed record Frozen(long Boundary, FrozenDictionary<string, (string Product, double Count)[]> Top, string[] Popular);

    // One product's related products and counts: at most MaxNeighbours, the least counted replaced when full.
    private sealed class Neighbours
    {
        private readonly Dictionary<string, double> _counts = new(StringComparer.Ordinal);

        public void Add(string other, double weight, bool mayJoin)
        {
            lock (_counts)
            {
                if (_counts.TryGetValue(other, out var count))
                {
                    _counts[other] = count + weight;
                    return;
                }

                if (!mayJoin)
                {
                    return;
                }

                if (_counts.Count < MaxNeighbours)
                {
                    _counts[other] = weight;
                    return;
                }

                var (least, leastCount) = _counts.MinBy(c => c.Value);
                _counts.Remove(least);
                _counts[other] = leastCount + weight; // space-saving: the newcomer inherits the count it displaces (an upper bound)
            }
        }

        public (string Product, double Count)[] Top(int n)
        {
            lock (_counts)
            {
                return [.. _counts.OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).Take(n).Select(c => (c.Key, c.Value))];
            }
        }
    }
}
