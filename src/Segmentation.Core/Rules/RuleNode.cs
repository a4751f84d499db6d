using System.Linq.Expressions;

namespace Segmentation.Core.Rules;

/// <summary>One evaluated clause in an explanation.</summary>
/// <param name="Path">Where the clause sits, e.g. <c>rule.all[1]</c>.</param>
/// <param name="Text">The clause as written.</param>
/// <param name="Result">The clause's result.</param>
/// <param name="Actual">For leaves, the value seen; null for groups.</param>
public sealed record ClauseTrace(string Path, string Text, bool Result, string? Actual);

/// <summary>
/// A compiled rule or clause. <see cref="Evaluate"/> is the composed delegate used on the hot path;
/// <see cref="Explain"/> walks the same compiled clauses and records what each saw.
/// </summary>
public abstract class RuleNode
{
    // The clause as written, formatted when first asked for (an explanation, the catalog's listing): kept eagerly, every
    // clause held its children's text again, so a long value deep in a rule was held once per enclosing clause.
    private readonly SyntaxNode _syntax;
    private string? _text;

    private protected RuleNode(string path, SyntaxNode syntax, Func<EvalContext, bool> evaluate)
    {
        Path = path;
        _syntax = syntax;
        Evaluate = evaluate;
    }

    /// <summary>Where the clause sits in its rule.</summary>
    public string Path { get; }

    /// <summary>The clause in compact one-line form.</summary>
    public string Text => _text ??= RuleText.Format(_syntax);

    /// <summary>The text without keeping it (a comparison at load walks clauses whose text is never shown).</summary>
    internal string TextOnce => _text ?? RuleText.Format(_syntax);

    /// <summary>The compiled test.</summary>
    public Func<EvalContext, bool> Evaluate { get; }

    /// <summary>True when the rule reads the request context (its result differs per request).</summary>
    public abstract bool ReadsContext { get; }

    /// <summary>
    /// How many conditions the clause stands for with every fragment and segment reference expanded: what
    /// compiling the catalog into one method and explaining a decision cost.
    /// </summary>
    public abstract long Size { get; }

    /// <summary>
    /// True when <see cref="Inline"/> is a few plain reads and comparisons with no effect on the context (a
    /// condition on a declared trait's slot): such clauses are combined without branches, since evaluating
    /// one that short-circuiting would skip costs less than a mispredicted jump and changes nothing.
    /// </summary>
    internal virtual bool Pure => false;

    /// <summary>
    /// True when evaluating the clause may walk the profile's events (it reads a field that is
    /// <see cref="FieldAccessor.Costly"/>): a group evaluates its other clauses first, so that a cheap clause that
    /// decides the group spares the walk.
    /// </summary>
    internal virtual bool Costly => false;

    /// <summary>Evaluates and appends a trace entry for this node and the children it evaluated.</summary>
    public abstract bool Explain(EvalContext context, List<ClauseTrace> trace);

    /// <summary>
    /// The fields the clause reads, references followed (for example <c>orders.count</c>, <c>traits.tier</c>,
    /// <c>context.device</c>), in ordinal order.
    /// </summary>
    public IReadOnlyList<string> FieldsRead()
    {
        var fields = new HashSet<string>(StringComparer.Ordinal);
        CollectFields(fields);
        return [.. fields.Order(StringComparer.Ordinal)];
    }

    /// <summary>Adds the fields the clause reads to <paramref name="fields"/>.</summary>
    internal abstract void CollectFields(HashSet<string> fields);

    /// <summary>
    /// This clause as an expression over the context parameter <paramref name="c"/>, with the same result
    /// and the same side effects on the context as <see cref="Evaluate"/>: used to compile a whole catalog
    /// into one method. By default a call of <see cref="Evaluate"/>.
    /// </summary>
    internal virtual Expression Inline(Expression c) => Expression.Invoke(Expression.Constant(Evaluate), c);

    /// <summary>
    /// Adds the fields this clause reads through the evaluation context (<see cref="EvalContext.Scalar"/>) when
    /// <see cref="Inline"/> calls it rather than inlining it: all of them, unless it inlines its parts.
    /// </summary>
    internal virtual void CollectCalledFields(HashSet<string> fields) => CollectFields(fields);

