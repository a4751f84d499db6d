using System.Collections.Frozen;
using System.Globalization;
using System.Linq.Expressions;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Rules;

/// <summary>
/// One declared trait's slot in a catalog's trait values (<see cref="FeatureLayout"/>): how the stored value
/// is encoded in a <c>long</c>, and the catalog's conditions on it compiled to reads of that <c>long</c>.
/// </summary>
/// <remarks>
/// Encodings. A number: its IEEE bits, NaN when missing. A bool: 1, 0, or -1 when missing. A timestamp: UTC
/// ticks, <see cref="long.MinValue"/> when missing. A string: in the low 32 bits, 0 when missing or empty, 1 for a
/// value none of the catalog's conditions names, else the id of the word it equals (case-insensitively, as text
/// conditions compare); in bit <c>32 + k</c>, the result of the catalog's <c>k</c>-th text test on it (contains,
/// starts_with, regex: up to 31 per trait, decided once when the profile snapshot lays out its values; a 32nd
/// test, and any test on a trait declared pii, reads the string itself). A list: 0 when missing or empty; else
/// bit 63 set, and bit <c>k</c> set when it holds word <c>k</c> of the catalog's conditions (up to 63 words per
/// list trait; a condition on a 64th word reads the list itself).
/// </remarks>
internal sealed class TraitSlot
{
    private const long MissingText = 0;
    private const long OtherText = 1;
    private const long ListPresent = long.MinValue;
    private const int ListWords = 63;
    private const int TextTestShift = 32;
    private const int TextTests = 31;
    private const long WordBits = 0xFFFF_FFFFL;

    // Small sets of values are tested as a chain of equalities; larger ones by a mask or a set.
    private const int ChainedValues = 8;

    private readonly Dictionary<string, int> _words = new(StringComparer.OrdinalIgnoreCase);
    private FrozenDictionary<string, int>? _frozen;
    private readonly List<Func<string, bool>> _textTests = [];

    public TraitSlot(TraitDefinition trait, int index)
    {
        Trait = trait;
        Index = index;
        Missing = trait.Type switch
        {
            FieldType.Number => BitConverter.DoubleToInt64Bits(double.NaN),
            FieldType.Bool => -1,
            FieldType.Timestamp => long.MinValue,
            _ => 0,
        };
    }

    /// <summary>The trait.</summary>
    public TraitDefinition Trait { get; }

    /// <summary>Its element in the values array (element 0 names the layout).</summary>
    public int Index { get; }

    /// <summary>
    /// True when a present value encodes the user's own data rather than a word of the catalog: numbers and
    /// times are kept as they are, and any value of a trait declared pii is personal. Such values are never
    /// shared between profiles.
    /// </summary>
    public bool HoldsPersonalValue => Trait.Pii || Trait.Type is FieldType.Number or FieldType.Timestamp;

    /// <summary>The encoding of a missing value.</summary>
    public long Missing { get; }

    /// <summary>
    /// True when a condition <paramref name="op"/> on <paramref name="trait"/> can be decided from the slot's value
    /// (the trait gets a slot only then). Contains, starts_with and regex on a text trait declared pii read the text:
    /// their results would make every such profile's values its own (see <see cref="HoldsPersonalValue"/>).
    /// </summary>
    public static bool Reads(TraitDefinition trait, string op) => op == "exists" || trait.Type switch
    {
        FieldType.Number => op is "eq" or "ne" or "lt" or "lte" or "gt" or "gte" or "between" or "in" or "not_in",
        FieldType.Bool => op is "eq" or "ne",
        FieldType.Timestamp => op is "within" or "older_than",
        FieldType.String => op is "eq" or "ne" or "in" or "not_in" || (op is "contains" or "starts_with" or "regex" && !trait.Pii),
        _ => op is "contains" or "in" or "not_in",
    };

    /// <summary>
    /// True when the condition's compiled test only reads and compares (every test but a timestamp's
    /// within/older_than, which also bounds the result's validity on the context).
    /// </summary>
    public bool IsPure(string op) => Trait.Type != FieldType.Timestamp || op == "exists";

