using Segmentation.Core.Profiles;

namespace Segmentation.Core.Scoring;

/// <summary>
/// RFM quintile scoring (F16) over the customer population at one moment, versioned.
/// </summary>
/// <remarks>
/// Customers are the profiles with at least one purchase. For each dimension the population's
/// values are sorted ascending; a customer's score is
/// <c>1 + floor(5 × (number of customers with a strictly lower value) / N)</c>, capped at 5.
/// Recency uses the time of the last purchase (later is better), frequency the number of orders,
/// monetary the revenue net of refunds. Ties get the same score: the score of the first position of
/// the tie. A profile without purchases scores 0 on every dimension. The model is recomputed by
/// <see cref="RfmModelProvider.Recompute"/> (at start-up after import and then periodically); each
/// recomputation gets a new <see cref="Version"/>, which is part of the decision cache key.
/// </remarks>
public sealed class RfmModel
{
    /// <summary>A model over an empty population: every score is 0.</summary>
    public static readonly RfmModel Empty = new(0, [], [], []);

    private readonly long[] _recency;
    private readonly int[] _frequency;
    private readonly double[] _monetary;

    private RfmModel(long version, long[] recency, int[] frequency, double[] monetary)
    {
        Version = version;
        _recency = recency;
        _frequency = frequency;
        _monetary = monetary;
    }

    /// <summary>Version of this model, increasing with each recomputation.</summary>
    public long Version { get; }

    /// <summary>When the model was computed (<see cref="DateTimeOffset.MinValue"/> for the empty model).</summary>
    public DateTimeOffset ComputedAt { get; private init; }

    /// <summary>Number of customers in the population.</summary>
    public int Customers => _recency.Length;

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

        var ra = r.ToArray();
        var fa = f.ToArray();
        var ma = m.ToArray();
        Array.Sort(ra);
        Array.Sort(fa);
        Array.Sort(ma);
        return new RfmModel(version, ra, fa, ma) { ComputedAt = computedAt };
    }

    /// <summary>Recency score 1–5 (5 = most recent), 0 without purchases.</summary>
    public int Recency(Profile? p) => p is null || p.Orders == 0 ? 0 : Score(_recency, p.LastPurchaseTicks);

    /// <summary>Frequency score 1–5 (5 = most orders), 0 without purchases.</summary>
    public int Frequency(Profile? p) => p is null || p.Orders == 0 ? 0 : Score(_frequency, p.Orders);

    /// <summary>Monetary score 1–5 (5 = highest revenue), 0 without purchases.</summary>
    public int Monetary(Profile? p) => p is null || p.Orders == 0 ? 0 : Score(_monetary, p.Revenue);

    private static int Score<T>(T[] sorted, T value)
        where T : IComparable<T>
    {
        if (sorted.Length == 0)
        {
            return 0;
        }

        // Number of values strictly lower than value.
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (sorted[mid].CompareTo(value) < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return Math.Min(5, 1 + (int)(5L * lo / sorted.Length));
    }
}

/// <summary>
/// Holds the current <see cref="RfmModel"/> and swaps in recomputed ones atomically. Writes that change
/// a customer's orders or revenue mark the model dirty; the host recomputes dirty models in the
/// background (see the README's "Demo data" section for the policy).
/// </summary>
public sealed class RfmModelProvider(TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private volatile RfmModel _current = RfmModel.Empty;
    private long _version;
    private int _dirty;

    /// <summary>The current model.</summary>
    public RfmModel Current => _current;

    /// <summary>True when orders or revenue changed since the last recomputation.</summary>
    public bool IsDirty => Volatile.Read(ref _dirty) == 1;

    /// <summary>Records that the population's orders or revenue changed.</summary>
    public void MarkDirty() => Volatile.Write(ref _dirty, 1);

    /// <summary>Recomputes the model over the store's current profiles and publishes it.</summary>
    public RfmModel Recompute(IProfileStore store)
    {
        Volatile.Write(ref _dirty, 0); // changes from here on mark it dirty again
        var model = RfmModel.Compute(store.Snapshot(), Interlocked.Increment(ref _version), _time.GetUtcNow());
        _current = model;
        return model;
    }
}