    /// <summary>
    /// Compiles <paramref name="rules"/> (a catalog's segments' rules, by rank; null for a segment without one)
    /// into one method that writes each rule's result to <c>matched[i]</c>, short-circuiting exactly as the
    /// delegates do.
    /// Large catalogs compile into one method per <see cref="SegmentsPerMethod"/> segments, called in turn,
    /// so no single method grows past what the JIT compiles quickly.
    /// </summary>
    /// <param name="rules">The rules, compiled by the compiler whose feature layout is <paramref name="features"/>.</param>
    /// <param name="features">The catalog's feature layout: each method reads the profile's trait values for it once, at its start.</param>
    public static Action<EvalContext, bool[]> CompileAll(IReadOnlyList<RuleNode?> rules, FeatureLayout features)
    {
        ArgumentNullException.ThrowIfNull(features);
        var ranked = Enumerable.Range(0, rules.Count).Where(i => rules[i] is not null).ToList();
        var chunks = ranked.Chunk(SegmentsPerMethod).ToArray();

        // Each feature is computed once per evaluation. One that a single method reads, only in clauses it inlines, is
        // computed straight into that method's local; one read by a clause the method calls rather than inlines, or by
        // more than one method, goes through the context, which remembers it for the others.
        var called = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in ranked)
        {
            rules[i]!.CollectCalledFields(called);
        }

        var shared = called.Select(features.SlotOf).Where(slot => slot >= 0).ToHashSet();
        if (chunks.Length > 1)
        {
            var readers = new Dictionary<int, int>();
            foreach (var chunk in chunks)
            {
                var fields = new HashSet<string>(StringComparer.Ordinal);
                foreach (var i in chunk)
                {
                    rules[i]!.CollectFields(fields);
                }

                foreach (var slot in fields.Select(features.SlotOf).Where(slot => slot >= 0))
                {
                    readers[slot] = readers.GetValueOrDefault(slot) + 1;
                }
            }

            shared.UnionWith(readers.Where(r => r.Value > 1).Select(r => r.Key));
        }

        var methods = chunks.Select(chunk => CompileRanks(rules, chunk, features, shared)).ToArray();
        if (methods.Length == 1)
        {
            return methods[0];
        }

        return (context, matched) =>
        {
            foreach (var method in methods)
            {
                method(context, matched);
            }
        };
    }

    /// <summary>Most segments compiled into one method by <see cref="CompileAll"/>.</summary>
    public const int SegmentsPerMethod = 64;

    private static Action<EvalContext, bool[]> CompileRanks(IReadOnlyList<RuleNode?> rules, IEnumerable<int> ranks, FeatureLayout features, HashSet<int> shared)
    {
        var c = Expression.Parameter(typeof(EvalContext), "c");
        var matched = Expression.Parameter(typeof(bool[]), "matched");
        var body = new List<Expression>();
        if (features.TraitCount > 0)
        {
            // Conditions on declared traits read this local (see TraitSlot).
            body.Add(Expression.Assign(features.TraitValuesVariable, Expression.Call(c, EvalContext.TraitValuesMethod, Expression.Constant(features))));
        }

        var locals = new FeatureLocals(c, features, shared);
        foreach (var i in ranks)
        {
            body.Add(Expression.Assign(Expression.ArrayAccess(matched, Expression.Constant(i)), locals.Visit(rules[i]!.Inline(c))));
        }

        body.Add(Expression.Empty());
        return Expression.Lambda<Action<EvalContext, bool[]>>(Expression.Block([features.TraitValuesVariable, .. locals.Variables], body), c, matched).Compile();
    }

    /// <summary>
    /// Gives each remembered feature a whole-catalog method reads a local of its own: every read after the first reads
    /// the local; a read skipped by short-circuiting leaves it unset, so the next read is a first one. A first read
    /// computes the feature with its own reader (<see cref="FeatureLayout.Read"/>), unless the feature is in
    /// <paramref name="shared"/> (read by another method too, or by a clause this one calls rather than inlines): then
    /// it goes through the context (<see cref="EvalContext.Scalar"/> or <see cref="EvalContext.Reference"/>), which
    /// computes and remembers it there for those readers. Either way the catalog's evaluation computes a feature once,
    /// with the same value and validity bound; a later reader of the same context outside it (contact policies, an
    /// explanation) computes a feature kept in a local again.
    /// </summary>
    private sealed class FeatureLocals(ParameterExpression context, FeatureLayout features, HashSet<int> shared) : ExpressionVisitor
    {
        private readonly Dictionary<int, (ParameterExpression Value, ParameterExpression Read)> _slots = [];

        /// <summary>The locals added, values and their read flags.</summary>
        public IEnumerable<ParameterExpression> Variables => _slots.Values.SelectMany(s => new[] { s.Value, s.Read });

        protected override Expression VisitMethodCall(MethodCallExpression node)
        {
            if (node.Object == context
                && node.Method.DeclaringType == typeof(EvalContext)
                && node.Method.Name is nameof(EvalContext.Scalar) or nameof(EvalContext.Reference)
                && node.Arguments is [ConstantExpression { Value: var layout }, ConstantExpression { Value: int slot }, ConstantExpression]
                && ReferenceEquals(layout, features))
            {
                if (!_slots.TryGetValue(slot, out var local))
                {
                    local = (Expression.Variable(node.Type, $"feature{slot}"), Expression.Variable(typeof(bool), $"read{slot}"));
                    _slots.Add(slot, local);
                }

                return Expression.Condition(
                    local.Read,
                    local.Value,
                    Expression.Block(Expression.Assign(local.Value, shared.Contains(slot) ? node : features.Read(slot, context)), Expression.Assign(local.Read, Expression.Constant(true)), local.Value));
            }

            return base.VisitMethodCall(node);
        }
    }
}

