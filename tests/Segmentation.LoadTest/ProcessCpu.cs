using System.Diagnostics;
using System.Globalization;

namespace Segmentation.LoadTest;

/// <summary>
/// A process's CPU time (user + system) from <c>/proc/PID/stat</c>: the server's, when the load generator is told its
/// process id, and the load generator's own (Linux only; the server runs on the same machine, as every load run here
/// does, so the two share its cores).
/// </summary>
internal static class ProcessCpu
{
    // USER_HZ: the unit of utime and stime in /proc; 100 on every Linux this runs on.
    private const double TicksPerSecond = 100;

    /// <summary>The process's CPU seconds so far, or null when it cannot be read.</summary>
    public static double? Seconds(int? pid)
    {
        if (pid is not { } id)
        {
            return null;
        }

        try
        {
            var stat = File.ReadAllText($"/proc/{id}/stat");
            // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var user = long.Parse(fields[11], CultureInfo.InvariantCulture); // field 14: utime
            var system = long.Parse(fields[12], CultureInfo.InvariantCulture); // field 15: stime
            return (user + system) / TicksPerSecond;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>The process's CPU seconds between <paramref name="from"/> and <paramref name="to"/> (Stopwatch timestamps).</summary>
    public static async Task<double?> Between(int? pid, long from, long to)
    {
        if (pid is null)
        {
            return null;
        }

        await Task.Delay(Remaining(from));
        var start = Seconds(pid);
        await Task.Delay(Remaining(to));
        var end = Seconds(pid);
        return start is { } a && end is { } b ? b - a : null;

        static TimeSpan Remaining(long timestamp) => TimeSpan.FromSeconds(Math.Max(0, (timestamp - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency));
    }
}
