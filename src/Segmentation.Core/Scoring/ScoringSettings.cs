using Segmentation.Core.Rules;

namespace Segmentation.Core.Scoring;

/// <summary>One behavioural lead-scoring signal: points per matching event in a window, capped.</summary>
/// <param name="Name">Signal name, for explanations.</param>
/// <param name="EventType">Event type that counts.</param>
/// <param name="PageType">When set, only events on this page type count (e.g. pricing).</param>
/// <param name="Category">When set, only events with this category count (e.g. the form kind demo_request).</param>
/// <param name="Points">Points per event; negative for negative signals.</param>
/// <param name="Cap">Largest total (smallest, for negative signals) the signal can contribute.</param>
/// <param name="Window">Only events within this window count; null means lifetime.</param>
public sealed record LeadSignal(string Name, string EventType, string? PageType, string? Category, int Points, int Cap, TimeSpan? Window)
{
    /// <summary>The scoring category it is reported under: <c>group</c> in the catalog, else behavioural (negative for negative points).</summary>
    public string Group { get; init; } = Points < 0 ? LeadGroups.Negative : LeadGroups.Behavioural;

    /// <summary>How many matching events take the signal to its cap (points × count is clamped to the cap): more change nothing.</summary>
    internal int Saturation => Points == 0 ? 0 : (int)Math.Max(0, Math.Ceiling(Cap / (double)Points));
}

/// <summary>The scoring categories of the framework's lead-scoring model.</summary>
public static class LeadGroups
{
    /// <summary>Demographic and firmographic fit.</summary>
    public const string Demographic = "demographic";

    /// <summary>What the lead does (pricing pages, demo requests, downloads).</summary>
    public const string Behavioural = "behavioural";

    /// <summary>How engaged the lead is (email, webinars, return visits).</summary>
    public const string Engagement = "engagement";

    /// <summary>Signals that take points away (unsubscribes, inactivity).</summary>
    public const string Negative = "negative";

    /// <summary>Every category, in report order.</summary>
    public static readonly IReadOnlyList<string> All = [Demographic, Behavioural, Engagement, Negative];
}

/// <summary>A fit criterion of lead scoring (demographic or firmographic fit): a compiled rule and its points.</summary>
public sealed record LeadFit(string Name, RuleNode Rule, int Points)
{
    /// <summary>The scoring category it is reported under: <c>group</c> in the catalog, else demographic (negative for negative points).</summary>
    public string Group { get; init; } = Points < 0 ? LeadGroups.Negative : LeadGroups.Demographic;
}

/// <summary>Lead scoring configuration, set in the catalog under <c>scoring.lead</c>.</summary>
public sealed record LeadScoring
{
    /// <summary>The framework's default weights, used when the catalog sets none.</summary>
    public static readonly LeadScoring Default = new()
    {
        Signals =
        [
            new("pricing_page_view", "page_view", "pricing", null, 10, 20, TimeSpan.FromDays(30)),
            new("demo_request", "form_submit", null, "demo_request", 30, 30, TimeSpan.FromDays(90)),
            new("content_download", "form_submit", null, "content_download", 10, 20, TimeSpan.FromDays(90)),
            new("webinar_attendance", "form_submit", null, "webinar", 15, 15, TimeSpan.FromDays(90)) { Group = LeadGroups.Engagement },
            new("email_click", "email_click", null, null, 5, 15, TimeSpan.FromDays(30)) { Group = LeadGroups.Engagement },
            new("email_open", "email_open", null, null, 1, 5, TimeSpan.FromDays(30)) { Group = LeadGroups.Engagement },
            new("return_visit", "return_visit", null, null, 5, 10, TimeSpan.FromDays(30)) { Group = LeadGroups.Engagement },
            new("email_unsubscribe", "email_unsubscribe", null, null, -20, -20, null),
        ],
    };

    /// <summary>Behavioural and negative signals.</summary>
    public IReadOnlyList<LeadSignal> Signals { get; init; } = [];

    /// <summary>Fit criteria over traits.</summary>
    public IReadOnlyList<LeadFit> Fit { get; init; } = [];

    /// <summary>No event for this long is the "inactive" negative signal.</summary>
    public TimeSpan InactiveAfter { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Points of the inactive signal (negative).</summary>
    public int InactivePoints { get; init; } = -15;

    /// <summary>Lowest warm score (cold below).</summary>
    public int Warm { get; init; } = 31;

    /// <summary>Lowest hot score.</summary>
    public int Hot { get; init; } = 51;

    /// <summary>Lowest sales-ready score.</summary>
    public int SalesReady { get; init; } = 81;

    /// <summary>
    /// The model as the framework's lead-scoring table: fit criteria (their rule in the text syntax), then event
    /// signals (what counts, and over which window), then the inactivity signal.
    /// </summary>
    public IReadOnlyList<LeadScoringRow> Table()
    {
        var rows = new List<LeadScoringRow>(Fit.Count + Signals.Count + 1);
        rows.AddRange(Fit.Select(f => new LeadScoringRow(f.Group, f.Name, f.Rule.Text, f.Points, f.Points)));
        rows.AddRange(Signals.Select(s => new LeadScoringRow(
            s.Group,
            s.Name,
            s.EventType
                + (s.PageType is { } page ? $" on page type {page}" : "")
                + (s.Category is { } category ? $" of category {category}" : "")
                + (s.Window is { } window ? $", within {Duration.Format(window)}" : ", lifetime"),
            s.Points,
            s.Cap)));
        rows.Add(new LeadScoringRow(LeadGroups.Negative, "inactive", $"no event for {Duration.Format(InactiveAfter)}", InactivePoints, InactivePoints));
        return rows;
    }
}

/// <summary>One row of the lead-scoring table.</summary>
/// <param name="Category">demographic, behavioural, engagement or negative.</param>
/// <param name="Name">The signal's name.</param>
/// <param name="Description">What counts.</param>
/// <param name="Points">Points per occurrence.</param>
/// <param name="Cap">The most (least, for negative signals) it adds in total.</param>
public sealed record LeadScoringRow(string Category, string Name, string Description, int Points, int Cap);

/// <summary>Settings of derived data, set in the catalog under <c>scoring</c>.</summary>
public sealed record ScoringSettings
{
    /// <summary>Defaults for a catalog without a <c>scoring</c> section.</summary>
    public static readonly ScoringSettings Default = new();

    /// <summary>A cart with items and no change for this long is abandoned.</summary>
    public TimeSpan CartAbandonmentAfter { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Half-life of category and product affinity: an interaction this old counts half.</summary>
    public TimeSpan AffinityHalfLife { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Lead scoring.</summary>
    public LeadScoring Lead { get; init; } = LeadScoring.Default;
}
