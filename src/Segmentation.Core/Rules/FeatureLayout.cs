using System.Collections.Concurrent;
using System.Linq.Expressions;
using System.Runtime.InteropServices;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Rules;

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
    private readonly List<FieldAccessor> _reads = []; // by slot: each feature's own reader
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
            _reads.Add(field);
        }

        return remembered;
    }

    /// <summary>The slot of the feature named <paramref name="name"/>, or -1 when it has none (a trait or request field).</summary>
    internal int SlotOf(string name) => _reads.FindIndex(f => f.Name == name);

    /// <summary>
    /// The feature in <paramref name="slot"/> computed, as an expression over the context <paramref name="c"/> of the
    /// type its remembered read has (its bits for a number, a long for a time or flag, else the text or list): for a
    /// whole-catalog method that keeps each feature in a local of its own (the rule method's first read).
    /// </summary>
    internal Expression Read(int slot, Expression c)
    {
        var field = _reads[slot];
        return field.Type switch
        {
            FieldType.Number => Expression.Call(DoubleToBitsMethod, Invoke(field.Number!, c)),
            FieldType.Timestamp => Invoke(field.Time!, c),
            FieldType.Bool => Expression.Convert(Invoke(field.Flag!, c), typeof(long)),
            FieldType.String => Invoke(field.Text!, c),
            _ => Invoke(field.List!, c),
        };
    }

    private static readonly System.Reflection.MethodInfo DoubleToBitsMethod = typeof(BitConverter).GetMethod(nameof(BitConverter.DoubleToInt64Bits), [typeof(double)])!;

    private static InvocationExpression Invoke(Delegate read, Expression c) => Expression.Invoke(Expression.Constant(read), c);

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
