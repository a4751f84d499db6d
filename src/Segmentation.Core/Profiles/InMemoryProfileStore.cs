using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles;

/// <summary>
/// The hot in-memory profile store. Each user has its own lock for writes; readers get the current
/// immutable snapshot with one volatile read, so a write never blocks Decide for anyone.
/// </summary>
public sealed class InMemoryProfileStore : IProfileStore
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _links = new(StringComparer.Ordinal);
    private long _version;

    /// <inheritdoc />
    public int Count => _entries.Count(e => e.Value.Current is not null);

    /// <inheritdoc />
    public Profile? Get(string key) => _entries.TryGetValue(Resolve(key), out var e) ? e.Current : null;

    /// <inheritdoc />
    public string Resolve(string key) => _links.TryGetValue(key, out var target) ? target : key;

    /// <inheritdoc />
    public IReadOnlyList<string> LinkedIds(string key) =>
        _entries.TryGetValue(Resolve(key), out var e) ? e.Aliases : [];

    /// <inheritdoc />
    public (Profile? Profile, IReadOnlyList<string> LinkedIds) Capture(string key)
    {
        while (true)
        {
            if (!_entries.TryGetValue(Resolve(key), out var entry))
            {
                return (null, []);
            }

            lock (entry)
            {
                if (!entry.Retired)
                {
                    return (entry.Current, entry.Aliases);
                }
            }
        }
    }

    // The recordings of merge targets in progress (a compaction's walk); replaced whole, read without a lock.
    private MergeRecording[] _recordings = [];
    private readonly Lock _recordingsGate = new();

    /// <inheritdoc />
    public MergeRecording RecordMerges()
    {
        var recording = new MergeRecording(Stop);
        lock (_recordingsGate)
        {
            Volatile.Write(ref _recordings, [.. _recordings, recording]);
        }

        return recording;

        void Stop(MergeRecording done)
        {
            lock (_recordingsGate)
            {
                Volatile.Write(ref _recordings, [.. _recordings.Where(r => !ReferenceEquals(r, done))]);
            }
        }
    }

    /// <inheritdoc />
    public void Restore(Profile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var entry = _entries.GetOrAdd(profile.UserId, static _ => new Entry());
        lock (entry)
        {
            if (entry.Current is null || profile.Version > entry.Current.Version)
            {
                entry.Current = profile; // a snapshot may hold a user twice (a merge during its capture): the later version wins
            }
        }

        RaiseVersion(profile.Version);
    }

    /// <inheritdoc />
    public long Version => Interlocked.Read(ref _version);

    /// <inheritdoc />
    public void RaiseVersion(long version)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _version)) < version && Interlocked.CompareExchange(ref _version, version, seen) != seen)
        {
        }
    }

    /// <inheritdoc />
    public void RestoreLinks(string key, IReadOnlyList<string> aliases)
    {
        ArgumentNullException.ThrowIfNull(aliases);
        if (aliases.Count == 0)
        {
            return;
        }

        var entry = _entries.GetOrAdd(key, static _ => new Entry());
        lock (entry)
        {
            foreach (var alias in aliases)
            {
                _links[alias] = key;

                // A profile captured under the alias before it was merged is stale: its data is in the target.
                _entries.TryRemove(alias, out _);
            }

            entry.Aliases = [.. entry.Aliases.Union(aliases, StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        }
    }

    /// <inheritdoc />
    public ProfileUpdate Update(string key, Func<Profile, long, Profile> mutate, long atVersion = 0) =>
        Update(key, mutate, static (p, v, m) => m(p, v), atVersion);

    /// <inheritdoc />
    public ProfileUpdate Update<TState>(string key, TState state, Func<Profile, long, TState, Profile> mutate, long atVersion = 0)
    {
        while (true)
        {
            var resolved = Resolve(key);
            var entry = _entries.GetOrAdd(resolved, static _ => new Entry());
            lock (entry)
            {
                if (entry.Retired)
                {
                    continue; // merged away meanwhile: follow the new link
                }

                var before = entry.Current;
                var current = before ?? new Profile(resolved);
                var after = mutate(current, NextVersion(atVersion), state);
                if (ReferenceEquals(after, current))
                {
                    return new ProfileUpdate(before, before ?? current);
                }

                entry.Current = after;
                return new ProfileUpdate(before, after);
            }
        }
    }

    /// <inheritdoc />
    public ProfileUpdate Merge(string fromKey, string intoKey, Func<Profile, Profile?, long, Profile> merge, long atVersion = 0)
    {
        while (true)
        {
            var target = Resolve(intoKey);
            var source = Resolve(fromKey);
            if (source == target)
            {
                var existing = Get(target) ?? new Profile(target);
                return new ProfileUpdate(existing, existing);
            }

            var into = _entries.GetOrAdd(target, static _ => new Entry());
            var from = _entries.GetOrAdd(source, static _ => new Entry());

            // Lock both entries in a fixed order so concurrent merges cannot deadlock.
            var (first, second) = string.CompareOrdinal(target, source) < 0 ? (into, from) : (from, into);
            lock (first)
            {
                lock (second)
                {
                    if (into.Retired || from.Retired)
                    {
                        continue; // merged away or erased meanwhile: resolve again
                    }

                    var before = into.Current;
                    var current = before ?? new Profile(target);
                    var after = merge(current, from.Current, NextVersion(atVersion));
                    into.Current = after;
                    from.Current = null;
                    from.Retired = true;
                    _links[source] = target;
                    _entries.TryRemove(new KeyValuePair<string, Entry>(source, from));

                    // Anything that pointed at the source now points at the target.
                    foreach (var alias in from.Aliases)
                    {
                        _links[alias] = target;
                    }

                    into.Aliases = [.. into.Aliases.Append(source).Concat(from.Aliases).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
                    from.Aliases = [];
                    foreach (var recording in Volatile.Read(ref _recordings))
                    {
                        recording.Add(target);
                    }

                    return new ProfileUpdate(before, after);
                }
            }
        }
    }

    /// <inheritdoc />
    public ProfileRemoval Remove(string key, Action<string, Profile?, IReadOnlyList<string>>? beforeRemove = null)
    {
        while (true)
        {
            var resolved = Resolve(key);
            var entry = _entries.GetOrAdd(resolved, static _ => new Entry());
            lock (entry)
            {
                if (entry.Retired)
                {
                    continue; // merged away or erased meanwhile: follow the current link
                }

                IReadOnlyList<string> linked = entry.Aliases;
                var removed = entry.Current;
                beforeRemove?.Invoke(resolved, removed, linked);
                entry.Current = null;
                entry.Retired = true;
                entry.Aliases = [];
                _entries.TryRemove(new KeyValuePair<string, Entry>(resolved, entry));
                foreach (var alias in linked)
                {
                    _links.TryRemove(new KeyValuePair<string, string>(alias, resolved));
                }

                return new ProfileRemoval(resolved, removed, linked);
            }
        }
    }

    /// <inheritdoc />
    public IEnumerable<Profile> Snapshot()
    {
        foreach (var (_, entry) in _entries)
        {
            if (entry.Current is { } p)
            {
                yield return p;
            }
        }
    }

    /// <inheritdoc />
    public IEnumerable<string> Keys()
    {
        foreach (var (key, _) in _entries)
        {
            yield return key;
        }
    }

    // The version of the next write: the given one for a replayed change (later versions stay above it), else a new one.
    private long NextVersion(long atVersion)
    {
        if (atVersion > 0)
        {
            RaiseVersion(atVersion);
            return atVersion;
        }

        return Interlocked.Increment(ref _version);
    }

    // Locked with Monitor on the entry itself: a separate Lock object would cost 40 bytes per user.
    private sealed class Entry
    {
        private volatile Profile? _current;

        public Profile? Current
        {
            get => _current;
            set => _current = value;
        }

        public bool Retired { get; set; }

        /// <summary>Ids linked to this profile, sorted; replaced (never mutated) under the entry's lock.</summary>
        public string[] Aliases { get; set; } = [];
    }
}
