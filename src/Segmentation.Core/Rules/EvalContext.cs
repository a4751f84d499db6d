using System.Collections.Concurrent;
using System.Linq.Expressions;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Rules;

/// <summary>
/// Everything a compiled rule may read: the profile snapshot (null for unknown users), the request
/// context, the evaluation time and the population model. Rules also narrow <see cref="ValidUntilTicks"/>:
/// the earliest instant at which any result seen so far could change by the passage of time alone.
/// With a <see cref="FeatureLayout"/> (the catalog's) it also remembers each feature the catalog's rules
/// read the first time it is read, so a field that many rules test (orders.count, an RFM score, a
/// windowed event count) is computed once per evaluation.
/// </summary>
public sealed class EvalContext
{
    private readonly FeatureLayout? _layout;
    private readonly long[] _scalars;
    private readonly object?[] _references;
    private readonly int[] _stamps;
    private int _generation = 1;

    private long[]? _traitValues; // the profile's trait values for _layout, once read in this evaluation

    private const int RememberedSeries = 4;
    private string[]? _seriesTypes;
    private EventSeries[]? _series;
    private int _seriesCount;
    private int _seriesGeneration;

    /// <summary>Creates a context; with <paramref name="features"/> (the catalog's layout) features are remembered per evaluation.</summary>
    public EvalContext(Profile? profile, RequestContext request, long nowTicks, RfmModel rfm, FeatureLayout? features = null)
    {
        _layout = features;
        var featureSlots = features?.Count ?? 0;
        Profile = profile;
        Request = request;
        NowTicks = nowTicks;
        Rfm = rfm;
        _scalars = featureSlots == 0 ? [] : new long[featureSlots];
        _references = featureSlots == 0 ? [] : new object?[featureSlots];
        _stamps = featureSlots == 0 ? [] : new int[featureSlots];
    }

    /// <summary>The profile, or null for an unknown user.</summary>
    public Profile? Profile { get; private set; }

    /// <summary>The request context.</summary>
    public RequestContext Request { get; private set; }

    /// <summary>Evaluation time in UTC ticks.</summary>
    public long NowTicks { get; private set; }

    /// <summary>The RFM model used for <c>rfm.*</c> fields.</summary>
    public RfmModel Rfm { get; private set; }

    /// <summary>Earliest instant (UTC ticks) at which a result could change with time alone.</summary>
    public long ValidUntilTicks { get; private set; } = long.MaxValue;

    /// <summary>
    /// Forgets every remembered feature and the validity bound, as a new context for the same inputs would
    /// start: for callers that evaluate the same inputs repeatedly without allocating (benchmarks).
    /// </summary>
    public void Reset()
    {
        _generation++;
        ValidUntilTicks = long.MaxValue;
    }

    [ThreadStatic]
    private static EvalContext? t_spare;

    /// <summary>
    /// A context for these inputs: this thread's spare one when it fits <paramref name="features"/>, else a
    /// new one. For evaluations that end before the caller returns (<see cref="Decisions.Decider"/>'s decisions
    /// and memberships): give it back with <see cref="Return"/>, after which it must not be used. Saves the
    /// feature arrays per call.
    /// </summary>
    internal static EvalContext Rent(Profile? profile, RequestContext request, long nowTicks, RfmModel rfm, FeatureLayout features)
    {
        var spare = t_spare;
        if (spare is null || !ReferenceEquals(spare._layout, features) || spare._stamps.Length != features.Count)
        {
            return new EvalContext(profile, request, nowTicks, rfm, features);
        }

        t_spare = null;
        spare._traitValues = null;
        spare.Profile = profile;
        spare.Request = request;
        spare.NowTicks = nowTicks;
        spare.Rfm = rfm;
        spare.Reset();
        return spare;
    }

    /// <summary>
    /// Keeps this context as the thread's spare for <see cref="Rent"/>, holding nothing of the profile it
    /// read (remembered features are personal data).
    /// </summary>
    internal void Return()
    {
        Profile = null;
        _traitValues = null;
        Request = RequestContext.Empty;
        Rfm = RfmModel.Empty;
        Array.Clear(_scalars);
        Array.Clear(_references);
        if (_series is not null)
        {
            Array.Clear(_series);
            Array.Clear(_seriesTypes!);
        }

        _seriesCount = 0;
        t_spare = this;
    }

