namespace Segmentation.Core.Profiles;

/// <summary>
/// RFM (recency, frequency, monetary) quintile scoring over the customer population at one moment, versioned.
/// </summary>
/// <remarks>
/// Customers are the profiles with at least one purchase. For each dimension the population's
/// values are sorted ascending; a customer's score is
/// <c>1 + floor(5 × (number of customers with a strictly lower value) / N)</c>, capped at 5.
/// Recency uses the time of the last purchase (later is better), frequency the number of orders,
/// monetary the revenue net of refunds. Ties get the same score: the score of the first position of
/// the tie. A profile without purchases scores 0 on every dimension. The model is recomputed by
/// <see cref="RfmModelProvider.Compute"/> (at start-up after import and then periodically); each
/// recomputation gets a new <see cref="Version"/>, which is part of the decision cache key.
/// <para>
/// The score needs only four values per dimension, not the population: with
/// <c>c(k) = ceil(k × N / 5)</c>, at least <c>c(k)</c> customers have a strictly lower value exactly
/// when the value is greater than the <c>c(k)</c>-th smallest one, so the score is
/// <c>1 + (number of the boundaries sorted[c(k) − 1], k = 1..4, below the value)</c>. The model keeps
/// those twelve boundaries, which makes it small enough to be written to the change log with every
/// recomputation (a restart then scores with the very model each write was derived with).
/// </para>
/// </remarks>
public sealed class RfmModel
{
    /// <summary>A model over an empty population: every score is 0.</summary>
    public static readonly RfmModel Empty = new(0, DateTimeOffset.MinValue, 0, [], [], []);

    private readonly long[] _recency;
    private readonly int[] _frequency;
    private readonly double[] _monetary;

    private RfmModel(long version, DateTimeOffset computedAt, int customers, long[] recency, int[] frequency, double[] monetary)
    {
        Version = version;
        ComputedAt = computedAt;
        Customers = customers;
        _recency = recency;
        _frequency = frequency;
        _monetary = monetary;
    }

    /// <summary>Version of this model, increasing with each recomputation.</summary>
    public long Version { get; }

    /// <summary>When the model was computed (<see cref="DateTimeOffset.MinValue"/> for the empty model).</summary>
    public DateTimeOffset ComputedAt { get; }

    /// <summary>Number of customers in the population.</summary>
    public int Customers { get; }

    /// <summary>The four recency boundaries (last purchase, UTC ticks), ascending; empty without customers.</summary>
    public IReadOnlyList<long> RecencyBoundaries => _recency;

    /// <summary>The four frequency boundaries (orders), ascending; empty without customers.</summary>
    public IReadOnlyList<int> FrequencyBoundaries => _frequency;

    /// <summary>The four monetary boundaries (net revenue), ascending; empty without customers.</summary>
    public IReadOnlyList<double> MonetaryBoundaries => _monetary;

    /// <summary>Computes the model over the given profiles.</summary>
    public static RfmModel Compute(IEnumerable<Profile> profiles, long version, DateTimeOffset computedAt = default)
    {
        var r = new List<long>();
        var f = new List<int>();
        var m = new List<double>();
        foreach (var p in profiles)
        {
            if (p.Orders > 0)
            {
                r.Add(p.LastPurchaseTicks);
                f.Add(p.Orders);
                m.Add(p.Revenue);
            }
        }

        r.Sort();
        f.Sort();
        m.Sort();
        return new RfmModel(version, computedAt, r.Count, Boundaries(r), Boundaries(f), Boundaries(m));
    }

    /// <summary>A model from its boundaries (as written to the change log or a snapshot).</summary>
    /// <exception cref="ArgumentException">A dimension does not have four ascending boundaries (or none without customers).</exception>
    public static RfmModel FromBoundaries(long version, DateTimeOffset computedAt, int customers, IReadOnlyList<long> recency, IReadOnlyList<int> frequency, IReadOnlyList<double> monetary)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(customers);
        var expected = customers == 0 ? 0 : 4;
        if (recency.Count != expected || frequency.Count != expected || monetary.Count != expected ||
            !Ascending(recency) || !Ascending(frequency) || !Ascending(monetary))
        {
            throw new ArgumentException($"an RFM model of {customers} customers has {expected} ascending boundaries per dimension");
        }

