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

    private static readonly string[] Names = new string[MaxDistinct];
    private static readonly ConcurrentDictionary<string, int> Indexes = new(StringComparer.Ordinal);
    private static int s_count;

    static Channels()
    {
        foreach (var name in new[] { Default, "email", "ads", "app" })
        {
            Indexes[name] = s_count;
            Names[s_count++] = name;
        }

        Names[MaxDistinct - 1] = Other;
        Indexes[Other] = MaxDistinct - 1;
    }

    /// <summary>The shared name of <paramref name="channel"/>.</summary>
    public static string Intern(string? channel) => Name(IndexOf(channel));

    /// <summary>
    /// Whether <paramref name="channel"/>, as a request gives it, is counted as <paramref name="name"/> (a name this
    /// class gave): true when it is that name or, for <see cref="Default"/>, none. False may still be the same channel
    /// written otherwise ("Email"); <see cref="IndexOf"/> answers exactly.
    /// </summary>
    public static bool Is(string name, string? channel) =>
        string.Equals(name, channel, StringComparison.Ordinal) || (string.IsNullOrEmpty(channel) && ReferenceEquals(name, Default));

    /// <summary>The name of channel number <paramref name="index"/> (see <see cref="IndexOf"/>).</summary>
    public static string Name(int index) => Names[index];

    /// <summary>A small number for <paramref name="channel"/>, below <see cref="MaxDistinct"/>, the same for every request of that channel.</summary>
    public static int IndexOf(string? channel)
    {
        // The API's own channels without a lookup: this runs on every decision.
        switch (channel)
        {
            case null or "":
            case Default:
                return 0;
            case "email":
                return 1;
            case "ads":
                return 2;
            case "app":
                return 3;
        }

        if (Indexes.TryGetValue(channel, out var index) || Indexes.TryGetValue(channel.ToLowerInvariant(), out index))
        {
            return index;
        }

        lock (Names)
        {
            var lower = channel.ToLowerInvariant();
            if (Indexes.TryGetValue(lower, out index))
            {
                return index;
            }

            if (s_count >= MaxDistinct - 1)
            {
                return MaxDistinct - 1; // other
            }

            Names[s_count] = lower;
            Indexes[lower] = s_count;
            return s_count++;
        }
    }
}