/// <summary>A condition on one field.</summary>
public sealed class LeafNode : RuleNode
{
    /// <inheritdoc />
    public override long Size => 1;

    private readonly FieldAccessor _field;

    private readonly Func<Expression, Expression>? _inline;

    internal LeafNode(string path, SyntaxNode syntax, FieldAccessor field, Func<EvalContext, bool> evaluate, Func<Expression, Expression>? inline = null, bool pure = false)
        : base(path, syntax, evaluate)
    {
        _field = field;
        _inline = inline;
        Pure = pure && inline is not null;
    }

    /// <inheritdoc />
    internal override bool Pure { get; }

    /// <inheritdoc />
    internal override Expression Inline(Expression c) => _inline is null ? base.Inline(c) : _inline(c);

    /// <inheritdoc />
    internal override bool Costly => _field.Costly;

    /// <inheritdoc />
    public override bool ReadsContext => _field.Name.StartsWith("context.", StringComparison.Ordinal);

    /// <inheritdoc />
    internal override void CollectFields(HashSet<string> fields) => fields.Add(_field.Name);

    /// <inheritdoc />
    internal override void CollectCalledFields(HashSet<string> fields)
    {
        if (_inline is null)
        {
            fields.Add(_field.Name);
        }
    }

    /// <inheritdoc />
    public override bool Explain(EvalContext context, List<ClauseTrace> trace)
    {
        var result = Evaluate(context);
        trace.Add(new ClauseTrace(Path, Text, result, _field.Describe(context)));
        return result;
    }
}

/// <summary>An all/any/not group.</summary>
public sealed class GroupNode : RuleNode
{
    private readonly string _kind;
    private readonly RuleNode[] _children;

    internal GroupNode(string path, SyntaxNode syntax, string kind, RuleNode[] children)
        : this(path, syntax, kind, children, InEvaluationOrder(children))
    {
    }

    private GroupNode(string path, SyntaxNode syntax, string kind, RuleNode[] written, RuleNode[] evaluated)
        : base(path, syntax, Compose(kind, evaluated))
    {
        _kind = kind;
        _children = evaluated;
        Children = written;
        Size = SizeOf(written);
    }

    // The order the clauses are evaluated in: as written, except that clauses that may walk the profile's events come
    // last. A group's result does not depend on the order (clauses are pure but for the validity bounds they report, and
    // a group decided by a clause holds until that clause changes, whichever was tested first); only its cost does.
    private static RuleNode[] InEvaluationOrder(RuleNode[] children) =>
        children.Any(c => c.Costly) ? [.. children.Where(c => !c.Costly), .. children.Where(c => c.Costly)] : children;

    /// <inheritdoc />
    public override long Size { get; }

    /// <summary>The size of a group of <paramref name="children"/> (saturating: it only has to exceed a limit).</summary>
    internal static long SizeOf(IEnumerable<RuleNode> children) => children.Aggregate(0L, (sum, c) => Math.Min(sum + c.Size, long.MaxValue / 2));

    /// <summary>The child clauses, as written.</summary>
    public IReadOnlyList<RuleNode> Children { get; }