    /// <summary>No more words are registered; <see cref="Encode"/> may be called from now on.</summary>
    public void Freeze() => _frozen = _words.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    /// <summary>The stored value <paramref name="value"/> encoded; a value of another type than declared is missing, as when read by name.</summary>
    public long Encode(object? value)
    {
        var words = _frozen ?? throw new InvalidOperationException("trait slots are encoded only once the catalog is compiled");
        switch (Trait.Type)
        {
            case FieldType.Number:
                return value is double d ? BitConverter.DoubleToInt64Bits(d) : Missing;
            case FieldType.Bool:
                return value is bool b ? (b ? 1 : 0) : Missing;
            case FieldType.Timestamp:
                return value is DateTimeOffset t ? t.UtcTicks : Missing;
            case FieldType.String:
                if (value is not string { Length: > 0 } s)
                {
                    return MissingText; // no text test matches a missing value
                }

                long text = words.TryGetValue(s, out var id) ? id : OtherText;
                for (var k = 0; k < _textTests.Count; k++)
                {
                    if (_textTests[k](s))
                    {
                        text |= 1L << (TextTestShift + k);
                    }
                }

                return text;
            default:
                if (value is not IReadOnlyList<string> { Count: > 0 } list)
                {
                    return 0;
                }

                var bits = ListPresent;
                for (var i = 0; i < list.Count; i++)
                {
                    if (list[i] is { } item && words.TryGetValue(item, out var bit))
                    {
                        bits |= 1L << bit;
                    }
                }

                return bits;
        }
    }

    /// <summary>
    /// The condition <paramref name="op"/> <paramref name="operand"/> on this trait as an expression over the
    /// slot's value, registering the words it names; null when the condition reads the value itself instead
    /// (operators that need the text, a list trait's words beyond 63, an empty word). The operand has been
    /// type-checked by the condition's own compilation.
    /// </summary>
    public Func<Expression, Expression>? Inline(string op, SyntaxNode operand)
    {
        if (_frozen is not null)
        {
            throw new InvalidOperationException("the catalog's trait slots are fixed once it is compiled");
        }

        return Trait.Type switch
        {
            FieldType.Number => NumberTest(op, operand),
            FieldType.Bool => FlagTest(op, operand),
            FieldType.Timestamp => TimeTest(op, operand),
            FieldType.String => TextTest(op, operand),
            _ => ListTest(op, operand),
        };
    }

    private Func<Expression, Expression>? NumberTest(string op, SyntaxNode operand)
    {
        var exists = Exists(op, operand, v => Expression.Equal(v, v)); // NaN (missing) is the only value unequal to itself
        if (exists is not null)
        {
            return Number(exists);
        }

        Func<ParameterExpression, Expression>? test = op switch
        {
            "eq" => v => Expression.Equal(v, Constant(operand)),
            "ne" => v => Expression.And(Expression.Equal(v, v), Expression.NotEqual(v, Constant(operand))),
            "lt" => v => Expression.LessThan(v, Constant(operand)),
            "lte" => v => Expression.LessThanOrEqual(v, Constant(operand)),
            "gt" => v => Expression.GreaterThan(v, Constant(operand)),
            "gte" => v => Expression.GreaterThanOrEqual(v, Constant(operand)),
            "between" => v => Expression.And(
                Expression.GreaterThanOrEqual(v, Constant(((SyntaxList)operand).Items[0])),
                Expression.LessThanOrEqual(v, Constant(((SyntaxList)operand).Items[1]))),
            "in" => v => NumberIn(v, operand),
            "not_in" => v => Expression.And(Expression.Equal(v, v), Expression.Not(NumberIn(v, operand))),
            _ => null,
        };
        return test is null ? null : Number(test);

        static ConstantExpression Constant(SyntaxNode node) => Expression.Constant(double.Parse(node.Text!, CultureInfo.InvariantCulture));
    }

