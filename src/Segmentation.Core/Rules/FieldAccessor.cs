using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Rules;

/// <summary>
/// A compiled, typed reader of one field. Exactly the delegate matching <see cref="Type"/> is set.
/// Missing values are <see cref="double.NaN"/> (numbers), <see cref="long.MinValue"/> (timestamps),
/// null (strings, lists) and -1 (bools: 0 false, 1 true). Readers never allocate.
/// </summary>
public sealed class FieldAccessor
{
    private static readonly MethodInfo BitsToDoubleMethod = typeof(BitConverter).GetMethod(nameof(BitConverter.Int64BitsToDouble), [typeof(long)])!;
    private static readonly MethodInfo ScalarMethod = typeof(EvalContext).GetMethod(nameof(EvalContext.Scalar), BindingFlags.Instance | BindingFlags.NonPublic)!;
    private static readonly MethodInfo ReferenceMethod = typeof(EvalContext).GetMethod(nameof(EvalContext.Reference), BindingFlags.Instance | BindingFlags.NonPublic)!;
    private static readonly MethodInfo TextMethod = ReferenceMethod.MakeGenericMethod(typeof(string));
    private static readonly MethodInfo ListMethod = ReferenceMethod.MakeGenericMethod(typeof(IReadOnlyList<string>));
    private static readonly MethodInfo RequestGetMethod = typeof(RequestContext).GetMethod(nameof(RequestContext.Get))!;

    private FieldAccessor(string name, FieldType type)
    {
        Name = name;
        Type = type;
    }

    private FieldAccessor(string name, FieldType type, bool costly)
        : this(name, type) => Costly = costly;

    /// <summary>
    /// True when reading the field may walk the profile's events (a derived trait computed at evaluation time, such as
    /// the lead score): a group of conditions tests its other clauses first (<see cref="GroupNode"/>).
    /// </summary>
    internal bool Costly { get; private set; }

    /// <summary>Marks the field as <see cref="Costly"/> (on a new accessor, before it is shared); returns it.</summary>
    internal FieldAccessor WalkingEvents()
    {
        Costly = true;
        return this;
    }

    /// <summary>The field as written in the rule, e.g. <c>events.purchase.count[90d]</c>.</summary>
    public string Name { get; }

    /// <summary>The field's type.</summary>
    public FieldType Type { get; }

    /// <summary>The declared trait this field reads from the profile's attributes; null for every other field (derived traits included).</summary>
    internal TraitDefinition? DeclaredTrait { get; private init; }

    /// <summary>Reader when <see cref="Type"/> matches (Number); null otherwise.</summary>
    public Func<EvalContext, double>? Number { get; private init; }

    /// <summary>Reader when <see cref="Type"/> matches (Time); null otherwise.</summary>
    public Func<EvalContext, long>? Time { get; private init; }

    /// <summary>Reader when <see cref="Type"/> matches (Text); null otherwise.</summary>
    public Func<EvalContext, string?>? Text { get; private init; }

    /// <summary>Reader when <see cref="Type"/> matches (Flag); null otherwise.</summary>
    public Func<EvalContext, int>? Flag { get; private init; }

    /// <summary>Reader when <see cref="Type"/> matches (List); null otherwise.</summary>
    public Func<EvalContext, IReadOnlyList<string>?>? List { get; private init; }

    /// <summary>
    /// For remembered fields and request context fields: builds the read as an expression over an
    /// <see cref="EvalContext"/> parameter (a double for numbers, a long for times and flags, the string or
    /// list otherwise), so whole-catalog compilation inlines it; null otherwise.
    /// </summary>
    internal Func<Expression, Expression>? ValueExpression { get; private init; }

    /// <summary>Creates a number accessor.</summary>
    public static FieldAccessor ForNumber(string name, Func<EvalContext, double> read) => new(name, FieldType.Number) { Number = read };

    /// <summary>Creates a time accessor.</summary>
    public static FieldAccessor ForTime(string name, Func<EvalContext, long> read) => new(name, FieldType.Timestamp) { Time = read };

    /// <summary>Creates the accessor of a request context field: a plain read, inlined by whole-catalog compilation.</summary>
    public static FieldAccessor ForContext(string name, ContextField field) => new(name, FieldType.String)
    {
        Text = c => c.Request.Get(field),
        ValueExpression = c => Expression.Call(Expression.Property(c, nameof(EvalContext.Request)), RequestGetMethod, Expression.Constant(field)),
    };

