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

    /// <summary>
    /// Most nodes a whole catalog (every file of it together) may stand for once every alias is expanded: the trees of
    /// all files are held until the catalog is validated, and a request may carry many files.
    /// </summary>
    public const int MaxCatalogExpandedNodes = 5 * MaxExpandedNodes;

    /// <summary>Most characters of scalars a whole catalog may stand for once every alias is expanded.</summary>
    public const long MaxCatalogExpandedChars = 4 * MaxExpandedChars;

    /// <summary>The first limit <paramref name="text"/> breaks, as a catalog error of <paramref name="file"/>, or null.</summary>
    /// <exception cref="YamlException">The text is not well-formed YAML (reported by the caller as a syntax error).</exception>
    public static CatalogError? Check(string file, string text, CancellationToken cancellation = default) => Check(file, text, null, cancellation);

    /// <summary>
    /// The first limit <paramref name="text"/> breaks, as a catalog error of <paramref name="file"/>, or null; with
    /// <paramref name="catalog"/>, the whole catalog's limits too, counting what the files checked before stand for
    /// (the file is added to it when it passes).
    /// </summary>
    /// <exception cref="YamlException">The text is not well-formed YAML (reported by the caller as a syntax error).</exception>
    public static CatalogError? Check(string file, string text, CatalogBudget? catalog, CancellationToken cancellation = default)
    {
        var parser = new Parser(new StringReader(text));
        var open = new Stack<(Expanded Size, int Deepest, string? Anchor)>();
        var anchors = new Dictionary<string, (Expanded Size, int Depth)>(StringComparer.Ordinal);
        var total = default(Expanded);
        var before = catalog?.Spent ?? default;
        var events = 0;
        while (parser.MoveNext())
        {
            if ((++events & 0xFFF) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            var current = parser.Current!;
            Expanded size;
            int depth;
            switch (current)
            {
                case MappingStart or SequenceStart:
                    if (open.Count >= MaxDepth)
                    {
                        return new CatalogError(file, (int)current.Start.Line, null, null, $"nesting deeper than {MaxDepth} levels: a catalog file is never that deep");
                    }

                    open.Push((default, 0, ((NodeEvent)current).Anchor.IsEmpty ? null : ((NodeEvent)current).Anchor.Value));
                    continue;
                case MappingEnd or SequenceEnd:
                    var (children, deepest, anchor) = open.Pop();
                    size = children + new Expanded(1, 0);
                    depth = deepest + 1;
                    if (anchor is not null)
                    {
                        anchors[anchor] = (size, depth);
                    }

                    break;
                case Scalar scalar:
                    size = new Expanded(1, scalar.Value.Length);
                    depth = 0;
                    if (!scalar.Anchor.IsEmpty)
                    {
                        anchors[scalar.Anchor.Value] = (size, depth);
                    }

                    break;
                case AnchorAlias alias:
                    if (!anchors.TryGetValue(alias.Value.Value, out var aliased))
                    {
                        // YAML defines an alias by the anchor written before it in the same document; the library resolves one
                        // written after it too, and what it would stand for is not known here (a chain of them nests without bound).
                        return new CatalogError(file, (int)current.Start.Line, null, null, $"alias *{alias.Value.Value} refers to the node that contains it, or to no anchor (&{alias.Value.Value}) defined before it in this document");
                    }

                    (size, depth) = aliased;
                    break;
                case DocumentStart:
                    anchors.Clear(); // anchors belong to their document
                    continue;
                default:
                    continue; // stream and document boundaries, comments
            }

            // An alias stands for its node's whole nesting where it is used: a few levels of text can nest far deeper.
            if (open.Count + depth > MaxDepth)
            {
                return new CatalogError(file, (int)current.Start.Line, null, null, $"nesting deeper than {MaxDepth} levels once its aliases (*name) are expanded: a catalog file is never that deep");
            }

            if (open.Count > 0)
            {
                var (children, deepest, anchor) = open.Pop();
                open.Push((children + size, Math.Max(deepest, depth), anchor));
            }
            else
            {
                total += size;
            }

            var all = total;
            foreach (var (children, _, _) in open)
            {
                all += children;
            }

            if (catalog is not null && (before + all is var whole) && (whole.Nodes > MaxCatalogExpandedNodes || whole.Chars > MaxCatalogExpandedChars))
            {
                return new CatalogError(file, (int)current.Start.Line, null, null, $"the catalog's files together stand for more than {MaxCatalogExpandedNodes:N0} YAML nodes or {MaxCatalogExpandedChars:N0} characters once their aliases (*name) are expanded (this file passes the limit); reuse rules through 'fragments' instead of repeating anchors");
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

        if (catalog is not null)
        {
            catalog.Spent = before + total;
        }

        return null;
    }

    /// <summary>What the files of one catalog checked so far stand for once their aliases are expanded.</summary>
    public sealed class CatalogBudget
    {
        internal Expanded Spent { get; set; }
    }

    // What a node stands for once its aliases are expanded: nodes and scalar characters (both saturating, never overflowing).
    internal readonly record struct Expanded(long Nodes, long Chars)
    {
        public static Expanded operator +(Expanded a, Expanded b) =>
            new(Math.Min(a.Nodes + b.Nodes, long.MaxValue / 4), Math.Min(a.Chars + b.Chars, long.MaxValue / 4));
    }
}
