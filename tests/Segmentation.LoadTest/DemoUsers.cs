using System.Globalization;

namespace Segmentation.LoadTest;

/// <summary>User ids for the load: the demo customers the server imported at start-up, then synthetic ones.</summary>
internal static class DemoUsers
{
    private static string CsvPath => Path.Combine(AppContext.BaseDirectory, "DemoData", "online-retail-sample.csv");

    /// <summary>The first <paramref name="count"/> customer ids in numeric order, padded with <c>load-N</c> ids when the demo has fewer.</summary>
    public static IReadOnlyList<string> Load(int count)
    {
        using var reader = File.OpenText(CsvPath);
        var header = (reader.ReadLine() ?? "").Split(',');
        var column = Array.IndexOf(header, "CustomerID");
        if (column < 0)
        {
            throw new InvalidDataException($"{CsvPath} has no CustomerID column");
        }

        var ids = new SortedSet<long>();
        while (reader.ReadLine() is { } line)
        {
            // Quoted descriptions may hold commas, so read the id from the end of the row.
            var fields = line.Split(',');
            var field = fields[^(header.Length - column)];
            if (double.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out var id))
            {
                ids.Add((long)id);
            }
        }

        return ids.Select(id => id.ToString(CultureInfo.InvariantCulture))
            .Concat(Enumerable.Range(0, Math.Max(0, count - ids.Count)).Select(i => $"load-{i}"))
            .Take(count)
            .ToList();
    }
}