        return new RfmModel(version, computedAt, customers, [.. recency], [.. frequency], [.. monetary]);
    }

    /// <summary>Recency score 1–5 (5 = most recent), 0 without purchases.</summary>
    public int Recency(Profile? p) => p is null || p.Orders == 0 ? 0 : Score(_recency, p.LastPurchaseTicks);

    /// <summary>Frequency score 1–5 (5 = most orders), 0 without purchases.</summary>
    public int Frequency(Profile? p) => p is null || p.Orders == 0 ? 0 : Score(_frequency, p.Orders);

    /// <summary>Monetary score 1–5 (5 = highest revenue), 0 without purchases.</summary>
    public int Monetary(Profile? p) => p is null || p.Orders == 0 ? 0 : Score(_monetary, p.Revenue);

    // sorted[c(k) - 1] for k = 1..4, c(k) = ceil(k N / 5): the values a score has to exceed.
    private static T[] Boundaries<T>(List<T> sorted)
    {
        if (sorted.Count == 0)
        {
            return [];
        }

        var n = (long)sorted.Count;
        var result = new T[4];
        for (var k = 1; k <= 4; k++)
        {
            result[k - 1] = sorted[(int)(((k * n) + 4) / 5) - 1];
        }

        return result;
    }

    private static int Score<T>(T[] boundaries, T value)
        where T : IComparable<T>
    {
        if (boundaries.Length == 0)
        {
            return 0;
        }

        var score = 1;
        foreach (var boundary in boundaries)
        {
            if (boundary.CompareTo(value) < 0)
            {
                score++;
            }
        }

        return score;
    }

    private static bool Ascending<T>(IReadOnlyList<T> values)
        where T : IComparable<T>
    {
        for (var i = 1; i < values.Count; i++)
        {
            if (values[i - 1].CompareTo(values[i]) > 0)
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>
/// Holds the current <see cref="RfmModel"/> and swaps in recomputed ones atomically. Writes that change
/// a customer's orders or revenue mark the model dirty; the host recomputes dirty models in the
/// background (see docs/configuration.md, "Demo data", for the policy). The last few models stay findable
/// by version, so that a change replayed from the change log is derived with the model it was derived
/// with when it was written, even when a newer model was published while it was being written.
/// </summary>
public sealed class RfmModelProvider(TimeProvider? time = null)
{
    /// <summary>How many published models stay findable by <see cref="Find"/>.</summary>
    public const int RecentModels = 8;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private volatile RfmModel _current = RfmModel.Empty;
    private RfmModel[] _recent = [RfmModel.Empty];
    private long _version;
    private int _dirty;

    /// <summary>The current model.</summary>
    public RfmModel Current => _current;

    /// <summary>The last <see cref="RecentModels"/> published models, oldest first.</summary>
    public IReadOnlyList<RfmModel> Recent => Volatile.Read(ref _recent);

    /// <summary>True when orders or revenue changed since the last recomputation.</summary>
    public bool IsDirty => Volatile.Read(ref _dirty) == 1;

    /// <summary>Records that the population's orders or revenue changed.</summary>
    public void MarkDirty() => Volatile.Write(ref _dirty, 1);

    /// <summary>Recomputes the model over the store's current profiles and publishes it.</summary>
    public RfmModel Recompute(IProfileStore store)
    {
        var model = Compute(store);
        Publish(model);
        return model;
    }

    /// <summary>
    /// Computes a model over the store's current profiles with the next version, without publishing it
    /// (the caller logs it first, then calls <see cref="Publish"/>). Clears the dirty mark: changes from
    /// here on mark it dirty again.
    /// </summary>
    public RfmModel Compute(IProfileStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        Volatile.Write(ref _dirty, 0);
        return RfmModel.Compute(store.Snapshot(), Interlocked.Increment(ref _version), _time.GetUtcNow());
    }

    /// <summary>
    /// Makes <paramref name="model"/> the current model (a newer version than the current one replaces it;
    /// an older one is only remembered) and keeps later versions above it. Used for computed models and for
    /// models read back from the change log or a snapshot, which also clears the dirty mark they settled.
    /// </summary>
    public void Publish(RfmModel model, bool replayed = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        lock (_gate)
        {
            if (Array.Exists(_recent, m => m.Version == model.Version))
            {
                return;
            }

            var recent = _recent.Append(model).OrderBy(m => m.Version).ToArray();
            _recent = recent.Length > RecentModels ? recent[^RecentModels..] : recent;
            if (model.Version > _current.Version)
            {
                _current = model;
                if (replayed)
                {
                    Volatile.Write(ref _dirty, 0);
                }
            }

            long seen;
            while ((seen = Interlocked.Read(ref _version)) < model.Version && Interlocked.CompareExchange(ref _version, model.Version, seen) != seen)
            {
            }
        }
    }

    /// <summary>
    /// Held from a computed model's logging to its publishing, and by a snapshot's capture of <see cref="Recent"/>: a
    /// snapshot taken between the two would cover the log segment holding the model's record without the model, and a
    /// restart would derive the records stamped with it with an older one.
    /// </summary>
    internal Lock LogGate { get; } = new();

    /// <summary>The published model of <paramref name="version"/> when it is among the recent ones, else null.</summary>
    public RfmModel? Find(long version)
    {
        foreach (var model in Volatile.Read(ref _recent))
        {
            if (model.Version == version)
            {
                return model;
            }
        }

        return null;
    }
}
