using System.Buffers;
using System.Collections.Frozen;
using System.Globalization;
using System.Linq.Expressions;
using System.Text.RegularExpressions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Rules;

/// <summary>Receives a rule error: the clause path, the node it is about, and the message.</summary>
public delegate void RuleErrorSink(string clause, SyntaxNode node, string message);

/// <summary>Resolves named rule fragments and segment references while compiling, detecting cycles.</summary>
public interface IRuleReferences
{
    /// <summary>The compiled shared fragment <paramref name="name"/>, or null with <paramref name="error"/>.</summary>
    RuleNode? Fragment(string name, out string? error);

    /// <summary>The compiled rule of segment <paramref name="id"/>, or null with <paramref name="error"/>.</summary>
    RuleNode? Segment(string id, out string? error);
}

/// <summary>
/// Type-checks and compiles rules of the catalog's rule language, given as a syntax tree (whatever file
/// format they were written in), into delegates, once, at catalog load. See the rule language reference
/// (docs/rules.md) for the grammar.
/// </summary>
public sealed class RuleCompiler
{
    /// <summary>The comparison operators a condition may use.</summary>
    public static readonly FrozenSet<string> Operators = new[]
    {
        "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "starts_with", "exists", "between", "regex", "within", "older_than",
    }.ToFrozenSet(StringComparer.Ordinal);

    private const int MaxDepth = 32;

    /// <summary>Most conditions one rule may stand for with its references expanded.</summary>
    public const int MaxConditions = 10_000;

    /// <summary>Most characters of text rules one catalog may hold, counted with YAML aliases expanded (each use is parsed).</summary>
    public const int MaxTextRuleCharacters = 1_000_000;

    private readonly FieldRegistry _fields;
    private long _textRuleCharacters;

    /// <summary>Creates a compiler resolving fields through <paramref name="fields"/>.</summary>
    public RuleCompiler(FieldRegistry fields) => _fields = fields;

    /// <summary>Resolves <c>fragment:</c> and <c>segment:</c> references; null when references are not allowed.</summary>
    public IRuleReferences? References { get; set; }

    /// <summary>Context fields read by the rules compiled so far.</summary>
    public HashSet<ContextField> ContextFieldsRead { get; } = [];

    /// <summary>
    /// The distinct profile features (field plus window, count or resolution) the rules compiled so far
    /// read: what an <see cref="EvalContext"/> needs to compute each of them once per evaluation.
    /// </summary>
    public FeatureLayout Features { get; } = new();

    /// <summary>Compiles one rule. Returns null when it has errors (reported to <paramref name="errors"/>).</summary>
    public RuleNode? Compile(SyntaxNode node, string path, RuleErrorSink errors) => Compile(node, path, errors, 0);

