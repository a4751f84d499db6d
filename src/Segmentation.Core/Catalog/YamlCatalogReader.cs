using Segmentation.Core.Rules;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Reads catalog files written in YAML into syntax trees (<see cref="SyntaxNode"/>): the one place that
/// knows the catalog's file format. Limits are checked on the YAML event stream first (<see cref="YamlLimits"/>),
/// so nesting and aliases are bounded before any tree is built; syntax errors become catalog errors at
/// file:line.
/// </summary>
public static class YamlCatalogReader
{
    /// <summary>The documents of <paramref name="file"/>, each a syntax tree; problems are added to <paramref name="errors"/>.</summary>
    public static IReadOnlyList<SyntaxNode> Read(CatalogFile file, List<CatalogError> errors, CancellationToken cancellation = default) => Read(file, errors, null, cancellation);

    /// <summary>
    /// The documents of <paramref name="file"/>, one file of a catalog whose files together are bounded by
    /// <paramref name="catalog"/>; problems are added to <paramref name="errors"/>.
    /// </summary>
    public static IReadOnlyList<SyntaxNode> Read(CatalogFile file, List<CatalogError> errors, YamlLimits.CatalogBudget? catalog, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(errors);
        try
        {
            if (YamlLimits.Check(file.Name, file.Text, catalog, cancellation) is { } limit)
            {
                errors.Add(limit);
                return [];
            }

            var stream = new YamlStream();
            stream.Load(new StringReader(file.Text));
            return [.. stream.Documents.Select(d => Convert(d.RootNode, file.Name))];
        }
        catch (RecursiveAliasException ex)
        {
            errors.Add(new CatalogError(file.Name, ex.Line, null, null, "an alias (*name) refers to the node that contains it: the document would be infinite"));
        }
        catch (YamlException ex)
        {
            errors.Add(new CatalogError(file.Name, (int)ex.Start.Line, null, null, "YAML syntax error: " + ex.Message + IndentationHint(ex.Message)) { Column = (int)ex.Start.Column });
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner and node loader throw these (without a position) on some malformed plain
            // scalars, flow collections and over-long implicit keys instead of a YamlException; it is still
            // the file's syntax at fault.
            errors.Add(new CatalogError(file.Name, 0, null, null, "YAML syntax error: malformed scalar or flow collection (the parser reported no line)"));
        }

        return [];
    }

    // YamlDotNet's words for the usual cause, a line indented differently from the keys beside it.
    private static string IndentationHint(string message) =>
        message.Contains("did not find expected key", StringComparison.Ordinal) || message.Contains("mapping values are not allowed", StringComparison.Ordinal)
            ? " Check the indentation of this line and the one before: the keys of one mapping start in the same column (spaces, not tabs)."
            : "";

    /// <summary>
    /// A YAML node as a syntax tree. Aliases are expanded (their total size is bounded by <see cref="YamlLimits"/>);
    /// an alias inside the node it refers to is a <see cref="CatalogException"/>, not an endless tree.
    /// </summary>
    public static SyntaxNode Convert(YamlNode node, string file)
    {
        ArgumentNullException.ThrowIfNull(node);
        try
        {
            return Convert(node, file, new HashSet<YamlNode>(ReferenceEqualityComparer.Instance));
        }
        catch (RecursiveAliasException ex)
        {
            throw new CatalogException([new CatalogError(file, ex.Line, null, null, "an alias (*name) refers to the node that contains it: the document would be infinite")]);
        }
    }

    private static SyntaxNode Convert(YamlNode node, string file, HashSet<YamlNode> open)
    {
        var at = new SourcePosition(file, (int)node.Start.Line, (int)node.Start.Column);
        if (node is YamlScalarNode scalar)
        {
            return new SyntaxScalar(scalar.Value, at)
            {
                Quoted = scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted,
                SourceLength = node.End.Line == node.Start.Line ? (int)(node.End.Column - node.Start.Column) : -1,
                LiteralBlock = scalar.Style == ScalarStyle.Literal,
            };
        }

        if (!open.Add(node))
        {
            throw new RecursiveAliasException(at.Line);
        }

        SyntaxNode result = node switch
        {
            YamlMappingNode map => new SyntaxMap([.. map.Children.Select(e => new SyntaxEntry(Convert(e.Key, file, open), Convert(e.Value, file, open)))], at),
            YamlSequenceNode seq => new SyntaxList([.. seq.Children.Select(c => Convert(c, file, open))], at),
            _ => new SyntaxScalar(null, at),
        };
        open.Remove(node);
        return result;
    }

    private sealed class RecursiveAliasException(int line) : Exception
    {
        public int Line { get; } = line;
    }
}
