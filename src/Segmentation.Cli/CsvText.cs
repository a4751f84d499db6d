using System.Globalization;

namespace Segmentation.Cli;

/// <summary>How the CSV exports write numbers and fields: invariant culture, RFC 4180 quoting.</summary>
internal static class CsvText
{
    /// <summary>A whole number.</summary>
    public static string N(long n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>A ratio or amount, up to six decimals.</summary>
    public static string R(double x) => x.ToString("0.######", CultureInfo.InvariantCulture);

    /// <summary>A field, quoted when it holds a comma, quote or newline.</summary>
    public static string Quote(string s) => s.IndexOfAny([',', '"', '\n']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
}
