using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Limits checked on a catalog file's YAML events before any node tree is built (the event parser keeps
/// its own stack, while building nodes recurses): nesting deeper than <see cref="MaxDepth"/> would overflow
/// the stack of whatever walks the tree, and aliases let a few hundred bytes stand for millions of nodes,
/// so the size of the document with every alias expanded is counted and bounded by <see cref="MaxExpandedNodes"/>.
/// </summary>
public static class YamlLimits
{
    /// <summary>Deepest nesting of mappings and sequences in a catalog file.</summary>
    public const int MaxDepth = 64;

    /// <summary>Most nodes a catalog file may stand for once every alias is expanded.</summary>
    public const int MaxExpandedNodes = 200_000;

    /// <summary>The first limit <paramref name="text"/> breaks, as a catalog error of <paramref name="file"/>, or null.</summary>
    /// <exception cref="YamlException">The text is not well-formed YAML (reported by the caller as a syntax error).</exception>
    public static CatalogError? Check(string file, string text, CancellationToken cancellation = default)
    {
        var parser = new Parser(new StringReader(text));
        var open = new Stack<(long Size, string? Anchor)>();
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        var events = 0;
        while (parser.MoveNext())
        {
            if ((++events & 0xFFF) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            var current = parser.Current!;
            long size;
            switch (current)
            {
                case MappingStart or SequenceStart:
                    if (open.Count >= MaxDepth)
                    {
                        return new CatalogError(file, (int)current.Start.Line, null, null, $"nesting deeper than {MaxDepth} levels: a catalog file is never that deep");
                    }

                    open.Push((0, ((NodeEvent)current).Anchor.IsEmpty ? null : ((NodeEvent)current).Anchor.Value));
                    continue;
                case MappingEnd or SequenceEnd:
                    var (children, anchor) = open.Pop();
                    size = children + 1;
                    if (anchor is not null)
                    {
                        anchors[anchor] = size;
                    }

                    break;
                case Scalar scalar:
                    size = 1;
                    if (!scalar.Anchor.IsEmpty)
                    {
                        anchors[scalar.Anchor.Value] = 1;
                    }

                    break;
                case AnchorAlias alias:
                    size = anchors.TryGetValue(alias.Value.Value, out var aliased) ? aliased : 1;
                    break;
                default:
                    continue; // stream and document boundaries, comments
            }

            if (open.Count > 0)
            {
                var (children, anchor) = open.Pop();
                open.Push((Math.Min(children + size, long.MaxValue / 2), anchor));
            }
            else
            {
                total += size;
            }

            if (total + open.Sum(o => o.Size) > MaxExpandedNodes)
            {
                return new CatalogError(file, (int)current.Start.Line, null, null, $"the file stands for more than {MaxExpandedNodes:N0} YAML nodes once its aliases (*name) are expanded; reuse rules through 'fragments' instead of repeating anchors");
            }
        }

        return null;
    }
}
