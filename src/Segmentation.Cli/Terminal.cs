using Spectre.Console;

namespace Segmentation.Cli;

/// <summary>
/// Output for people and for pipes: when standard output is a terminal, tables and progress are drawn with
/// Spectre.Console; when it is redirected (a file, a pipe, a test), the same content is written as plain,
/// aligned text without colour or box characters, so scripts can read it.
/// </summary>
internal static class Terminal
{
    /// <summary>
    /// True when standard output is a terminal that takes ANSI sequences and SEGCTL_PLAIN does not ask for plain text.
    /// (NO_COLOR, as Spectre.Console reads it, removes colours but keeps the drawing.)
    /// </summary>
    public static bool Interactive =>
        !Console.IsOutputRedirected
        && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("SEGCTL_PLAIN"))
        && AnsiConsole.Profile.Capabilities.Ansi;

    /// <summary>
    /// Text a caller of the service wrote (a user id, a trait value, a cause) as printed: control characters — a line
    /// break, a tab, an escape sequence — written as <c>\n</c>, <c>\t</c>, <c>\x1b</c>, so that one line stays one record
    /// for a script and nothing in the text drives the terminal. (The JSON output gives the text exactly.)
    /// </summary>
    public static string Shown(string text)
    {
        if (!text.Any(IsBreaking))
        {
            return text;
        }

        var sb = new System.Text.StringBuilder(text.Length + 8);
        foreach (var ch in text)
        {
            _ = ch switch
            {
                '\n' => sb.Append("\\n"),
                '\r' => sb.Append("\\r"),
                '\t' => sb.Append("\\t"),
                _ when char.IsControl(ch) => sb.Append("\\x").Append(((int)ch).ToString("x2", System.Globalization.CultureInfo.InvariantCulture)),
                '\u2028' or '\u2029' => sb.Append("\\u").Append(((int)ch).ToString("x4", System.Globalization.CultureInfo.InvariantCulture)),
                _ => sb.Append(ch),
            };
        }

        return sb.ToString();
    }

    // A control character, or a line or paragraph separator (which some readers split lines at).
    private static bool IsBreaking(char ch) => char.IsControl(ch) || ch is '\u2028' or '\u2029';

    /// <summary>A table: drawn with borders on a terminal, aligned plain columns otherwise.</summary>
    /// <param name="headers">Column headings; a heading starting with '>' is right-aligned (numbers).</param>
    /// <param name="rows">The cells, row by row.</param>
    public static void Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var right = headers.Select(h => h.StartsWith('>')).ToArray();
        var names = headers.Select(h => h.TrimStart('>')).ToArray();
        var all = rows.Select(r => (IReadOnlyList<string>)[.. r.Select(Shown)]).ToList();
        if (Interactive)
        {
            var table = new Table().Border(TableBorder.Rounded);
            for (var i = 0; i < names.Length; i++)
            {
                var column = new TableColumn(Markup.Escape(names[i]));
                table.AddColumn(right[i] ? column.RightAligned() : column);
            }

            foreach (var row in all)
            {
                table.AddRow(row.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c)).ToArray());
            }

            AnsiConsole.Write(table);
            return;
        }

        var widths = names.Select((n, i) => all.Select(r => r[i].Length).Append(n.Length).Max()).ToArray();
        string Line(IReadOnlyList<string> cells) =>
            "  " + string.Join("  ", cells.Select((c, i) => right[i] ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd();
        Console.WriteLine(Line(names));
        foreach (var row in all)
        {
            Console.WriteLine(Line(row));
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> with a progress bar on a terminal (done of total, rate and time left), or
    /// silently otherwise; <paramref name="work"/> reports how many items are done through the callback.
    /// </summary>
    public static async Task<T> ProgressAsync<T>(string what, long total, string unit, Func<Action<long>, Task<T>> work)
    {
        if (!Interactive || total <= 0)
        {
            return await work(_ => { });
        }

        T result = default!;
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(what, maxValue: total);
                var started = DateTime.UtcNow;
                result = await work(done =>
                {
                    task.Value = done;
                    var seconds = (DateTime.UtcNow - started).TotalSeconds;
                    task.Description = seconds > 0
                        ? $"{what}: {done:N0}/{total:N0} {unit}, {done / seconds:N0} {unit}/s"
                        : what;
                });
                task.Value = total;
            });
        return result;
    }
}
