using System.Collections.Concurrent;
using Segmentation.Core.Events;

namespace Segmentation.Core.Profiles;

/// <summary>
/// The hot in-memory profile store. Each user has its own lock for writes; readers get the current
/// immutable snapshot with one volatile read, so a write never blocks Decide for anyone.
/// </summary>
public sealed class InMemoryProfileStore : IProfileStore
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private long _version;

    /// <inheritdoc />
    public int Count => _entries.Count;

    /// <inheritdoc />
    public Profile? Get(string userId) => _entries.TryGetValue(userId, out var e) ? e.Current : null;

    /// <inheritdoc />
    public TrackResult Track(BehaviourEvent e)
    {
        var entry = _entries.GetOrAdd(e.ProfileKey, static k => new Entry(new Profile(k)));
        lock (entry.Gate)
        {
            var current = entry.Current;
            if (current.EventIds.Contains(e.EventId))
            {
                return new TrackResult(current, Duplicate: true);
            }

            var next = current.Apply(e, NextVersion());
            entry.Current = next;
            return new TrackResult(next, Duplicate: false);
        }
    }

    /// <inheritdoc />
    public SetTraitsResult SetAttributes(string userId, IReadOnlyList<ProfileAttribute> attributes)
    {
        var entry = _entries.GetOrAdd(userId, static k => new Entry(new Profile(k)));
        lock (entry.Gate)
        {
            var profile = entry.Current;
            var version = NextVersion();
            var applied = new List<string>();
            var ignored = new List<string>();
            foreach (var attribute in attributes)
            {
                if (profile.TrySetAttribute(attribute, version, out var next))
                {
                    profile = next;
                    applied.Add(attribute.Name);
                }
                else
                {
                    ignored.Add(attribute.Name);
                }
            }

            entry.Current = profile;
            return new SetTraitsResult(profile, applied, ignored);
        }
    }

    /// <inheritdoc />
    public IEnumerable<Profile> Snapshot()
    {
        foreach (var (_, entry) in _entries)
        {
            yield return entry.Current;
        }
    }

    private long NextVersion() => Interlocked.Increment(ref _version);

    private sealed class Entry(Profile initial)
    {
        public readonly Lock Gate = new();
        private volatile Profile _current = initial;

        public Profile Current
        {
            get => _current;
            set => _current = value;
        }
    }
}