    /// <inheritdoc />
    internal override Expression Inline(Expression c)
    {
        if (_kind == "not")
        {
            return Expression.Not(_children[0].Inline(c));
        }

        // A pure child is joined without a branch (&, |): evaluating it where && or || would skip it changes
        // nothing. Any other child short-circuits, so a clause with effects on the context (a validity bound)
        // runs exactly when its delegate would.
        var all = _kind == "all";
        var result = _children[0].Inline(c);
        for (var i = 1; i < _children.Length; i++)
        {
            var next = _children[i].Inline(c);
            result = (all, _children[i].Pure) switch
            {
                (true, true) => Expression.And(result, next),
                (true, false) => Expression.AndAlso(result, next),
                (false, true) => Expression.Or(result, next),
                _ => Expression.OrElse(result, next),
            };
        }

        return result;
    }

    /// <inheritdoc />
    internal override bool Pure => _children.All(ch => ch.Pure);

    /// <inheritdoc />
    internal override bool Costly => _children.Any(ch => ch.Costly);

    /// <inheritdoc />
    public override bool ReadsContext => _children.Any(c => c.ReadsContext);

    /// <inheritdoc />
    internal override void CollectFields(HashSet<string> fields)
    {
        foreach (var child in _children)
        {
            child.CollectFields(fields);
        }
    }

    /// <inheritdoc />
    internal override void CollectCalledFields(HashSet<string> fields)
    {
        foreach (var child in _children)
        {
            child.CollectCalledFields(fields);
        }
    }

    /// <inheritdoc />
    public override bool Explain(EvalContext context, List<ClauseTrace> trace)
    {
        var index = trace.Count;
        trace.Add(null!); // placeholder so the group precedes its children
        bool result;
        switch (_kind)
        {
            case "not":
                result = !_children[0].Explain(context, trace);
                break;
            case "all":
                result = true;
                foreach (var child in _children)
                {
                    if (!child.Explain(context, trace))
                    {
                        result = false;
                        break;
                    }
                }

                break;
            default:
                result = false;
                foreach (var child in _children)
                {
                    if (child.Explain(context, trace))
                    {
                        result = true;
                        break;
                    }
                }

                break;
        }

        trace[index] = new ClauseTrace(Path, _kind, result, null);
        return result;
    }

    /// <summary>all, any or not.</summary>
    public string Kind => _kind;

    private static Func<EvalContext, bool> Compose(string kind, RuleNode[] children)
    {
        var tests = children.Select(c => c.Evaluate).ToArray();
        if (kind == "not")
        {
            var inner = tests[0];
            return c => !inner(c);
        }

        if (tests.Length == 1)
        {
            return tests[0];
        }

        if (tests.Length == 2)
        {
            var (a, b) = (tests[0], tests[1]);
            return kind == "all" ? c => a(c) && b(c) : c => a(c) || b(c);
        }

        return kind == "all"
            ? c =>
            {
                foreach (var t in tests)
                {
                    if (!t(c))
                    {
                        return false;
                    }
                }

                return true;
            }
            : c =>
            {
                foreach (var t in tests)
                {
                    if (t(c))
                    {
                        return true;
                    }
                }

                return false;
            };
    }
}

/// <summary>A reference to a shared fragment or another segment's rule, compiled once and reused.</summary>
public sealed class ReferenceNode : RuleNode
{
    private readonly RuleNode _target;

    internal ReferenceNode(string path, SyntaxNode syntax, RuleNode target)
        : base(path, syntax, target.Evaluate) => _target = target;

    /// <inheritdoc />
    public override long Size => _target.Size;

    /// <inheritdoc />
    internal override Expression Inline(Expression c) => _target.Inline(c);

    /// <inheritdoc />
    internal override bool Pure => _target.Pure;

    /// <inheritdoc />
    internal override bool Costly => _target.Costly;

    /// <inheritdoc />
    public override bool ReadsContext => _target.ReadsContext;

    /// <inheritdoc />
    internal override void CollectFields(HashSet<string> fields) => _target.CollectFields(fields);

    /// <inheritdoc />
    internal override void CollectCalledFields(HashSet<string> fields) => _target.CollectCalledFields(fields);

    /// <inheritdoc />
    public override bool Explain(EvalContext context, List<ClauseTrace> trace)
    {
        var index = trace.Count;
        trace.Add(null!);
        var result = _target.Explain(context, trace);
        trace[index] = new ClauseTrace(Path, Text, result, null);
        return result;
    }
}