    /// <summary>The method behind <see cref="TraitValues"/>, for compiled catalogs.</summary>
    internal static readonly MethodInfo TraitValuesMethod = typeof(EvalContext).GetMethod(nameof(TraitValues), BindingFlags.Instance | BindingFlags.NonPublic)!;

    /// <summary>
    /// The profile's declared traits laid out for <paramref name="layout"/> (see <see cref="ITraitValueLayout"/>):
    /// found once per evaluation for the context's own catalog, kept by the profile snapshot across evaluations.
    /// </summary>
    internal long[] TraitValues(FeatureLayout layout) =>
        ReferenceEquals(layout, _layout) && _traitValues is { } values ? values : LoadTraitValues(layout);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private long[] LoadTraitValues(FeatureLayout layout)
    {
        var values = Profile is { } profile ? profile.TraitValues(layout) : layout.MissingTraitValues;
        if (ReferenceEquals(layout, _layout))
        {
            _traitValues = values;
        }

        return values;
    }

    /// <summary>The number (as its bits), time or flag feature in <paramref name="slot"/>, read once per evaluation.</summary>
    internal long Scalar(FeatureLayout layout, int slot, Func<EvalContext, long> read)
    {
        if (!ReferenceEquals(layout, _layout) || (uint)slot >= (uint)_stamps.Length)
        {
            return read(this); // a context of another catalog, or none: no remembering
        }

        if (_stamps[slot] == _generation)
        {
            return _scalars[slot];
        }

        var value = read(this);
        _scalars[slot] = value;
        _stamps[slot] = _generation;
        return value;
    }

    /// <summary>The text or list feature in <paramref name="slot"/>, read once per evaluation.</summary>
    internal T? Reference<T>(FeatureLayout layout, int slot, Func<EvalContext, T?> read)
        where T : class
    {
        if (!ReferenceEquals(layout, _layout) || (uint)slot >= (uint)_stamps.Length)
        {
            return read(this); // a context of another catalog, or none: no remembering
        }

        if (_stamps[slot] == _generation)
        {
            return (T?)_references[slot];
        }

        var value = read(this);
        _references[slot] = value;
        _stamps[slot] = _generation;
        return value;
    }

    /// <summary>
    /// The profile's event series of <paramref name="type"/> (the profile must not be null). The last few
    /// series looked up are remembered for the evaluation, by reference of the type string (rules pass
    /// interned type names), so windows of the same event type share one lookup.
    /// </summary>
    public EventSeries Series(string type)
    {
        if (_seriesGeneration == _generation)
        {
            for (var i = 0; i < _seriesCount; i++)
            {
                if (ReferenceEquals(_seriesTypes![i], type))
                {
                    return _series![i];
                }
            }
        }
        else
        {
            _seriesGeneration = _generation;
            _seriesCount = 0;
        }

        var series = Profile!.Series(type);
        if (_seriesCount < RememberedSeries)
        {
            _seriesTypes ??= new string[RememberedSeries];
            _series ??= new EventSeries[RememberedSeries];
            _seriesTypes[_seriesCount] = type;
            _series[_seriesCount++] = series;
        }

        return series;
    }

    /// <summary>Records that a result read holds only until <paramref name="ticks"/>.</summary>
    public void Until(long ticks)
    {
        if (ticks > NowTicks && ticks < ValidUntilTicks)
        {
            ValidUntilTicks = ticks;
        }
    }
}

/// <summary>
/// The distinct profile features (field plus window, count or resolution) one catalog's rules read, each
/// with a slot in <see cref="EvalContext"/>, and the declared traits its rules test, each with a slot in
/// the trait values a profile snapshot keeps for the catalog (<see cref="ITraitValueLayout"/>). Filled by the
/// catalog's <see cref="RuleCompiler"/> while it compiles, read-only afterwards.
/// </summary>
public sealed class FeatureLayout : ITraitValueLayout
{
    private static long s_lastId;

    private readonly Dictionary<string, FieldAccessor> _features = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TraitSlot> _traits = new(StringComparer.Ordinal);
    private readonly Lock _freezing = new();
    private TraitSlot[]? _frozenTraits;
    private long[]? _missing;

    /// <summary>Number of slots.</summary>
    public int Count => _features.Count;

