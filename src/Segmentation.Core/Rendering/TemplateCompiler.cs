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
    public static Template? Compile(string source, HashSet<ContextField> contextRead, out bool readsNow, out IReadOnlyList<string> errors)
    {
        readsNow = false;
        var template = Template.Parse(source, parserOptions: Parser);
        if (template.HasErrors)
        {
            errors = template.Messages.Select(m => m.Message).ToList();
            return null;
        }

        var walker = new ModelWalker();
        template.Page?.Accept(walker);
        readsNow = walker.ReadsNow;
        var problems = walker.UnknownRoots.Select(r => $"template reads unknown variable '{r}'; the model has {string.Join(", ", ModelRoots)}").ToList();
        problems.AddRange(walker.AssignedRoots.Select(r => $"template assigns to '{r}', which is part of the model; templates read the model and cannot change it (use another name)"));
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

    private sealed class ModelWalker : ScriptVisitor
    {
        private readonly HashSet<string> _locals = new(StringComparer.Ordinal);

        public HashSet<string> ContextMembers { get; } = new(StringComparer.Ordinal);

        public HashSet<string> UnknownRoots { get; } = new(StringComparer.Ordinal);

        public bool WholeContext { get; private set; }

        public bool ReadsNow { get; private set; }

        public HashSet<string> AssignedRoots { get; } = new(StringComparer.Ordinal);

        public override void Visit(ScriptThisExpression node)
        {
            WholeContext = true; // the model as a whole: any context field may be read through it
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

            base.Visit(node);
        }

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

            // Only the target can name a model root; the member is a name inside it.
            node.Target?.Accept(this);
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

        private static bool IsBuiltin(string name) => Builtins.Contains(name);

        private static readonly HashSet<string> Builtins = ["array", "date", "html", "math", "object", "regex", "string", "timespan", "empty", "blank", "for", "tablerow", "this", "true", "false", "null"];
    }
}