    /// <summary>Creates the accessor of a declared trait stored in the profile's attributes; a value of another type than declared is missing.</summary>
    internal static FieldAccessor ForDeclaredTrait(string name, TraitDefinition trait)
    {
        var key = trait.Name;
        return trait.Type switch
        {
            FieldType.Number => new(name, FieldType.Number) { DeclaredTrait = trait, Number = c => c.Profile?.Trait(key) is double d ? d : double.NaN },
            FieldType.Bool => new(name, FieldType.Bool) { DeclaredTrait = trait, Flag = c => c.Profile?.Trait(key) is bool b ? (b ? 1 : 0) : -1 },
            FieldType.Timestamp => new(name, FieldType.Timestamp) { DeclaredTrait = trait, Time = c => c.Profile?.Trait(key) is DateTimeOffset t ? t.UtcTicks : long.MinValue },
            FieldType.List => new(name, FieldType.List) { DeclaredTrait = trait, List = c => c.Profile?.Trait(key) as IReadOnlyList<string> },
            _ => new(name, FieldType.String) { DeclaredTrait = trait, Text = c => c.Profile?.Trait(key) as string },
        };
    }

    /// <summary>Creates a text accessor.</summary>
    public static FieldAccessor ForText(string name, Func<EvalContext, string?> read) => new(name, FieldType.String) { Text = read };

    /// <summary>Creates a flag accessor.</summary>
    public static FieldAccessor ForFlag(string name, Func<EvalContext, int> read) => new(name, FieldType.Bool) { Flag = read };

    /// <summary>Creates a list accessor.</summary>
    public static FieldAccessor ForList(string name, Func<EvalContext, IReadOnlyList<string>?> read) => new(name, FieldType.List) { List = read };

    /// <summary>
    /// This field read through feature slot <paramref name="slot"/> of <paramref name="layout"/> in the evaluation context: computed on
    /// the first read of an evaluation, remembered for the rest of it. Validity bounds (<see cref="EvalContext.Until"/>)
    /// are recorded by the first read and hold for the whole evaluation, so remembering loses none.
    /// </summary>
    public FieldAccessor Remembered(FeatureLayout layout, int slot)
    {
        // The read through the slot, as an expression: c.Scalar/Reference(layout, slot, read).
        Expression Slot(Expression c, MethodInfo method, Delegate read) =>
            Expression.Call(c, method, Expression.Constant(layout), Expression.Constant(slot), Expression.Constant(read));

        switch (Type)
        {
            case FieldType.Number:
                // Kept as its bits in the scalar slot.
                var number = Number!;
                Func<EvalContext, long> bits = c => BitConverter.DoubleToInt64Bits(number(c));
                return new(Name, Type, Costly)
                {
                    Number = c => BitConverter.Int64BitsToDouble(c.Scalar(layout, slot, bits)),
                    ValueExpression = c => Expression.Call(BitsToDoubleMethod, Slot(c, ScalarMethod, bits)),
                };
            case FieldType.Timestamp:
                var time = Time!;
                return new(Name, Type, Costly) { Time = c => c.Scalar(layout, slot, time), ValueExpression = c => Slot(c, ScalarMethod, time) };
            case FieldType.Bool:
                var flag = Flag!;
                Func<EvalContext, long> wide = c => flag(c);
                return new(Name, Type, Costly) { Flag = c => (int)c.Scalar(layout, slot, wide), ValueExpression = c => Slot(c, ScalarMethod, wide) };
            case FieldType.String:
                var text = Text!;
                return new(Name, Type, Costly) { Text = c => c.Reference(layout, slot, text), ValueExpression = c => Slot(c, TextMethod, text) };
            default:
                var list = List!;
                return new(Name, Type, Costly) { List = c => c.Reference(layout, slot, list), ValueExpression = c => Slot(c, ListMethod, list) };
        }
    }

    /// <summary>The value as text for explanations; <c>&lt;missing&gt;</c> when absent.</summary>
    public string Describe(EvalContext c)
    {
        const string Missing = "<missing>";
        switch (Type)
        {
            case FieldType.Number:
                var d = Number!(c);
                return double.IsNaN(d) ? Missing : d.ToString("0.####", CultureInfo.InvariantCulture);
            case FieldType.Timestamp:
                var t = Time!(c);
                return t == long.MinValue ? Missing : new DateTimeOffset(t, TimeSpan.Zero).ToString("O", CultureInfo.InvariantCulture);
            case FieldType.String:
                var s = Text!(c);
                return string.IsNullOrEmpty(s) ? Missing : s;
            case FieldType.Bool:
                var b = Flag!(c);
                return b < 0 ? Missing : b == 1 ? "true" : "false";
            default:
                var l = List!(c);
                return l is null ? Missing : "[" + string.Join(", ", l) + "]";
        }
    }
}