    /// <summary>Number of declared traits read through trait values.</summary>
    public int TraitCount => _traits.Count;

    /// <inheritdoc />
    public long Id { get; } = Interlocked.Increment(ref s_lastId);

    /// <inheritdoc />
    /// <remarks>True unless set otherwise: a catalog previewed or otherwise evaluated once sets it false.</remarks>
    public bool KeepOnProfiles { get; set; } = true;

    /// <summary>The accessor of <paramref name="field"/> that reads it through its slot (one slot per field name).</summary>
    internal FieldAccessor Remember(FieldAccessor field)
    {
        if (!_features.TryGetValue(field.Name, out var remembered))
        {
            remembered = field.Remembered(this, _features.Count);
            _features.Add(field.Name, remembered);
        }

        return remembered;
    }

    /// <summary>The slot of declared trait <paramref name="trait"/> (one per trait), added while the catalog compiles.</summary>
    internal TraitSlot Trait(TraitDefinition trait)
    {
        if (!_traits.TryGetValue(trait.Name, out var slot))
        {
            if (_frozenTraits is not null)
            {
                throw new InvalidOperationException("the catalog's trait slots are fixed once it is compiled");
            }

            slot = new TraitSlot(trait, _traits.Count + 1) { Layout = this };
            _traits.Add(trait.Name, slot);
        }

        return slot;
    }

    /// <summary>The local of a whole-catalog method holding the profile's trait values for this layout.</summary>
    internal ParameterExpression TraitValuesVariable { get; } = Expression.Variable(typeof(long[]), "traits");

    /// <summary>The trait values of a profile without any of the traits (and of an unknown user).</summary>
    internal long[] MissingTraitValues => _missing ?? Freeze();

    /// <inheritdoc />
    public long[] Build(AttributeDictionary attributes)
    {
        var missing = MissingTraitValues;
        var slots = _frozenTraits!;
        if (attributes.Count == 0 || slots.Length == 0)
        {
            return missing; // shared: nobody writes a trait values array
        }

        long[]? values = null;
        var personal = false;
        foreach (var slot in slots)
        {
            if (attributes.TryGetValue(slot.Trait.Name, out var attribute))
            {
                var encoded = slot.Encode(attribute.Value);
                if (encoded != slot.Missing)
                {
                    values ??= (long[])missing.Clone();
                    values[slot.Index] = encoded;
                    personal |= slot.HoldsPersonalValue;
                }
            }
        }

        return values is null ? missing : personal ? values : Shared(values);
    }

    /// <summary>Most distinct trait value arrays a layout shares between profiles.</summary>
    public const int MaxSharedTraitValues = 65_536;

    // Profiles whose traits read by the catalog are equal hold one array: most profiles differ in few of
    // them (a country, a category), so a million profiles need a few thousand arrays instead of a million.
    // Past the bound an array is not shared, so the table cannot grow with the population. An array holding
    // a user's own value (a number, a time, or any value of a trait declared pii) is never shared: it must
    // go with its profile when the profile is erased, not stay behind in the table.
    private readonly ConcurrentDictionary<long[], long[]> _shared = new(TraitValuesComparer.Instance);

    private long[] Shared(long[] values) =>
        _shared.TryGetValue(values, out var shared) ? shared
        : _shared.Count < MaxSharedTraitValues ? _shared.GetOrAdd(values, values)
        : values;

    /// <summary>Arrays of trait values by content.</summary>
    private sealed class TraitValuesComparer : IEqualityComparer<long[]>
    {
        public static readonly TraitValuesComparer Instance = new();

        public bool Equals(long[]? x, long[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(long[] values)
        {
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(values.AsSpan()));
            return hash.ToHashCode();
        }
    }

    // Fixes the slots and their words on the first build: the catalog has been compiled by then.
    private long[] Freeze()
    {
        lock (_freezing)
        {
            if (_missing is null)
            {
                var slots = _traits.Values.OrderBy(t => t.Index).ToArray();
                var missing = new long[slots.Length + 1];
                missing[0] = Id;
                foreach (var slot in slots)
                {
                    slot.Freeze();
                    missing[slot.Index] = slot.Missing;
                }

                _frozenTraits = slots;
                _missing = missing;
            }

            return _missing;
        }
    }
}
