using Segmentation.Core.Profiles;

namespace Segmentation.Core.Privacy;

/// <summary>
/// How long events are kept (data is kept only as long as needed): a default age and optional ages per
/// event type. An event older than its type's age no longer counts in aggregates, is removed from the
/// profile by the application's retention sweep, is rejected at ingest, and is removed again by the sweep that follows a restart's replay.
/// A null age means "kept forever".
/// </summary>
public sealed class RetentionPolicy
{
    private readonly Dictionary<string, TimeSpan?> _byType;

    /// <summary>Creates a policy.</summary>
    /// <param name="defaultAge">Age after which events of a type not listed in <paramref name="byType"/> expire; null keeps them forever.</param>
    /// <param name="byType">Ages per event type (null keeps that type forever).</param>
    public RetentionPolicy(TimeSpan? defaultAge, IReadOnlyDictionary<string, TimeSpan?>? byType = null)
    {
        if (defaultAge is { } d && d <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(defaultAge), "a retention age must be positive (null keeps events forever)");
        }

        Default = defaultAge;
        _byType = new Dictionary<string, TimeSpan?>(StringComparer.Ordinal);
        foreach (var (type, age) in byType ?? new Dictionary<string, TimeSpan?>())
        {
            if (age is { } a && a <= TimeSpan.Zero)
            {
                throw new ArgumentOutOfRangeException(nameof(byType), $"the retention age of '{type}' must be positive (null keeps them forever)");
            }

            _byType[type] = age;
        }
    }

    /// <summary>A policy that keeps every event forever.</summary>
    public static RetentionPolicy KeepForever { get; } = new(null);

    /// <summary>The default age (null: forever).</summary>
    public TimeSpan? Default { get; }

    /// <summary>True when no event type ever expires.</summary>
    public bool IsKeepForever => Default is null && _byType.Values.All(a => a is null);

    /// <summary>The age after which events of <paramref name="type"/> expire (null: never).</summary>
    public TimeSpan? For(string type) => _byType.TryGetValue(type, out var age) ? age : Default;

    /// <summary>True when an event of <paramref name="type"/> at <paramref name="ticks"/> has expired at <paramref name="nowTicks"/>.</summary>
    public bool IsExpired(string type, long ticks, long nowTicks) => For(type) is { } age && ticks < nowTicks - age.Ticks;

    /// <summary>True when a stored event has expired at <paramref name="nowTicks"/>.</summary>
    public bool IsExpired(StoredEvent e, long nowTicks) => IsExpired(e.Type, e.Ticks, nowTicks);
}
