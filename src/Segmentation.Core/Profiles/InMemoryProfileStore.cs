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
    private int _count;                 // profiles held (entries with a current profile), kept by Set
    private volatile PendingCapture? _capture;
    private int _lastCaptureId;

    /// <inheritdoc />
    public int Count => Volatile.Read(ref _count);

    /// <inheritdoc />
    public Profile? Get(string key)
    {
        var resolved = Resolve(key);
        AfterReadResolve?.Invoke(key);
        return _entries.TryGetValue(resolved, out var e) && e.Current is { } profile ? profile : GetAgain(key, resolved);
    }

    // A read found nothing where its id led. A merge may have linked the id after it was resolved and cleared the
    // source since; the merge sets the link before it clears, so a second resolve finds where the id leads now (again
    // after each merge of the target meanwhile). An id whose link did not change holds nothing.
    private Profile? GetAgain(string key, string resolved)
    {
        for (var again = Resolve(key); again != resolved; again = Resolve(key))
        {
            resolved = again;
            if (_entries.TryGetValue(resolved, out var e) && e.Current is { } profile)
            {
                return profile;
            }
        }

        return null;
    }

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
            var resolved = Resolve(key);
            AfterReadResolve?.Invoke(key);
            if (!_entries.TryGetValue(resolved, out var entry))
            {
                if (Resolve(key) != resolved)
                {
                    continue; // merged away since it was resolved: follow the link the merge set
                }

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
                Set(entry, profile, _capture); // a snapshot may hold a user twice (a merge during its capture): the later version wins
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
            var linkedAt = entry.Current?.Version ?? long.MaxValue;
            var kept = new List<string>(aliases.Count);
            foreach (var alias in aliases)
            {
                // A profile under the alias written after the holder was captured (so after the merge that linked them):
                // the link was dropped since (an erasure of the holder) and the id reused; the log replays the rest.
                if (_entries.TryGetValue(alias, out var own) && own.Current is { } later && later.Version > linkedAt)
                {
                    continue;
                }

                kept.Add(alias);
                _links[alias] = key;

                // A profile captured under the alias before it was merged is stale: its data is in the target.
                if (_entries.TryRemove(alias, out var stale) && stale.Current is not null)
                {
                    Interlocked.Decrement(ref _count); // links are restored before anything else writes: nobody holds the stale entry
                }
            }

            entry.Aliases = [.. entry.Aliases.Union(kept, StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        }
    }

    /// <inheritdoc />
    public ProfileUpdate Update(string key, Func<Profile, long, Profile> mutate, long atVersion = 0) =>
        Update(key, mutate, static (p, v, m) => m(p, v), atVersion);

    /// <inheritdoc />
    public ProfileUpdate Update<TState>(string key, TState state, Func<Profile, long, TState, Profile> mutate, long atVersion = 0)
    {
        var entry = LockEntry(key, wait: true, out var resolved)!;
        try
        {
            var before = entry.Current;
            var current = before ?? new Profile(resolved);
            var after = mutate(current, NextVersion(atVersion), state);
            if (ReferenceEquals(after, current))
            {
                return new ProfileUpdate(before, before ?? current);
            }

            Set(entry, after, _capture);
            return new ProfileUpdate(before, after);
        }
        finally
        {
            Monitor.Exit(entry);
        }
    }

    // The entry that key resolves to, locked (Monitor on the entry; the caller exits it), and the key it is stored
    // under; a merge or relink that moved the id meanwhile is followed. Without wait, null when another thread holds the
    // entry (a thread that holds it already enters it again: Monitor is reentrant).
    private Entry? LockEntry(string key, bool wait, out string resolved)
    {
        while (true)
        {
            resolved = Resolve(key);
            AfterResolve?.Invoke(key);
            var entry = _entries.GetOrAdd(resolved, static _ => new Entry());
            if (wait)
            {
                Monitor.Enter(entry);
            }
            else if (!Monitor.TryEnter(entry))
            {
                return null;
            }

            if (entry.Retired)
            {
                Monitor.Exit(entry);
                continue; // merged away meanwhile: follow the new link
            }

            if (entry.Current is null && Resolve(key) != resolved)
            {
                // The id leads elsewhere since it was resolved (a merge linked it, an erasure dropped its link) and
                // this entry may have been made for the stale target: follow the id as it is now. Only an entry
                // without a profile can be such a one: a live profile's entry is retired whenever its ids move.
                DropIfUnused(resolved, entry);
                Monitor.Exit(entry);
                continue;
            }

            return entry;
        }
    }

    /// <inheritdoc />
    public ProfileUpdate Merge(string fromKey, string intoKey, Func<Profile, Profile?, long, Profile> merge, long atVersion = 0, int maxLinkedIds = int.MaxValue, bool onlyUnlinkedSource = false)
    {
        while (true)
        {
            var target = Resolve(intoKey);
            var source = Resolve(fromKey);
            AfterResolve?.Invoke(fromKey);
            if (source == target)
            {
                var existing = Get(target) ?? new Profile(target);
                return new ProfileUpdate(existing, existing);
            }

            if (onlyUnlinkedSource && source != fromKey)
            {
                // Checked on every pass: a concurrent merge that links fromKey retires its entry, and this loop resolves again.
                throw new Validation.PreconditionFailedException("this anonymous_id is already linked to another user (a shared device or browser): it is not merged into a second user; send the new user's events under a new anonymous id");
            }

            var into = _entries.GetOrAdd(target, static _ => new Entry());
            if (into.Aliases.Length >= maxLinkedIds)
            {
                throw LinkedIdsExceeded(into, 1, maxLinkedIds); // before the source gets an entry: refused ids leave nothing behind
            }

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

                    if (Resolve(intoKey) != target || Resolve(fromKey) != source)
                    {
                        // An id leads elsewhere since it was resolved (a concurrent merge linked it, an erasure dropped
                        // its link), and an entry may have been made here for the stale target or source: resolve again,
                        // so a check on the source (onlyUnlinkedSource) always sees the link as it is under the locks.
                        DropIfUnused(target, into);
                        DropIfUnused(source, from);
                        continue;
                    }

                    if (into.Aliases.Length + 1 + from.Aliases.Length > maxLinkedIds)
                    {
                        DropIfUnused(source, from); // the target filled up since the first check; the source's entry may be this merge's

                        throw LinkedIdsExceeded(into, 1 + from.Aliases.Length, maxLinkedIds);
                    }

                    var before = into.Current;
                    var current = before ?? new Profile(target);
                    var after = merge(current, from.Current, NextVersion(atVersion));
                    var capture = _capture; // one capture for both sides: the merge is wholly before or after its start
                    Set(into, after, capture);

                    // The source and anything that pointed at it lead to the target before the source's profile is
                    // cleared: a reader (who takes no lock) finds the old profile or the merged one, never none.
                    _links[source] = target;
                    foreach (var alias in from.Aliases)
                    {
                        _links[alias] = target;
                    }

                    Set(from, null, capture);
                    AfterMergedSourceCleared?.Invoke(source);
                    from.Retired = true;
                    _entries.TryRemove(new KeyValuePair<string, Entry>(source, from));

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

    /// <summary>Test hook: runs in <see cref="Merge"/> once the source's profile is cleared, under both locks.</summary>
    internal Action<string>? AfterMergedSourceCleared { get; set; }

    /// <summary>Test hook: runs in <see cref="Update{TState}"/> and <see cref="Merge"/> after the keys are resolved, before their entries are taken (to force interleavings).</summary>
    internal Action<string>? AfterResolve { get; set; }

    /// <summary>Test hook: runs in <see cref="Get"/> and <see cref="Capture"/> after the key is resolved, before its entry is read.</summary>
    internal Action<string>? AfterReadResolve { get; set; }

    // Removes an entry made for a write that then found its id leading elsewhere, when nothing was ever stored in it.
    // Under the entry's lock.
    private void DropIfUnused(string key, Entry entry)
    {
        if (entry.Current is null && entry.Aliases.Length == 0)
        {
            entry.Retired = true;
            _entries.TryRemove(new KeyValuePair<string, Entry>(key, entry));
        }
    }

    private static Validation.LimitExceededException LinkedIdsExceeded(Entry into, int brought, int max) =>
        new($"the user has {into.Aliases.Length:N0} linked ids and this would link {brought:N0} more, past the {max:N0} one profile may hold; nothing was linked or merged");

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

                // The links go first: a write that resolved a linked id to this profile and finds the entry gone
                // resolves again to the id itself, instead of making a new entry under the erased id.
                foreach (var alias in linked)
                {
                    _links.TryRemove(new KeyValuePair<string, string>(alias, resolved));
                }

                Set(entry, null, _capture);
                entry.Retired = true;
                entry.Aliases = [];
                _entries.TryRemove(new KeyValuePair<string, Entry>(resolved, entry));

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

    // Replaces the entry's profile (under the entry's lock): what a capture in progress has not read yet is kept for it first.
    private void Set(Entry entry, Profile? profile, PendingCapture? capture)
    {
        var before = entry.Current;
        capture?.Keep(entry);
        entry.Current = profile;
        if (before is null != profile is null)
        {
            Interlocked.Add(ref _count, profile is null ? -1 : 1);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Starting costs nothing: <see cref="StoreCapture.Take"/> reads each user's entry under its lock, and a write to an
    /// entry it has not read yet keeps the replaced (or removed, or merged away) profile for it, so the capture is the
    /// store as it was here however long the reading takes; writes are never held.
    /// </remarks>
    public StoreCapture BeginCapture()
    {
        var capture = new PendingCapture(this, Interlocked.Increment(ref _lastCaptureId));
        if (Interlocked.CompareExchange(ref _capture, capture, null) is not null)
        {
            throw new InvalidOperationException("a capture of the store is already in progress (one at a time)");
        }

        return capture;
    }

    private sealed class PendingCapture(InMemoryProfileStore store, int id) : StoreCapture
    {
        private readonly List<Profile> _kept = [];
        private bool _closed;
        private int _taken;

        // Under the entry's lock, before a write replaces or removes its profile: the first write to an entry not
        // yet read keeps the profile it had when the capture began (later writes find the entry marked).
        public void Keep(Entry entry)
        {
            if (entry.CapturedBy == id)
            {
                return;
            }

            entry.CapturedBy = id;
            if (entry.Current is { } profile)
            {
                lock (_kept)
                {
                    if (!_closed)
                    {
                        _kept.Add(profile); // after closing, the reading has passed every entry: it holds the profile already
                    }
                }
            }
        }

        public override void Dispose()
        {
            if (Interlocked.Exchange(ref _taken, 1) == 0)
            {
                End(); // never read: writes stop keeping profiles for it, and what they kept goes
                lock (_kept)
                {
                    _kept.Clear();
                }
            }
        }

        private void End()
        {
            lock (_kept)
            {
                _closed = true;
            }

            Interlocked.CompareExchange(ref store._capture, null, this);
        }

        public override Profile[] Take(CancellationToken cancellation = default)
        {
            if (Interlocked.Exchange(ref _taken, 1) != 0)
            {
                throw new InvalidOperationException("a capture is taken once (or was disposed)");
            }

            var read = new List<Profile>(store.Count);
            try
            {
                var visited = 0;
                foreach (var (_, entry) in store._entries)
                {
                    if ((++visited & 4095) == 0)
                    {
                        cancellation.ThrowIfCancellationRequested();
                    }

                    lock (entry)
                    {
                        if (entry.CapturedBy != id)
                        {
                            entry.CapturedBy = id; // read: later writes keep nothing for this capture
                            if (entry.Current is { } profile)
                            {
                                read.Add(profile);
                            }
                        }
                    }
                }
            }
            finally
            {
                End();
            }

            read.AddRange(_kept);
            return [.. read];
        }
    }

    /// <inheritdoc />
    public ProfileWriteBatch BeginBatch() => new WriteBatch(this);

    // The profiles a batch holds locked, each with the change prepared for it, published together at the commit.
    private sealed class WriteBatch(InMemoryProfileStore store) : ProfileWriteBatch
    {
        private readonly List<(Entry Entry, Profile Prepared)> _held = [];
        private readonly Dictionary<Entry, int> _slots = new(ReferenceEqualityComparer.Instance);

        public override int Prepared => _held.Count;

        public override ProfileUpdate? TryUpdate<TState>(string key, TState state, Func<Profile, long, TState, Profile> mutate)
        {
            // Waiting for a lock while holding others could close a circle with another writer: only try then.
            if (store.LockEntry(key, wait: _held.Count == 0, out var resolved) is not { } entry)
            {
                return null;
            }

            if (_slots.TryGetValue(entry, out var slot))
            {
                // Held since this batch changed it (entered again just now): the change builds on the one prepared.
                Monitor.Exit(entry);
                var prepared = _held[slot].Prepared;
                var next = mutate(prepared, store.NextVersion(0), state);
                _held[slot] = (entry, next);
                return new ProfileUpdate(prepared, next);
            }

            var keep = false;
            try
            {
                var before = entry.Current;
                var current = before ?? new Profile(resolved);
                var after = mutate(current, store.NextVersion(0), state);
                if (ReferenceEquals(after, current))
                {
                    return new ProfileUpdate(before, before ?? current);
                }

                _slots.Add(entry, _held.Count);
                _held.Add((entry, after));
                keep = true;
                return new ProfileUpdate(before, after);
            }
            finally
            {
                if (!keep)
                {
                    Monitor.Exit(entry);
                }
            }
        }

        public override void Commit(Action? durable, Action? published = null)
        {
            try
            {
                durable?.Invoke();
                var capture = store._capture; // one capture for the whole batch, as for a merge's two sides
                foreach (var (entry, prepared) in _held)
                {
                    store.Set(entry, prepared, capture);
                }

                published?.Invoke();
            }
            finally
            {
                Release();
            }
        }

        protected override void Dispose(bool disposing) => Release();

        private void Release()
        {
            foreach (var (entry, _) in _held)
            {
                Monitor.Exit(entry);
            }

            _held.Clear();
            _slots.Clear();
        }
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

        /// <summary>The last capture that read this entry or kept its profile (<see cref="PendingCapture"/>); fits beside <see cref="Retired"/>.</summary>
        public int CapturedBy { get; set; }

        /// <summary>Ids linked to this profile, sorted; replaced (never mutated) under the entry's lock.</summary>
        public string[] Aliases { get; set; } = [];
    }
}
