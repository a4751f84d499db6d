using Scriban;
using Scriban.Parsing;
using Scriban.Syntax;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Rendering;

/// <summary>The parts of the render model a template reads (its top-level names).</summary>
[Flags]
public enum ModelParts
{
    /// <summary>Nothing.</summary>
    None = 0,

    /// <summary><c>profile</c>.</summary>
    Profile = 1,

    /// <summary><c>segment</c>.</summary>
    Segment = 2,

    /// <summary><c>context</c>.</summary>
    Context = 4,

    /// <summary><c>persona</c>.</summary>
    Persona = 8,

    /// <summary><c>now</c>.</summary>
    Now = 16,

    /// <summary>Every part.</summary>
    All = Profile | Segment | Context | Persona | Now,
}

/// <summary>Parses templates at catalog load and finds which request context fields and model parts they read.</summary>
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
    public static Template? Compile(string source, HashSet<ContextField> contextRead, out bool readsNow, out IReadOnlyList<string> errors) =>
        Compile(source, contextRead, out readsNow, out _, out errors);

    /// <summary>
    /// As <see cref="Compile(string, HashSet{ContextField}, out bool, out IReadOnlyList{string})"/>, and tells
    /// which parts of the model the template reads (<see cref="ModelParts.All"/> when it reads the model
    /// through <c>this</c>), so a decision builds only those.
    /// </summary>
    public static Template? Compile(string source, HashSet<ContextField> contextRead, out bool readsNow, out ModelParts parts, out IReadOnlyList<string> errors)
    {
        readsNow = false;
        parts = ModelParts.All;
        var template = Template.Parse(source, parserOptions: Parser);
        if (template.HasErrors)
        {
            errors = template.Messages.Select(m => m.Message).ToList();
            return null;
        }

        var walker = new ModelWalker();
        template.Page?.Accept(walker);
        readsNow = walker.ReadsNow;
        parts = walker.Parts;
        var problems = walker.UnknownRoots.Select(r => $"template reads unknown variable '{r}'; the model has {string.Join(", ", ModelRoots)}").ToList();
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

        public ModelParts Parts { get; private set; }

        public override void Visit(ScriptThisExpression node)
        {
            Parts = ModelParts.All; // the model as a whole
            base.Visit(node);
        }

        public override void Visit(ScriptAssignExpression node)
        {
            if (node.Target is ScriptVariable v)
            {
                _locals.Add(v.Name);
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
                Parts |= ModelParts.Context;
                return;
            }

            // Only the target can name a model root; the member is a name inside it.
            node.Target?.Accept(this);
        }

        public override void Visit(ScriptVariableGlobal node)
        {
            Parts |= node.Name switch
            {
                "profile" => ModelParts.Profile,
                "segment" => ModelParts.Segment,
                "context" => ModelParts.Context,
                "persona" => ModelParts.Persona,
                "now" => ModelParts.Now,
                _ => ModelParts.None,
            };
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