    private static Expression NumberIn(ParameterExpression v, SyntaxNode operand)
    {
        var values = ((SyntaxList)operand).Items.Select(i => double.Parse(i.Text!, CultureInfo.InvariantCulture)).Distinct().ToArray();
        if (values.Length <= ChainedValues)
        {
            return values.Select(x => (Expression)Expression.Equal(v, Expression.Constant(x))).Aggregate(Expression.Or);
        }

        var set = values.ToFrozenSet();
        return Expression.Call(Expression.Constant(set), typeof(FrozenSet<double>).GetMethod(nameof(FrozenSet<double>.Contains))!, v);
    }

    private Func<Expression, Expression>? FlagTest(string op, SyntaxNode operand)
    {
        var exists = Exists(op, operand, f => Expression.GreaterThanOrEqual(f, Expression.Constant(0L)));
        if (exists is not null)
        {
            return Raw(exists);
        }

        if (op is not ("eq" or "ne") || !bool.TryParse(operand.Text, out var b))
        {
            return null;
        }

        var want = Expression.Constant(b ? 1L : 0L);
        return op == "eq"
            ? Raw(f => Expression.Equal(f, want))
            : Raw(f => Expression.And(Expression.GreaterThanOrEqual(f, Expression.Constant(0L)), Expression.NotEqual(f, want)));
    }

    private Func<Expression, Expression>? TimeTest(string op, SyntaxNode operand)
    {
        var exists = Exists(op, operand, t => Expression.NotEqual(t, Expression.Constant(long.MinValue)));
        if (exists is not null)
        {
            return Raw(exists);
        }

        if (op is not ("within" or "older_than") || !Duration.TryParse(operand.Text, out var d))
        {
            return null;
        }

        var method = RuleOps.Method(op == "within" ? nameof(RuleOps.Within) : nameof(RuleOps.OlderThan));
        var span = Expression.Constant(d.Ticks);
        return c => Expression.Call(method, c, Read(), span); // the context, for the result's validity bound
    }

    private Func<Expression, Expression>? TextTest(string op, SyntaxNode operand)
    {
        var missing = Expression.Constant(MissingText);
        var exists = Exists(op, operand, id => Expression.NotEqual(id, missing));
        if (exists is not null)
        {
            return WordOf(exists);
        }

        switch (op)
        {
            case "eq" or "ne" when operand.Text is { Length: > 0 } x:
                var word = Expression.Constant((long)Word(x));
                return op == "eq"
                    ? WordOf(id => Expression.Equal(id, word))
                    : WordOf(id => Expression.And(Expression.NotEqual(id, missing), Expression.NotEqual(id, word)));
            case "in" or "not_in" when operand is SyntaxList list && list.Items.All(i => i.Text is { Length: > 0 }):
                var ids = list.Items.Select(i => (long)Word(i.Text!)).Distinct().ToArray();
                return op == "in"
                    ? WordOf(id => TextIn(id, ids))
                    : WordOf(id => Expression.And(Expression.NotEqual(id, missing), Expression.Not(TextIn(id, ids))));
            case "contains" or "starts_with" or "regex" when !Trait.Pii && _textTests.Count < TextTests:
                // The condition's own test of a string, decided when the values are laid out; here one bit.
                var text = Expression.Parameter(typeof(string), "text");
                var (_, inline) = RuleCompiler.TextTest(_ => null, _ => text, op, operand, out _);
                if (inline is null)
                {
                    return null;
                }

                var bit = Expression.Constant(1L << (TextTestShift + _textTests.Count));
                _textTests.Add(Expression.Lambda<Func<string, bool>>(inline(text), text).Compile());
                return Raw(v => Expression.NotEqual(Expression.And(v, bit), Expression.Constant(0L)));
            default:
                return null; // empty words, and text tests past the slot's bits, read the text itself
        }
    }

    // A text slot's word id (its low bits) read once into a variable, then tested.
    private Func<Expression, Expression> WordOf(Func<ParameterExpression, Expression> test) => c =>
    {
        var value = Expression.Variable(typeof(long), Trait.Name);
        return Expression.Block([value], Expression.Assign(value, Expression.And(Read(), Expression.Constant(WordBits))), test(value));
    };

