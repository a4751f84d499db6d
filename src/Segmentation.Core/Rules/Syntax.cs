namespace Segmentation.Core.Rules;

/// <summary>Where a piece of a catalog was written: file, line and column (1-based; 0 when unknown).</summary>
/// <param name="File">The catalog file.</param>
/// <param name="Line">The line.</param>
/// <param name="Column">The column.</param>
public readonly record struct SourcePosition(string File, int Line, int Column)
{
    /// <summary>A position in <paramref name="file"/> without a line.</summary>
    public static SourcePosition InFile(string file) => new(file, 0, 0);

    /// <inheritdoc />
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}" : File;
}

/// <summary>
/// A catalog as data, independent of the file format it was written in: scalars, lists and mappings,
/// each with the position it was written at. The YAML reader produces it; rules, templates and the rest of
/// a catalog are read and compiled from it, so nothing past the reader knows YAML (a text rule syntax or a
/// JSON catalog would produce the same tree).
/// </summary>
/// <param name="At">Where it was written.</param>
public abstract record SyntaxNode(SourcePosition At)
{
    /// <summary>The text of a scalar, or null for a list or a mapping.</summary>
    public string? Text => (this as SyntaxScalar)?.Value;
}

/// <summary>A scalar: the text as written (null for an empty value).</summary>
/// <param name="Value">The text.</param>
/// <param name="At">Where it was written.</param>
public sealed record SyntaxScalar(string? Value, SourcePosition At) : SyntaxNode(At)
{
    /// <summary>Whether the value was written in quotes (its content starts one column after <see cref="SyntaxNode.At"/>).</summary>
    public bool Quoted { get; init; }

    /// <summary>How many characters the scalar takes in its file when written on one line (quotes included); -1 across lines, 0 when unknown.</summary>
    public int SourceLength { get; init; }

    /// <summary>Whether the value was written as a literal block (<c>|</c>): its lines are the file's lines after the indicator.</summary>
    public bool LiteralBlock { get; init; }
}

/// <summary>A list of nodes.</summary>
/// <param name="Items">The items, in order.</param>
/// <param name="At">Where it was written.</param>
public sealed record SyntaxList(IReadOnlyList<SyntaxNode> Items, SourcePosition At) : SyntaxNode(At);

/// <summary>A mapping: entries in the order written (a key may itself be a list or a mapping, which readers reject).</summary>
/// <param name="Entries">The entries, in order.</param>
/// <param name="At">Where it was written.</param>
public sealed record SyntaxMap(IReadOnlyList<SyntaxEntry> Entries, SourcePosition At) : SyntaxNode(At)
{
    /// <summary>The value of the entry whose key is the scalar <paramref name="key"/>, or null.</summary>
    public SyntaxNode? Get(string key)
    {
        foreach (var entry in Entries)
        {
            if (entry.Key.Text == key)
            {
                return entry.Value;
            }
        }

        return null;
    }
}

/// <summary>One entry of a mapping.</summary>
/// <param name="Key">The key (a scalar in every well-formed catalog).</param>
/// <param name="Value">The value.</param>
public sealed record SyntaxEntry(SyntaxNode Key, SyntaxNode Value)
{
    /// <summary>The key's text, or null when the key is not a scalar.</summary>
    public string? Name => Key.Text;
}
