using System.Reflection;
using System.Runtime.CompilerServices;
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
    private readonly long[] _stamps; // per slot, the evaluation (generation) that read it: a long never wraps, an int could in days of a pooled context
    private long _generation = 1;

    private long[]? _traitValues; // the profile's trait values for _layout, once read in this evaluation

    private const int RememberedSeries = 4;
    private string[]? _seriesTypes;
    private EventSeries[]? _series;
    private int _seriesCount;
    private long _seriesGeneration;

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
        _stamps = featureSlots == 0 ? [] : new long[featureSlots];
        BoundByEventsAhead();
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
        BoundByEventsAhead();
    }

    // Events dated after the evaluation time (a client's clock ahead, by at most minutes) are read once their time
    // comes — by rules, templates, scores and day counts alike — so any result may change then: valid until the first.
    private void BoundByEventsAhead()
    {
        if (Profile is not { } p || p.LastSeenTicks <= NowTicks)
        {
            return;
        }

        var first = p.LastSeenTicks;
        var scan = p.Events.Backward(int.MaxValue); // in time order, newest first
        while (scan.MoveNext() && scan.Ticks > NowTicks)
        {
            first = scan.Ticks;
        }

        ValidUntilTicks = first;
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
