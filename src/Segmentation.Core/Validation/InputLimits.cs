namespace Segmentation.Core.Validation;

/// <summary>
/// The documented bounds of what a caller may send, in one place: every request check and every error
/// message reads them from here (docs/security.md lists them for callers).
/// </summary>
public static class InputLimits
{
    /// <summary>
    /// <paramref name="text"/> cut to at most <paramref name="max"/> characters, ending in "…" when cut: what the service
    /// writes back of a caller's text (errors, audit entries, dead letters) stays bounded whatever was sent.
    /// </summary>
    public static string Bounded(string text, int max)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        return text.Length <= max ? text : string.Concat(text.AsSpan(0, max - 1), "…");
    }

    /// <summary>Longest user, anonymous or session id.</summary>
    public const int MaxIdLength = 256;

    /// <summary>Longest source name of a write (the system that sent it).</summary>
    public const int MaxSourceLength = 64;

    /// <summary>
    /// Longest comment of a published catalog version. Every kept version's comment goes out with each catalog read
    /// (its history), so one long comment would make every later read too large for a client's default message limit.
    /// </summary>
    public const int MaxCommentLength = 1000;

    /// <summary>Longest trait name.</summary>
    public const int MaxTraitNameLength = 64;

    /// <summary>Most traits one write may set.</summary>
    public const int MaxTraitsPerWrite = 100;

    /// <summary>Longest string trait value.</summary>
    public const int MaxStringTraitLength = 1024;

    /// <summary>Most values of a list trait.</summary>
    public const int MaxListValues = 100;

    /// <summary>Longest value of a list trait.</summary>
    public const int MaxListValueLength = 256;

    /// <summary>Most events one bulk call may carry (a stream has no such bound).</summary>
    public const int MaxEventsPerCall = 1000;

    /// <summary>Throws <see cref="ValidationException"/> on <c>events</c> when a bulk call carries none or more than <see cref="MaxEventsPerCall"/>.</summary>
    public static void CheckEventsPerCall(int count)
    {
        if (count == 0)
        {
            throw new ValidationException("events", $"at least one event is required (1 to {MaxEventsPerCall})");
        }

        if (count > MaxEventsPerCall)
        {
            throw new ValidationException("events", $"at most {MaxEventsPerCall} events per call (got {count}); use StreamEvents for more");
        }
    }

    /// <summary>
    /// Most consent records one profile's trail holds: a trail is never trimmed (it is the evidence of what the user
    /// agreed to, and when), so past this many a new grant or withdrawal is refused until the user is erased.
    /// </summary>
    public const int MaxConsentRecordsPerProfile = 10_000;

    /// <summary>The default of the most events one profile holds.</summary>
    public const int MaxEventsPerProfile = 1_000_000;

    /// <summary>
    /// The most anonymous or session ids one user may have stitched to it (every device, browser and session that later
    /// identified): each link is kept with the profile and copied when another merges in, so without a bound a caller
    /// stitching every request's id to one user would grow it without end. A stitch past it is refused until the user
    /// is erased; replays of the change log are not held to it.
    /// </summary>
    public const int MaxLinkedIdsPerProfile = 1_000;

    /// <summary>The earliest timestamp a trait may hold (time arithmetic over stored times never leaves the representable range).</summary>
    public static readonly DateTimeOffset EarliestTimestamp = new(1800, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The first timestamp a trait may no longer hold.</summary>
    public static readonly DateTimeOffset LatestTimestamp = new(2200, 1, 1, 0, 0, 0, TimeSpan.Zero);
}
