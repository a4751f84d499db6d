using Scriban;
using Scriban.Parsing;
using Scriban.Syntax;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Rendering;

/// <summary>Parses templates at catalog load and finds which request context fields they read.</summary>
public static class TemplateCompiler
{
    private static readonly ParserOptions Parser = new() { ExpressionDepthLimit = 64 };

    /// <summary>Top-level names a template may read; anything else is an error at load.</summary>
    public static readonly IReadOnlySet<string> ModelRoots = new HashSet<string>(StringComparer.Ordinal)
    {
        "profile", "segment", "context", "persona", "now",
    };

    /// <summary>
    /// Parses <paramref name="source"/>. Returns null and the parser's messages when it has syntax
    /// errors. Adds the context fields it reads to <paramref name="contextRead"/>; <paramref name="readsNow"/>
    /// tells whether the output depends on the evaluation time (such output is not cached).
    /// </summary>
    /// <remarks>
    /// Names under the model are checked too: <c>profile.X</c>, <c>segment.X</c>, <c>persona.X</c>, <c>profile.rfm.X</c>
    /// against what the render model has, and <c>profile.traits.X</c> against <paramref name="traits"/> when given — a
    /// mistyped name is an error at load with its line and column in the template and a "did you mean", never an empty
    /// string sent to customers. Liquid tags (<c>{% if %}</c>), which Scriban's syntax would print verbatim, are an error
    /// that says so.
    /// </remarks>
    public static Template? Compile(string source, HashSet<ContextField> contextRead, out bool readsNow, out IReadOnlyList<string> errors, IReadOnlyCollection<string>? traits = null)
    {
        readsNow = false;
        if (LiquidTag(source) is { } liquid)
        {
            errors = [$"{At(source, liquid)}: Liquid tags ('{{% ... %}}') are not supported and would be sent to customers as text; write Scriban: {{{{ if x }}}} ... {{{{ else }}}} ... {{{{ end }}}}, {{{{ for p in profile.top_products }}}} ... {{{{ end }}}}"];
            return null;
        }

        var template = Template.Parse(source, parserOptions: Parser);
        if (template.HasErrors)
        {
            errors = template.Messages.Select(m => m.Message).ToList();
            return null;
        }

        var walker = new ModelWalker(traits);
        template.Page?.Accept(walker);
        readsNow = walker.ReadsNow;
        var problems = walker.UnknownRoots.Select(r => $"template reads unknown variable '{r}'{Validation.Suggestions.DidYouMean(r, ModelRoots)}; the model has {string.Join(", ", ModelRoots)}").ToList();
        problems.AddRange(walker.UnknownMembers);
        problems.AddRange(walker.AssignedRoots.Select(r => $"template assigns to '{r}', which is part of the model; templates read the model and cannot change it (use another name)"));
        problems.AddRange(walker.Refused);
        if (walker.WholeContext)
        {
            foreach (var (field, _) in RequestContext.Fields)
            {
                contextRead.Add(field);
            }
        }

        foreach (var name in walker.ContextMembers)
        {
            var match = RequestContext.Fields.FirstOrDefault(f => f.Name == name);
            if (match.Name is null)
            {
                problems.Add($"template reads unknown context field '{name}'");
            }
            else
            {
                contextRead.Add(match.Field);
            }
        }

        errors = problems;
        return problems.Count == 0 ? template : null;
    }

    // Where the first Liquid tag ('{% ... %}') starts, or null. Scriban's own escape block '{%{ ... }%}' is not one, nor
    // is a '%}' after a brace. One pass (a lazy pattern scanned to the end from every '{%': quadratic, past its timeout
    // on a long template): an end after the first start closes it, and any later start's end is after the first too.
    internal static int? LiquidTag(string source)
    {
        var start = source.IndexOf("{%", StringComparison.Ordinal);
        while (start >= 0 && start + 2 < source.Length && source[start + 2] == '{')
        {
            start = source.IndexOf("{%", start + 1, StringComparison.Ordinal);
        }

        if (start < 0)
        {
            return null;
        }

        for (var end = source.IndexOf("%}", start + 2, StringComparison.Ordinal); end >= 0; end = source.IndexOf("%}", end + 1, StringComparison.Ordinal))
        {
            if (source[end - 1] != '}')
            {
                return start;
            }
        }

        return null;
    }

    // "line L, column C" (1-based) of a character of the template.
    private static string At(string source, int index)
    {
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i < index && i < source.Length; i++)
        {
            if (source[i] == '\n')
            {
                line++;
                lineStart = i + 1;
            }
        }