    private RuleNode? Compile(SyntaxNode node, string path, RuleErrorSink errors, int depth)
    {
        if (depth > MaxDepth)
        {
            errors(path, node, $"rule is nested deeper than {MaxDepth} levels");
            return null;
        }

        if (node is SyntaxScalar { Value: { Length: > 0 } } text)
        {
            _textRuleCharacters += text.Value.Length;
            if (_textRuleCharacters > MaxTextRuleCharacters)
            {
                errors(path, node, $"the catalog's text rules amount to more than {MaxTextRuleCharacters:N0} characters (with YAML aliases expanded: each use is read again); use fragments for shared rules");
                return null;
            }

            // A rule in the text syntax: read into the same tree as the mapping form, then compiled like it.
            var parsed = RuleText.Parse(text, out var textError);
            if (parsed is null)
            {
                errors(path, new SyntaxScalar(text.Value, textError!.At), textError.Message);
                return null;
            }

            return Compile(parsed, path, errors, depth + 1);
        }

        if (node is not SyntaxMap map)
        {
            errors(path, node, "a rule clause must be a mapping (all/any/not, or field plus one operator) or a rule in the text syntax, e.g. \"orders.count >= 3 and orders.last_at within 90d\"");
            return null;
        }

        if (map.Entries.Select(e => e.Key).FirstOrDefault(k => k is not SyntaxScalar) is { } badKey)
        {
            errors(path, badKey, "a rule clause's keys are names (all, any, not, field, an operator...); this key is a list or a mapping");
            return null;
        }

        var keys = map.Entries.Select(e => e.Name ?? "").ToList();
        if (keys.Count == 1 && keys[0] is "fragment" or "segment")
        {
            var name = Scalar(map.Get(keys[0])) ?? "";
            if (References is null)
            {
                errors(path, node, $"'{keys[0]}' references are not allowed here");
                return null;
            }

            var target = keys[0] == "fragment" ? References.Fragment(name, out var refError) : References.Segment(name, out refError);
            if (target is null)
            {
                errors(path, node, refError ?? $"cannot resolve {keys[0]} '{name}'");
                return null;
            }

            if (target.Size > MaxConditions)
            {
                errors(path, node, $"{keys[0]} '{name}' stands for {target.Size:N0} conditions once its references are expanded (at most {MaxConditions:N0})");
                return null;
            }

            return new ReferenceNode(path, map, target);
        }

        foreach (var group in new[] { "all", "any", "not" })
        {
            if (!keys.Contains(group))
            {
                continue;
            }

            if (keys.Count != 1)
            {
                errors(path, node, $"'{group}' must be the only key of its clause (found: {string.Join(", ", keys)})");
                return null;
            }

            var body = map.Get(group)!;
            if (group == "not")
            {
                var inner = Compile(body, $"{path}.not", errors, depth + 1);
                return inner is null ? null : new GroupNode(path, map, "not", [inner]);
            }

            if (body is not SyntaxList seq || seq.Items.Count == 0)
            {
                errors(path, body, $"'{group}' needs a non-empty list of clauses");
                return null;
            }

            var children = new List<RuleNode>();
            var ok = true;
            for (var i = 0; i < seq.Items.Count; i++)
            {
                var child = Compile(seq.Items[i], $"{path}.{group}[{i}]", errors, depth + 1);
                ok &= child is not null;
                if (child is not null)
                {
                    children.Add(child);
                }
            }

            if (ok && GroupNode.SizeOf(children) > MaxConditions)
            {
                errors(path, node, $"the rule stands for {GroupNode.SizeOf(children):N0} conditions once its references are expanded (at most {MaxConditions:N0}): a fragment used many times inside fragments that are themselves used many times?");
                return null;
            }

            return ok ? new GroupNode(path, map, group, children.ToArray()) : null;
        }

        return CompileLeaf(map, keys, path, errors);
    }

