using System.Globalization;

namespace Segmentation.Core.Rules;

/// <summary>Parses durations written as <c>30m</c>, <c>24h</c>, <c>90d</c> or <c>2w</c>.</summary>
public static class Duration
{
    /// <summary>Writes <paramref name="value"/> the way it is parsed: in whole days, hours or minutes.</summary>
    public static string Format(TimeSpan value) =>
        value.Ticks % TimeSpan.TicksPerDay == 0 ? $"{value.Ticks / TimeSpan.TicksPerDay}d"
        : value.Ticks % TimeSpan.TicksPerHour == 0 ? $"{value.Ticks / TimeSpan.TicksPerHour}h"
        : $"{value.Ticks / TimeSpan.TicksPerMinute}m";

    /// <summary>Tries to parse a duration; only positive whole amounts are accepted.</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text) || text.Length < 2)
        {
            return false;
        }

        text = text.Trim();
        if (!long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > 100_000)
        {
            return false;
        }

        value = text[^1] switch
        {
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            'w' => TimeSpan.FromDays(7 * n),
            _ => default,
        };
        return value != default;
    }
}