        return $"template line {line}, column {index - lineStart + 1}";
    }

    private sealed class ModelWalker(IReadOnlyCollection<string>? traits) : ScriptVisitor
    {
        private readonly HashSet<string> _locals = new(StringComparer.Ordinal);

        /// <summary>Names under the model that it does not have, each as an error message with its place in the template.</summary>
        public List<string> UnknownMembers { get; } = [];

        public HashSet<string> ContextMembers { get; } = new(StringComparer.Ordinal);

        public HashSet<string> UnknownRoots { get; } = new(StringComparer.Ordinal);

        public bool WholeContext { get; private set; }

        public bool ReadsNow { get; private set; }

        public HashSet<string> AssignedRoots { get; } = new(StringComparer.Ordinal);

        /// <summary>What a template may not do, each as an error message with its place.</summary>
        public List<string> Refused { get; } = [];

        public override void Visit(ScriptThisExpression node)
        {
            WholeContext = true; // the model as a whole: any context field, and the time, may be read through it
            ReadsNow = true;
            base.Visit(node);
        }

        public override void Visit(ScriptAssignExpression node)
        {
            if (node.Target is ScriptVariable v)
            {
                _locals.Add(v.Name);
                if (ModelRoots.Contains(v.Name))
                {
                    AssignedRoots.Add(v.Name);
                }
            }
            else if (RootOf(node.Target) is { } root && !_locals.Contains(root.Name) && IsBuiltin(root.Name))
            {
                // The built-in objects are shared by every render on a thread: a value set on one (math.stash =
                // profile.traits.email) would be read by the next render, another user's.
                Refused.Add($"{Place(node)}: template assigns to a member of the built-in object '{root.Name}'; built-ins are shared by every render and cannot be changed (assign to a name of your own)");
            }

            base.Visit(node);
        }

        // The variable an assignment target's member and index chain starts from.
        private static ScriptVariable? RootOf(ScriptExpression? target) => target switch
        {
            ScriptVariable v => v,
            ScriptMemberExpression m => RootOf(m.Target),
            ScriptIndexerExpression i => RootOf(i.Target),
            _ => null,
        };

        private static string Place(ScriptNode at) => $"template line {at.Span.Start.Line + 1}, column {at.Span.Start.Column + 1}";

        public override void Visit(ScriptImportStatement node)
        {
            UnknownRoots.Add("import");
            base.Visit(node);
        }

        public override void Visit(ScriptFunction node)
        {
            if (node.NameOrDoToken is ScriptVariable v)
            {
                _locals.Add(v.Name);
            }

            base.Visit(node);
        }

        public override void Visit(ScriptForStatement node)
        {
            if (node.Variable is ScriptVariable v)
            {
                _locals.Add(v.Name);
            }

            base.Visit(node);
        }

        public override void Visit(ScriptMemberExpression node)
        {
            if (node.Target is ScriptVariableGlobal { Name: "context" } && node.Member is not null)
            {
                ContextMembers.Add(node.Member.Name);
                return;
            }

            if (node is { Target: ScriptVariableGlobal { Name: var builtin }, Member: { } called } && !_locals.Contains(builtin))
            {
                switch (builtin, called.Name)
                {
                    case ("object", "eval" or "eval_template"):
                        // A string evaluated at render time: what it reads is unknown at load, so a cached decision
                        // could be served to a request whose context it read differently.
                        Refused.Add($"{Place(node)}: object.{called.Name} evaluates text at render time and is not allowed (write the template itself)");
                        break;
                    case ("date", "now" or "utc_now"):
                        Refused.Add($"{Place(node)}: date.{called.Name} is the server's clock; use 'now', the decision's own time (a batch's frozen time, a preview's timestamp)");
                        break;
                }
            }

            if (node.Member is { } member)
            {
                switch (node.Target)
                {
                    case ScriptVariableGlobal { Name: var root } when !_locals.Contains(root) && Rendering.RenderModel.Members.TryGetValue(root, out var known) && !known.Contains(member.Name):
                        Unknown(member, $"{root} has no '{member.Name}'", root == "profile" && traits is not null && Validation.Suggestions.Closest(member.Name, known) is null && Validation.Suggestions.Closest(member.Name, traits) is { } trait
                            ? $"; did you mean 'profile.traits.{trait}'?"
                            : Validation.Suggestions.DidYouMean(member.Name, known), known);
                        break;
                    case ScriptMemberExpression { Target: ScriptVariableGlobal { Name: "profile" } profile, Member.Name: "traits" } when traits is not null && !_locals.Contains(profile.Name) && !traits.Contains(member.Name):
                        Unknown(member, $"unknown trait '{member.Name}'", Validation.Suggestions.DidYouMean(member.Name, traits), null);
                        break;
                    case ScriptMemberExpression { Target: ScriptVariableGlobal { Name: "profile" } profile, Member.Name: "rfm" } when !_locals.Contains(profile.Name) && !Rendering.RenderModel.Members["profile.rfm"].Contains(member.Name):
                        Unknown(member, $"profile.rfm has no '{member.Name}'", Validation.Suggestions.DidYouMean(member.Name, Rendering.RenderModel.Members["profile.rfm"]), Rendering.RenderModel.Members["profile.rfm"]);
                        break;
                }
            }

            // Only the target can name a model root; the member is a name inside it.
            node.Target?.Accept(this);
        }

        public override void Visit(ScriptIndexerExpression node)
        {
            // profile.traits["name"] names a trait as profile.traits.name does, and is checked the same way.
            if (node is { Target: ScriptMemberExpression { Target: ScriptVariableGlobal { Name: "profile" } profile, Member.Name: "traits" }, Index: ScriptLiteral { Value: string name } index }
                && traits is not null && !_locals.Contains(profile.Name) && !traits.Contains(name))
            {
                Unknown(index, $"unknown trait '{name}'", Validation.Suggestions.DidYouMean(name, traits), null);
            }

            base.Visit(node);
        }

        public override void Visit(ScriptVariableGlobal node)
        {
            if (node.Name == "context")
            {
                WholeContext = true;
            }
            else if (node.Name is "now" or "date")
            {
                ReadsNow = true;
            }
            else if (!ModelRoots.Contains(node.Name) && !_locals.Contains(node.Name) && !IsBuiltin(node.Name))
            {
                UnknownRoots.Add(node.Name);
            }

            base.Visit(node);
        }

        private void Unknown(ScriptNode at, string what, string suggestion, IReadOnlyList<string>? known) =>
            UnknownMembers.Add($"template line {at.Span.Start.Line + 1}, column {at.Span.Start.Column + 1}: {what}{suggestion}{(known is null ? "" : $" (it has {string.Join(", ", known)})")}");

        private static bool IsBuiltin(string name) => Builtins.Contains(name);

        private static readonly HashSet<string> Builtins = ["array", "date", "html", "math", "object", "regex", "string", "timespan", "empty", "blank", "for", "tablerow", "this", "true", "false", "null"];
    }
}