    private LeafNode? CompileLeaf(SyntaxMap map, List<string> keys, string path, RuleErrorSink errors)
    {
        string? fieldName = null;
        TimeSpan? window = null;
        int? last = null;
        string? resolve = null;
        string? op = null;
        SyntaxNode? operand = null;

        foreach (var (k, v) in map.Entries)
        {
            var key = k.Text ?? "";
            switch (key)
            {
                case "field":
                    fieldName = Scalar(v);
                    break;
                case "window":
                    if (!Duration.TryParse(Scalar(v), out var w))
                    {
                        errors(path, v, $"'window' must be a duration such as 30m, 24h, 90d or 2w (got '{Scalar(v)}')");
                        return null;
                    }

                    window = w;
                    break;
                case "last":
                    if (!int.TryParse(Scalar(v), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                    {
                        errors(path, v, $"'last' must be a whole number (got '{Scalar(v)}')");
                        return null;
                    }

                    last = n;
                    break;
                case "resolve":
                    resolve = Scalar(v);
                    break;
                default:
                    if (!Operators.Contains(key))
                    {
                        errors(path, k, $"unknown key '{key}'{Suggestions.DidYouMean(key, [.. Operators, "field", "window", "last", "resolve"])}; a condition has 'field', one operator ({string.Join(", ", Operators)}) and optionally 'window', 'last' or 'resolve'");
                        return null;
                    }

                    if (op is not null)
                    {
                        errors(path, k, $"a condition takes exactly one operator (found '{op}' and '{key}'); combine conditions with all/any");
                        return null;
                    }

                    op = key;
                    operand = v;
                    break;
            }
        }

        if (string.IsNullOrEmpty(fieldName))
        {
            errors(path, map, $"a condition needs 'field' (found keys: {string.Join(", ", keys)})");
            return null;
        }

        if (op is null || operand is null)
        {
            errors(path, map, $"condition on '{fieldName}' has no operator; use one of {string.Join(", ", Operators)}");
            return null;
        }

        var field = _fields.Resolve(fieldName, window, last, resolve, out var fieldError, out var contextField);
        if (field is null)
        {
            errors(path, map, fieldError!);
            return null;
        }

        // A declared trait is read by the whole-catalog method from the trait values the profile keeps for the
        // catalog, when the condition can be decided from its slot; the condition's own delegate (explanations,
        // and contexts of no catalog) reads the attribute by name. Request context fields are plain reads; every
        // other feature is remembered per evaluation.
        if (field.DeclaredTrait is { } declared && TraitSlot.Reads(declared, op) && CompileTest(field, op, operand, out var opError, out _) is { } traitTest)
        {
            var slot = Features.Trait(declared);
            if (slot.Inline(op, operand) is { } slotTest)
            {
                return new LeafNode(path, map, field, traitTest, slotTest, pure: slot.IsPure(op));
            }
        }

        if (contextField is null)
        {
            field = Features.Remember(field);
        }

        var test = CompileTest(field, op, operand, out opError, out var inline);
        if (test is null)
        {
            errors(path, operand, opError!);
            return null;
        }

        if (contextField is { } cf)
        {
            ContextFieldsRead.Add(cf);
        }

        return new LeafNode(path, map, field, test, inline);
    }

    private static Func<EvalContext, bool>? CompileTest(FieldAccessor f, string op, SyntaxNode operand, out string? error, out Func<Expression, Expression>? inline)
    {
        error = null;
        inline = null;

        if (op == "exists")
        {
            if (!TryBool(operand, out var want))
            {
                error = "'exists' takes true or false";
                return null;
            }

            Func<EvalContext, bool> present = f.Type switch
            {
                FieldType.Number => c => !double.IsNaN(f.Number!(c)),
                FieldType.Timestamp => c => f.Time!(c) != long.MinValue,
                FieldType.Bool => c => f.Flag!(c) >= 0,
                FieldType.List => c => f.List!(c) is { Count: > 0 },
                _ => c => !string.IsNullOrEmpty(f.Text!(c)),
            };
            return want ? present : c => !present(c);
        }

        Func<EvalContext, bool>? result;
        switch (f.Type)
        {
            case FieldType.Number:
                (result, inline) = NumberTest(f.Number!, f.ValueExpression, op, operand, out error);
                break;
            case FieldType.Bool:
                (result, inline) = FlagTest(f.Flag!, f.ValueExpression, op, operand, out error);
                break;
            case FieldType.String:
                (result, inline) = TextTest(f.Text!, f.ValueExpression, op, operand, out error);
                break;
            case FieldType.Timestamp:
                (result, inline) = TimeTest(f.Time!, f.ValueExpression, op, operand, out error);
                break;
            default:
                (result, inline) = ListTest(f.List!, f.ValueExpression, op, operand, out error);
                break;
        }

        if (result is null && error is null)
        {
            error = $"operator '{op}' does not apply to {f.Type.ToString().ToLowerInvariant()} field '{f.Name}'";
        }

        return result;
    }

    // Comparisons are inlined by whole-catalog compilation as expressions with the same IEEE semantics as
    // the delegates (NaN, a missing number, compares false); the other number tests are called.
    private static (Func<EvalContext, bool>? Test, Func<Expression, Expression>? Inline) NumberTest(
        Func<EvalContext, double> get, Func<Expression, Expression>? value, string op, SyntaxNode operand, out string? error)
    {
        error = null;
        if (op is "in" or "not_in")
        {
            if (!TryList(operand, out var items) || !items.All(i => TryNumber(i, out _)))
            {
                error = $"'{op}' on a number field takes a list of numbers";
                return default;
            }

            var set = items.Select(i => double.Parse(i, CultureInfo.InvariantCulture)).ToFrozenSet();
            return (op == "in" ? c => set.Contains(get(c)) : c => { var v = get(c); return !double.IsNaN(v) && !set.Contains(v); }, null);
        }

        if (op == "between")
        {
            if (!TryList(operand, out var items) || items.Count != 2 || !TryNumber(items[0], out var lo) || !TryNumber(items[1], out var hi) || lo > hi)
            {
                error = "'between' takes [low, high] with low <= high (inclusive)";
                return default;
            }

            return (c => { var v = get(c); return v >= lo && v <= hi; }, null);
        }

        if (op is not ("eq" or "ne" or "lt" or "lte" or "gt" or "gte"))
        {
            return default;
        }

        if (!TryNumber(Scalar(operand), out var x))
        {
            error = $"'{op}' on a number field takes a number (got '{Scalar(operand)}')";
            return default;
        }

        var constant = Expression.Constant(x);
        Func<Expression, Expression>? Compare(Func<Expression, Expression, Expression> comparison) =>
            value is null ? null : c => comparison(value(c), constant);

        return op switch
        {
            "eq" => (c => get(c) == x, Compare(Expression.Equal)),
            "ne" => (c => { var v = get(c); return !double.IsNaN(v) && v != x; }, null),
            "lt" => (c => get(c) < x, Compare(Expression.LessThan)),
            "lte" => (c => get(c) <= x, Compare(Expression.LessThanOrEqual)),
            "gt" => (c => get(c) > x, Compare(Expression.GreaterThan)),
            _ => (c => get(c) >= x, Compare(Expression.GreaterThanOrEqual)),
        };
    }

    internal static (Func<EvalContext, bool>? Test, Func<Expression, Expression>? Inline) TextTest(
        Func<EvalContext, string?> get, Func<Expression, Expression>? value, string op, SyntaxNode operand, out string? error)
    {
        error = null;
        if (op is not ("eq" or "ne" or "in" or "not_in" or "contains" or "starts_with" or "regex"))
        {
            return default; // not a text operator (between, lt, within...): the caller says it does not apply, whatever the operand
        }

        if (op is "in" or "not_in")
        {
            if (!TryList(operand, out var items))
            {
                error = $"'{op}' takes a list of values";
                return default;
            }

            if (NoValueIn(operand, op) is { } none)
            {
                error = none;
                return default;
            }

            var set = items.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
            return op == "in"
                ? (c => RuleOps.TextIn(get(c), set), Inline(value, nameof(RuleOps.TextIn), set))
                : (c => RuleOps.TextNotIn(get(c), set), Inline(value, nameof(RuleOps.TextNotIn), set));
        }

        var x = Scalar(operand);
        if (x is null || operand is not SyntaxScalar scalar)
        {
            error = $"'{op}' takes a single value";
            return default;
        }

        if (NoValue(x, scalar.Quoted, op) is { } empty)
        {
            error = empty;
            return default;
        }

        switch (op)
        {
            case "eq":
                return (c => RuleOps.TextEquals(get(c), x), Inline(value, nameof(RuleOps.TextEquals), x));
            case "ne":
                return (c => RuleOps.TextNotEquals(get(c), x), Inline(value, nameof(RuleOps.TextNotEquals), x));
            case "contains":
                return (c => RuleOps.TextContains(get(c), x), Inline(value, nameof(RuleOps.TextContains), x));
            case "starts_with":
                return (c => RuleOps.TextStartsWith(get(c), x), Inline(value, nameof(RuleOps.TextStartsWith), x));
            case "regex":
                Regex regex;
                try
                {
                    // Non-backtracking: linear time in the input, so a catalog regex cannot stall Decide and
                    // needs no match timeout (whose set-up would cost more than most matches).
                    regex = new Regex(x, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, Regex.InfiniteMatchTimeout);
                }
                catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
                {
                    error = $"invalid regex '{x}': {ex.Message}";
                    return default;
                }

                if (LiteralAlternatives(x) is { } literals)
                {
                    var words = SearchValues.Create(literals, StringComparison.OrdinalIgnoreCase);
                    return (c => RuleOps.TextContainsAnyWord(get(c), words, regex), Inline(value, nameof(RuleOps.TextContainsAnyWord), words, regex));
                }

                return (c => RuleOps.TextMatches(get(c), regex), Inline(value, nameof(RuleOps.TextMatches), regex));
            default:
                return default;
        }
    }

    // The call of RuleOps.<method>(value, operands...) when the field's read can be inlined; null otherwise.
    private static Func<Expression, Expression>? Inline(Func<Expression, Expression>? value, string method, params object[] operands) =>
        value is null ? null : c => RuleOps.Call(method, value(c), operands);

    private static (Func<EvalContext, bool>? Test, Func<Expression, Expression>? Inline) FlagTest(
        Func<EvalContext, int> get, Func<Expression, Expression>? value, string op, SyntaxNode operand, out string? error)
    {
        error = null;
        if (op is not ("eq" or "ne"))
        {
            return default;
        }

        if (!TryBool(operand, out var b))
        {
            error = $"'{op}' on a bool field takes true or false";
            return default;
        }

        var want = b ? 1 : 0;
        if (op == "ne")
        {
            return (c => { var v = get(c); return v >= 0 && v != want; }, null);
        }

        // The remembered flag is read as a long (1 true, 0 false, -1 missing).
        var wantExpression = Expression.Constant((long)want);
        return (c => get(c) == want, value is null ? null : c => Expression.Equal(value(c), wantExpression));
    }

    private static (Func<EvalContext, bool>? Test, Func<Expression, Expression>? Inline) TimeTest(
        Func<EvalContext, long> get, Func<Expression, Expression>? value, string op, SyntaxNode operand, out string? error)
    {
        error = null;
        if (op is not ("within" or "older_than"))
        {
            return default;
        }

        if (!Duration.TryParse(Scalar(operand), out var d))
        {
            error = $"'{op}' takes a duration such as 30m, 24h, 90d or 2w (got '{Scalar(operand)}')";
            return default;
        }

        var span = d.Ticks;
        var method = op == "within" ? nameof(RuleOps.Within) : nameof(RuleOps.OlderThan);
        Func<Expression, Expression>? inline = value is null
            ? null
            : c => Expression.Call(RuleOps.Method(method), c, value(c), Expression.Constant(span));
        return op == "within"
            ? (c => RuleOps.Within(c, get(c), span), inline)
            : (c => RuleOps.OlderThan(c, get(c), span), inline);
    }

    private static (Func<EvalContext, bool>? Test, Func<Expression, Expression>? Inline) ListTest(
        Func<EvalContext, IReadOnlyList<string>?> get, Func<Expression, Expression>? value, string op, SyntaxNode operand, out string? error)
    {
        error = null;
        switch (op)
        {
            case "contains":
                var x = Scalar(operand);
                if (x is null || operand is not SyntaxScalar scalar)
                {
                    error = "'contains' on a list takes a single value";
                    return default;
                }

                if (NoValue(x, scalar.Quoted, op) is { } empty)
                {
                    error = empty;
                    return default;
                }

                return (c => RuleOps.ListContains(get(c), x), Inline(value, nameof(RuleOps.ListContains), x));
            case "in" or "not_in":
                if (!TryList(operand, out var items))
                {
                    error = $"'{op}' takes a list of values";
                    return default;
                }

                if (NoValueIn(operand, op) is { } none)
                {
                    error = none;
                    return default;
                }

                var set = items.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
                return op == "in"
                    ? (c => RuleOps.ListAnyIn(get(c), set), Inline(value, nameof(RuleOps.ListAnyIn), set))
                    : (c => RuleOps.ListNoneIn(get(c), set), Inline(value, nameof(RuleOps.ListNoneIn), set));
            default:
                return default;
        }
    }

    // "gift|present|xmas": alternatives of ASCII letters, digits, spaces, '_' and '-' only (no regex
    // metacharacters, no empty alternative); null for any other pattern.
    private static string[]? LiteralAlternatives(string pattern)
    {
        var parts = pattern.Split('|');
        foreach (var part in parts)
        {
            if (part.Length == 0)
            {
                return null;
            }

            foreach (var ch in part)
            {
                if (!(char.IsAsciiLetterOrDigit(ch) || ch is ' ' or '_' or '-'))
                {
                    return null;
                }
            }
        }

        return parts;
    }

    internal static string? Scalar(SyntaxNode? node) => node?.Text;

    // Why an operand of a text or list test stands for no value (empty, or an unquoted null or ~), or null: such a test
    // matches never (eq) or every present value (ne, contains, starts_with, regex), which no author means.
    private static string? NoValue(string x, bool quoted, string op) =>
        KeptVersion.Loading ? null // published before this check: it keeps the meaning it had
        : x.Length == 0 ? $"'{op}' needs a value, not an empty one; to test whether the field is set, use exists: true or exists: false"
        : !quoted && x is "null" or "Null" or "NULL" or "~" ? $"'{op}: {x}' would compare with the text \"{x}\"; to match a missing value use exists: false (quote it to mean the text)"
        : null;

    // Why an item of an in or not_in list stands for no value (an unquoted null or ~), or null: "gold or unset" never
    // matched unset, the item being the text. (A quoted "" is the empty text, which not_in may mean to leave out.)
    private static string? NoValueIn(SyntaxNode list, string op) =>
        ((SyntaxList)list).Items.Cast<SyntaxScalar>()
            .Where(item => !item.Quoted && item.Value is null or "null" or "Null" or "NULL" or "~")
            .Select(item => NoValue(item.Value ?? "~", quoted: false, op)).FirstOrDefault();

    private static bool TryList(SyntaxNode node, out List<string> items)
    {
        items = [];
        if (node is not SyntaxList seq || seq.Items.Any(c => c is not SyntaxScalar))
        {
            return false;
        }

        items = seq.Items.Select(c => Scalar(c) ?? "").ToList();
        return items.Count > 0;
    }

    private static bool TryNumber(string? s, out double value) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    private static bool TryBool(SyntaxNode node, out bool value)
    {
        value = false;
        return Scalar(node) is { } s && bool.TryParse(s, out value);
    }
}
