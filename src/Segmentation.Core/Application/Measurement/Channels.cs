using System.Collections.Concurrent;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// Channel names as KPIs group them: the request's channel, lower case, "web" when none was given (as the API
/// documents), one shared string per name so remembered decisions hold no copies, and at most
/// <see cref="MaxDistinct"/> names (any further one is counted as "other", so tag sets stay bounded).
/// </summary>
public static class Channels
{
    /// <summary>Most distinct channel names kept.</summary>
    public const int MaxDistinct = 64;

    /// <summary>The name counted for a request without a channel.</summary>
    public const string Default = "web";

    /// <summary>The name counted once <see cref="MaxDistinct"/> names are in use.</summary>
    public const string Other = "other";

    private static readonly ConcurrentDictionary<string, string> Names = new(StringComparer.Ordinal)
    {
        [Default] = Default,
        ["email"] = "email",
        ["ads"] = "ads",
        ["app"] = "app",
    };

    /// <summary>The shared name of <paramref name="channel"/>.</summary>
    public static string Intern(string? channel)
    {
        if (string.IsNullOrEmpty(channel))
        {
            return Default;
        }

        if (Names.TryGetValue(channel, out var name))
        {
            return name;
        }

        var lower = channel.ToLowerInvariant();
        if (Names.TryGetValue(lower, out name))
        {
            return name;
        }

        return Names.Count >= MaxDistinct ? Other : Names.GetOrAdd(lower, lower);
    }
}
