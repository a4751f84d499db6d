namespace Segmentation.Core.Validation;

/// <summary>
/// "Did you mean" for names a catalog author mistyped (keys, fields, traits, operators, event types): the closest
/// candidate by edit distance (Quickenshtein's Levenshtein), when it is close enough to be the likely intent.
/// </summary>
public static class Suggestions
{
    /// <summary>
    /// The candidate closest to <paramref name="input"/> (ignoring case), or null when none is within about one edit per
    /// three characters (one up to 3 characters, two up to 6, three beyond): a suggestion must look like a typo, not a guess.
    /// </summary>
    public static string? Closest(string? input, IEnumerable<string> candidates)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (string.IsNullOrEmpty(input))
        {
            return null;
        }

        var lower = input.ToLowerInvariant();
        var allowed = Math.Clamp((input.Length + 2) / 3, 1, 3); // two for 4-6 characters: a swapped pair is two edits
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            if (string.Equals(candidate, input, StringComparison.Ordinal))
            {
                return null; // not a typo
            }

            var distance = Quickenshtein.Levenshtein.GetDistance(lower, candidate.ToLowerInvariant());
            if (distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }

        return bestDistance <= allowed ? best : null;
    }

    /// <summary><c>; did you mean 'x'?</c> for the closest candidate, or an empty string when none is close.</summary>
    public static string DidYouMean(string? input, IEnumerable<string> candidates) =>
        Closest(input, candidates) is { } closest ? $"; did you mean '{closest}'?" : "";
}
