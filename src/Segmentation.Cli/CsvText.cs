using System.Globalization;

namespace Segmentation.Cli;

/// <summary>How the CSV exports write numbers and fields: invariant culture, RFC 4180 quoting.</summary>
internal static class CsvText
{
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
