using Segmentation.Core.Privacy;

namespace Segmentation.Server.Hosting;

/// <summary>Privacy configuration, section <c>Segmentation:Privacy</c>.</summary>
public sealed class PrivacyOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation:Privacy";

    /// <summary>
    /// When true, personalization needs a recorded grant: a user who never recorded personalization consent
    /// is decided on the request context only. When false (the default), personalization is granted until
    /// withdrawn (legitimate interest). Every other purpose always needs a recorded grant.
    /// </summary>
    public bool RequireExplicitConsent { get; set; }

    /// <summary>Event retention.</summary>
    public RetentionOptions Retention { get; set; } = new();

    /// <summary>The domain consent policy.</summary>
    public ConsentPolicy ToConsentPolicy() => new(RequireExplicitConsent);

    /// <summary>
    /// The domain retention policy (a zero age keeps events forever). Event types are lower case, and a configuration key
    /// keeps the case it was given in (an environment variable is often upper case): keys are read in lower case.
    /// </summary>
    public RetentionPolicy ToRetentionPolicy() => new(
        Age(Retention.Default),
        Retention.EventTypes.ToDictionary(t => t.Key.ToLowerInvariant(), t => Age(t.Value), StringComparer.Ordinal));

    /// <summary>Problems with the configuration, empty when valid.</summary>
    public IEnumerable<string> Problems()
    {
        if (Retention.Default < TimeSpan.Zero)
        {
            yield return "Segmentation:Privacy:Retention:Default must not be negative (0 keeps events forever)";
        }

        var types = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (type, age) in Retention.EventTypes)
        {
            if (age < TimeSpan.Zero)
            {
                yield return $"Segmentation:Privacy:Retention:EventTypes:{type} must not be negative (0 keeps them forever)";
            }

            // A misspelt type would keep its events for the default age without a word.
            var named = type.ToLowerInvariant();
            if (!Core.Events.EventTypes.IsKnown(named))
            {
                yield return $"Segmentation:Privacy:Retention:EventTypes:{type} is not an event type (built in: {string.Join(", ", Core.Events.EventTypes.BuiltIn.Order(StringComparer.Ordinal))}; custom ones start with '{Core.Events.EventTypes.CustomPrefix}')";
            }
            else if (!types.Add(named))
            {
                yield return $"Segmentation:Privacy:Retention:EventTypes names {named} twice (keys are read in lower case)";
            }
        }

        if (Retention.SweepInterval < TimeSpan.FromSeconds(1) || Retention.SweepInterval > MaxSweepInterval)
        {
            // Past about 49.7 days the sweep's timer cannot be set: the job failed after a start that looked fine.
            yield return "Segmentation:Privacy:Retention:SweepInterval must be from 1 second to 30 days";
        }
    }

    /// <summary>Longest time between retention sweeps.</summary>
    public static readonly TimeSpan MaxSweepInterval = TimeSpan.FromDays(30);

    private static TimeSpan? Age(TimeSpan age) => age == TimeSpan.Zero ? null : age;
}

/// <summary>Event retention, section <c>Segmentation:Privacy:Retention</c>.</summary>
public sealed class RetentionOptions
{
    /// <summary>Age after which events of types not listed in <see cref="EventTypes"/> expire. Default 730 days; 0 keeps them forever.</summary>
    public TimeSpan Default { get; set; } = TimeSpan.FromDays(730);

    /// <summary>Ages per event type, for example <c>page_view = 90.00:00:00</c>; 0 keeps that type forever.</summary>
    public Dictionary<string, TimeSpan> EventTypes { get; set; } = new(StringComparer.Ordinal);

    /// <summary>How often expired events are removed (and storage compacted afterwards). Default 1 hour; also runs at start-up.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromHours(1);
}