    private static Expression TextIn(ParameterExpression id, long[] ids)
    {
        if (ids.Length <= ChainedValues)
        {
            return ids.Select(w => (Expression)Expression.Equal(id, Expression.Constant(w))).Aggregate(Expression.Or);
        }

        if (ids.Max() < 64)
        {
            // Bit k of the mask set for word k: (uint)id < 64 && ((mask >> id) & 1) != 0.
            var mask = ids.Aggregate(0L, (m, w) => m | (1L << (int)w));
            return Expression.And(
                Expression.LessThan(id, Expression.Constant(64L)),
                Expression.NotEqual(Expression.And(Expression.RightShift(Expression.Constant(mask), Expression.Convert(id, typeof(int))), Expression.Constant(1L)), Expression.Constant(0L)));
        }

        var set = ids.ToFrozenSet();
        return Expression.Call(Expression.Constant(set), typeof(FrozenSet<long>).GetMethod(nameof(FrozenSet<long>.Contains))!, id);
    }

    private Func<Expression, Expression>? ListTest(string op, SyntaxNode operand)
    {
        var none = Expression.Constant(0L);
        var exists = Exists(op, operand, bits => Expression.NotEqual(bits, none));
        if (exists is not null)
        {
            return Raw(exists);
        }

        string[] named = op switch
        {
            "contains" when operand is SyntaxScalar { Text: { Length: > 0 } x } => [x],
            "in" or "not_in" when operand is SyntaxList list && list.Items.All(i => i.Text is { Length: > 0 }) => [.. list.Items.Select(i => i.Text!)],
            _ => [],
        };
        var newWords = named.Distinct(StringComparer.OrdinalIgnoreCase).Count(w => !_words.ContainsKey(w));
        if (named.Length == 0 || _words.Count + newWords > ListWords)
        {
            return null; // another operator, or more words than the slot has bits: the condition reads the list
        }

        var mask = Expression.Constant(named.Aggregate(0L, (m, w) => m | (1L << Word(w))));
        return op == "not_in"
            ? Raw(bits => Expression.And(Expression.NotEqual(bits, none), Expression.Equal(Expression.And(bits, mask), none)))
            : Raw(bits => Expression.NotEqual(Expression.And(bits, mask), none));
    }

    // exists: true / false, as a test on the slot's value; null for any other operator.
    private static Func<ParameterExpression, Expression>? Exists(string op, SyntaxNode operand, Func<ParameterExpression, Expression> present) =>
        op != "exists" || !bool.TryParse(operand.Text, out var want)
            ? null
            : want ? present : v => Expression.Not(present(v));

    // The word's id: strings 2, 3, ...; list bits 0..62.
    private int Word(string word)
    {
        if (!_words.TryGetValue(word, out var id))
        {
            id = Trait.Type == FieldType.List ? _words.Count : _words.Count + 2;
            _words.Add(word, id);
        }

        return id;
    }

    // The slot's raw value read once into a variable, then tested.
    private Func<Expression, Expression> Raw(Func<ParameterExpression, Expression> test) => c =>
    {
        var value = Expression.Variable(typeof(long), Trait.Name);
        return Expression.Block([value], Expression.Assign(value, Read()), test(value));
    };

    // The slot's number read once into a variable, then tested.
    private Func<Expression, Expression> Number(Func<ParameterExpression, Expression> test) => c =>
    {
        var value = Expression.Variable(typeof(double), Trait.Name);
        var bits = Expression.Call(typeof(BitConverter).GetMethod(nameof(BitConverter.Int64BitsToDouble), [typeof(long)])!, Read());
        return Expression.Block([value], Expression.Assign(value, bits), test(value));
    };

    // values[Index] of the profile's trait values, which the whole-catalog method reads into the layout's
    // variable once, at its start.
    private BinaryExpression Read() => Expression.ArrayIndex(Layout.TraitValuesVariable, Expression.Constant(Index));

    /// <summary>The layout the slot belongs to.</summary>
    public FeatureLayout Layout { get; init; } = null!;
}
