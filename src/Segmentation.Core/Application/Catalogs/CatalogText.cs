using Segmentation.Core.Rules;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Catalogs;

/// <summary>Edits a catalog file's text where a mapping was written, keeping everything else (comments included) as it was.</summary>
public static class CatalogText
{
    /// <summary>
    /// <paramref name="text"/> with <paramref name="key"/> set to <paramref name="value"/> in the block mapping
    /// <paramref name="map"/>: its value replaced on its own line when present, else a line added after the mapping's
    /// first one-line key at the same indentation. Throws <see cref="PreconditionFailedException"/> for a flow mapping
    /// (<c>{ id: a, ... }</c>), which is edited by hand.
    /// </summary>
    public static string SetScalar(string text, SyntaxMap map, string key, string value)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(map);
        if (map.Entries.Count == 0 || map.Entries.Select(e => e.Key.At.Line).Distinct().Count() < map.Entries.Count)
        {
            throw new PreconditionFailedException($"the mapping at {map.At} is written on one line; write it as a block (one key per line) to edit it through the API");
        }

        var newline = text.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var (lines, breaks) = Lines(text);
        var existing = map.Entries.FirstOrDefault(e => e.Key.Text == key);
        if (existing is not null)
        {
            if (existing.Value is not SyntaxScalar scalar || scalar.At.Line != existing.Key.At.Line || scalar.SourceLength < 0) // on the key's line, and on it alone
            {
                throw new PreconditionFailedException($"the value of '{key}' at {existing.Key.At} is not written on its key's line alone; write it there on one line to edit it through the API");
            }

            var line = existing.Key.At.Line - 1;
            var indent = existing.Key.At.Column - 1;
            lines[line] = lines[line][..indent] + key + ": " + Quote(value);
        }
        else
        {
            // After a key whose scalar value sits on its own line (a key with a block value would swallow the new line).
            var anchor = map.Entries.FirstOrDefault(e => e.Value is SyntaxScalar s && s.At.Line == e.Key.At.Line && s.SourceLength >= 0)?.Key.At
                ?? throw new PreconditionFailedException($"the mapping at {map.At} has no one-line key to add '{key}' after; add it by hand");
            if (breaks[anchor.Line - 1].Length == 0)
            {
                breaks[anchor.Line - 1] = newline; // the last line, without a break of its own
                breaks.Insert(anchor.Line, "");
            }
            else
            {
                breaks.Insert(anchor.Line, newline);
            }

            lines.Insert(anchor.Line, new string(' ', anchor.Column - 1) + key + ": " + Quote(value));
        }

        var edited = new System.Text.StringBuilder(text.Length + 64);
        for (var i = 0; i < lines.Count; i++)
        {
            edited.Append(lines[i]).Append(breaks[i]);
        }

        return edited.ToString();
    }

    // The text's lines as the YAML reader numbers them, each with the break that ends it ("" for the last): a line ends at
    // \r\n, \r, \n, U+0085, U+2028 or U+2029 (a pasted or converted text can hold the last four).
    private static (List<string> Lines, List<string> Breaks) Lines(string text)
    {
        var (lines, breaks) = (new List<string>(), new List<string>());
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is '\n' or '\r' or '\u0085' or '\u2028' or '\u2029')
            {
                var width = c == '\r' && i + 1 < text.Length && text[i + 1] == '\n' ? 2 : 1;
                lines.Add(text[start..i]);
                breaks.Add(text.Substring(i, width));
                i += width - 1;
                start = i + 1;
            }
        }

        lines.Add(text[start..]);
        breaks.Add("");
        return (lines, breaks);
    }

    /// <summary>An instant as catalog files write it (UTC, to the second).</summary>
    public static string Instant(DateTimeOffset at) => at.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);

    private static string Quote(string value) =>
        value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or ':' or '.') ? value : "\"" + value.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
