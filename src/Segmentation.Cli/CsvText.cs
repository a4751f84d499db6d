using System.Globalization;
using System.Text;

namespace Segmentation.Cli;

/// <summary>How the CSV exports write numbers and fields: invariant culture, RFC 4180 quoting.</summary>
internal static class CsvText
{
    /// <summary>
    /// How input files are read: UTF-8 (a byte order mark is skipped), refusing bytes that are not UTF-8 instead of
    /// replacing them — an export in another encoding would otherwise turn "müller" and "möller" into one user.
    /// </summary>
    public static readonly Encoding StrictUtf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The error for a file that is not UTF-8 text, <paramref name="where"/> naming the place.</summary>
    public static InvalidDataException NotUtf8(string file, string where, DecoderFallbackException ex) =>
        new($"{file}: {where} is not UTF-8 text (bytes {string.Join(" ", (ex.BytesUnknown ?? []).Select(b => $"0x{b:X2}"))}); convert the file first, for example with iconv -f windows-1252 -t utf-8", ex);

    /// <summary>A whole number.</summary>
    public static string N(long n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>A ratio or amount, up to six decimals.</summary>
    public static string R(double x) => x.ToString("0.######", CultureInfo.InvariantCulture);

    /// <summary>
    /// A field, quoted when it holds a comma, quote or line break. Text a spreadsheet would run as a formula (starting
    /// with <c>=</c>, <c>+</c>, <c>-</c>, <c>@</c>, a tab or a carriage return: a variant id is free text from the
    /// catalog) is written after an apostrophe, so it is read as text; numbers stay as they are.
    /// </summary>
    public static string Quote(string s)
    {
        if (s.Length > 0 && s[0] is '=' or '+' or '-' or '@' or '\t' or '\r' && !double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
        {
            s = "'" + s;
        }

        return s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
    }
}
