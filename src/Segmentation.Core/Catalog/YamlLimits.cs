using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Limits checked on a catalog file's YAML events before any node tree is built (the event parser keeps
/// its own stack, while building nodes recurses): nesting deeper than <see cref="MaxDepth"/> would overflow
/// the stack of whatever walks the tree, and aliases let a few hundred bytes stand for millions of nodes,
/// so the size of the document with every alias expanded is counted and bounded by <see cref="MaxExpandedNodes"/>,
/// and its text by <see cref="MaxExpandedChars"/> (an alias to a long scalar is one node, yet every use of it is read,
/// compared and quoted in errors as a whole).
/// </summary>
public static class YamlLimits
{
    /// <summary>Deepest nesting of mappings and sequences in a catalog file.</summary>
    public const int MaxDepth = 64;

    /// <summary>Most nodes a catalog file may stand for once every alias is expanded.</summary>
    public const int MaxExpandedNodes = 200_000;

    /// <summary>Most characters of scalars a catalog file may stand for once every alias is expanded.</summary>
    public const long MaxExpandedChars = 32L << 20;

    /// <summary>The first limit <paramref name="text"/> breaks, as a catalog error of <paramref name="file"/>, or null.</summary>
    /// <exception cref="YamlException">The text is not well-formed YAML (reported by the caller as a syntax error).</exception>
    public static CatalogError? Check(string file, string text, CancellationToken cancellation = default)
    {
        var parser = new Parser(new StringReader(text));
        var open = new Stack<(Expanded Size, string? Anchor)>();
        var anchors = new Dictionary<string, Expanded>(StringComparer.Ordinal);
        var total = default(Expanded);
        var events = 0;
        while (parser.MoveNext())
        {
            if ((++events & 0xFFF) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            var current = parser.Current!;
            Expanded size;
            switch (current)
            {
                case MappingStart or SequenceStart:
                    if (open.Count >= MaxDepth)
                    {
                        return new CatalogError(file, (int)current.Start.Line, null, null, $"nesting deeper than {MaxDepth} levels: a catalog file is never that deep");
                    }

                    open.Push((default, ((NodeEvent)current).Anchor.IsEmpty ? null : ((NodeEvent)current).Anchor.Value));
                    continue;
                case MappingEnd or SequenceEnd:
                    var (children, anchor) = open.Pop();
                    size = children + new Expanded(1, 0);
                    if (anchor is not null)
                    {
                        anchors[anchor] = size;
                    }

                    break;
                case Scalar scalar:
                    size = new Expanded(1, scalar.Value.Length);
                    if (!scalar.Anchor.IsEmpty)
                    {
                        anchors[scalar.Anchor.Value] = size;
                    }

                    break;
                case AnchorAlias alias:
                    size = anchors.TryGetValue(alias.Value.Value, out var aliased) ? aliased : new Expanded(1, 0);
                    break;
                default:
                    continue; // stream and document boundaries, comments
            }

            if (open.Count > 0)
            {
                var (children, anchor) = open.Pop();
                open.Push((children + size, anchor));
            }
            else
            {
                total += size;
            }

            var all = total;
            foreach (var (children, _) in open)
            {
                all += children;
            }

            if (all.Nodes > MaxExpandedNodes)
            {
                return new CatalogError(file, (int)current.Start.Line, null, null, $"the file stands for more than {MaxExpandedNodes:N0} YAML nodes once its aliases (*name) are expanded; reuse rules through 'fragments' instead of repeating anchors");
            }

            if (all.Chars > MaxExpandedChars)
            {
                return new CatalogError(file, (int)current.Start.Line, null, null, $"the file stands for more than {MaxExpandedChars:N0} characters of text once its aliases (*name) are expanded; reuse long texts through 'fragments' or write them once");
            }
        }

        return null;
    }

    // What a node stands for once its aliases are expanded: nodes and scalar characters (both saturating, never overflowing).
    private readonly record struct Expanded(long Nodes, long Chars)
    {
        public static Expanded operator +(Expanded a, Expanded b) =>
            new(Math.Min(a.Nodes + b.Nodes, long.MaxValue / 4), Math.Min(a.Chars + b.Chars, long.MaxValue / 4));
    }
}
