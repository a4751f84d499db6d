using Segmentation.Core.Events;

namespace Segmentation.Core.Profiles;

/// <summary>Result of recording one event.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Duplicate">True when the event id had been recorded before; nothing changed.</param>
public readonly record struct TrackResult(Profile Profile, bool Duplicate);

/// <summary>Result of a traits write.</summary>
/// <param name="Profile">The profile after the write.</param>
/// <param name="Applied">Names whose value was stored.</param>
/// <param name="Ignored">Names not stored because a more reliable layer holds them (F2).</param>
public sealed record SetTraitsResult(Profile Profile, IReadOnlyList<string> Applied, IReadOnlyList<string> Ignored);

/// <summary>
/// The profile store seam. The embedded default is <see cref="InMemoryProfileStore"/>; a shared store
/// can replace it. Writes for one user are atomic; reads return immutable snapshots without locking.
/// </summary>
public interface IProfileStore
{
    /// <summary>The current snapshot of a profile, or null when the user is unknown.</summary>
    Profile? Get(string userId);

    /// <summary>Applies a validated event to its profile, creating the profile when needed.</summary>
    TrackResult Track(BehaviourEvent e);

    /// <summary>Writes attributes to a profile, honouring the layer hierarchy.</summary>
    SetTraitsResult SetAttributes(string userId, IReadOnlyList<ProfileAttribute> attributes);

    /// <summary>Number of profiles.</summary>
    int Count { get; }

    /// <summary>A moment-in-time enumeration of all profiles (for population statistics).</summary>
    IEnumerable<Profile> Snapshot();
}
