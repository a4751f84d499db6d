using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Catalog;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Catalogs;

/// <summary>A published catalog version: what, when, from where, and why.</summary>
public sealed record CatalogVersionInfo(long Version, DateTimeOffset PublishedAt, string Origin, string Comment, long? RolledBackFrom);

/// <summary>
/// Holds the active <see cref="CatalogSnapshot"/>. Publishing swaps one reference: a request keeps
/// the snapshot it started with, and a candidate that fails to load never replaces the good one.
/// Previous versions are kept (up to <see cref="MaxHistory"/>) for rollback, which republishes an
/// old version's files under a new version number. With a durable <see cref="ICatalogVersionStore"/>
/// (see <see cref="Start"/>), every version is written before it becomes active, and the active
/// version, the numbering and the history come back after a restart.
/// </summary>
public sealed class CatalogProvider
{
    /// <summary>How many published versions are kept.</summary>
    public const int MaxHistory = 20;

    private readonly TimeProvider _time;
    private readonly Lock _publishGate = new();
    private readonly List<StoredCatalogVersion> _history = [];
    private volatile CatalogSnapshot? _current;
    private ICatalogVersionStore _store = NoCatalogVersionStore.Instance;
    private string? _startupOrigin;
    private long _lastFromStartup; // newest version from the start-up origin: kept beyond the history, a restart compares with it
    private long _version;

    /// <summary>Creates an empty provider; call <see cref="Load(ICatalogSource, string, CancellationToken)"/> or Publish before use.</summary>
    public CatalogProvider(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>Raised after a new snapshot became active (publish or rollback).</summary>
    public event Action<CatalogSnapshot>? Published;

    /// <summary>
    /// Raised with the new version just before it replaces the current one (under the publish lock): what the old version
    /// decided is settled first — e.g. the arms its decisions gave are recorded before new weights apply.
    /// </summary>
    public event Action<CatalogSnapshot>? Publishing;

    /// <summary>The active snapshot.</summary>
    public CatalogSnapshot Current => _current ?? throw new InvalidOperationException("no catalog has been published yet");

    /// <summary>Published versions, newest first.</summary>
    public IReadOnlyList<CatalogVersionInfo> History
    {
        get
        {
            lock (_publishGate)
            {
                return _history.Select(h => h.Info).Reverse().ToList();
            }
        }
    }

    /// <summary>
    /// The start-up publish. Restores the versions <paramref name="store"/> kept (the newest is active again, under
    /// its own number) and keeps every later version there. The start-up <paramref name="source"/> (embedded or a
    /// directory) is published as a new version only when nothing was kept, or when its files differ from those of
    /// the newest kept version that came from the same origin (a new deployment): a catalog published through the
    /// API survives a restart of an unchanged deployment. Throws <see cref="CatalogException"/> when the start-up
    /// files, or the kept active version, do not load.
    /// </summary>
    public CatalogSnapshot Start(ICatalogSource source, ICatalogVersionStore store, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(store);
        var kept = store.Load();
        // What the start-up source itself last published (a rollback to one of its versions is an operator's choice,
        // not a deployment: a restart must not undo it).
        var lastFromSource = kept.LastOrDefault(k => k.Info.Origin == source.Origin && k.Info.RolledBackFrom is null);
        lock (_publishGate)
        {
            _store = store;
            _startupOrigin = source.Origin;
            _lastFromStartup = lastFromSource?.Info.Version ?? 0;
        }

        if (kept.Count == 0)
        {
            return Load(source, cancellation: cancellation);
        }

        var files = source.ReadFiles();
        var active = kept[^1];
        CatalogSnapshot restored;
        try
        {
            restored = CatalogLoader.LoadKept(new InMemoryCatalogSource(active.Files, active.Info.Origin), cancellation);
        }
        catch (CatalogException ex)
        {
            throw new CatalogException([.. ex.Errors.Select(e => e with { Message = $"catalog version {active.Info.Version}, kept in the data directory and active before the restart, no longer loads: {e.Message}" })]);
        }

        lock (_publishGate)
        {
            Publishing?.Invoke(restored);
            _history.AddRange(kept.TakeLast(MaxHistory));
            _version = active.Info.Version;
            _current = restored.Publish(active.Info.Version, active.Info.PublishedAt);
        }

        Published?.Invoke(_current);
        return lastFromSource is not null && (lastFromSource.Files.SequenceEqual(files) || SameKeepingEnded(lastFromSource, files, cancellation)) // records: same names and texts
            ? _current
            : Load(new InMemoryCatalogSource(files, source.Origin), lastFromSource is null ? "start-up: a new catalog source" : $"start-up: changed since v{lastFromSource.Info.Version}", cancellation);
    }

    /// <summary>Loads a catalog from <paramref name="source"/> and publishes it. Throws <see cref="CatalogException"/> and keeps the current catalog on error.</summary>
    public CatalogSnapshot Load(ICatalogSource source, string comment = "", CancellationToken cancellation = default) => Load(source, comment, null, cancellation);

    /// <summary>
    /// Loads and publishes <paramref name="source"/> as the next version, only if the current version is still
    /// <paramref name="basedOn"/> (when set): an edit made on an older version throws <see cref="ConcurrencyConflictException"/>
    /// and publishes nothing, so two edits at once never silently undo each other.
    /// </summary>
    public CatalogSnapshot Load(ICatalogSource source, string comment, long? basedOn, CancellationToken cancellation = default)
    {
        CatalogSnapshot loaded;
        try
        {
            loaded = CatalogLoader.Load(source, cancellation);
            if (basedOn is not null || _current is null || !string.Equals(source.Origin, Volatile.Read(ref _startupOrigin), StringComparison.Ordinal))
            {
                return PublishVersion(loaded, comment, null, basedOn);
            }

            // The start-up source (a catalog directory, a deployment's files): experiments the serving version ended stay
            // ended. Checked against the version it replaces, so a stop or promote published meanwhile is seen: retried.
            for (var attempt = 0; ; attempt++)
            {
                var serving = Current;
                var (kept, ids) = EndedExperiments.Keep(serving, loaded, _time.GetUtcNow(), cancellation);
                try
                {
                    return PublishVersion(kept, ids.Count == 0 ? comment : $"{comment}{(comment.Length > 0 ? "; " : "")}kept ended: {string.Join(", ", ids)}", null, serving.Version);
                }
                catch (ConcurrencyConflictException) when (attempt < 8)
                {
                    // another version was published since `serving` was read: check against it
                }
            }
        }
        catch (CatalogException)
        {
            SegmentationTelemetry.CatalogPublishes.Add(1, SegmentationTelemetry.Tag("origin", OriginKind(source.Origin)), SegmentationTelemetry.Tag("result", "rejected"));
            throw;
        }
    }

    // Whether `files` are the files `last` was published from, with the experiments it kept ended written in: a version
    // that kept experiments ended holds edited copies, and an unchanged deployment must not count as a new one. Judged as
    // at that publish: an experiment the files stop by themselves later (now past) was kept ended then all the same.
    private static bool SameKeepingEnded(StoredCatalogVersion last, IReadOnlyList<CatalogFile> files, CancellationToken cancellation)
    {
        try
        {
            var published = CatalogLoader.LoadKept(new InMemoryCatalogSource(last.Files, last.Info.Origin), cancellation);
            var (kept, ids) = EndedExperiments.Keep(published, CatalogLoader.Load(new InMemoryCatalogSource(files, last.Info.Origin), cancellation), last.Info.PublishedAt, cancellation);
            return ids.Count > 0 && kept.Files.SequenceEqual(last.Files);
        }
        catch (CatalogException)
        {
            return false; // the files differ (they would not even load as that version's source)
        }
    }

    // The kind of origin, a bounded tag: "embedded", "api", "directory" (a path is never a tag).
    private static string OriginKind(string origin) =>
        origin.StartsWith("embedded", StringComparison.Ordinal) ? "embedded"
        : origin.StartsWith("api", StringComparison.Ordinal) ? "api"
        : "directory";

    /// <summary>Publishes a compiled snapshot with the next version.</summary>
    public CatalogSnapshot Publish(CatalogSnapshot snapshot, string comment = "") => PublishVersion(snapshot, comment, null, null);

    /// <summary>
    /// Republishes the files of an earlier version (the one before the current when
    /// <paramref name="version"/> is null) as a new version. Throws <see cref="NotFoundException"/>
    /// when that version is not kept, <see cref="ValidationException"/> for a version below 1 and
    /// <see cref="PreconditionFailedException"/> for the serving version itself.
    /// </summary>
    public CatalogSnapshot Rollback(long? version = null)
    {
        if (version is <= 0)
        {
            throw new ValidationException("version", $"a catalog version is 1 or more (got {version}); 0 or unset means the version before the serving one");
        }

        StoredCatalogVersion target;
        long current;
        lock (_publishGate)
        {
            current = Current.Version;
            if (version == current)
            {
                throw new PreconditionFailedException($"catalog version {current} is the one serving: there is nothing to roll back to");
            }

            var entry = version is { } v
                ? _history.FirstOrDefault(h => h.Info.Version == v)
                : _history.LastOrDefault(h => h.Info.Version < current);
            if (entry is null || entry.Info.Version == current)
            {
                throw new NotFoundException(version is null
                    ? "there is no earlier catalog version to roll back to"
                    : $"catalog version {version} is not available (kept: {string.Join(", ", _history.Select(h => h.Info.Version))})");
            }

            target = entry;
        }

        // Recompile from the kept files so the new version is an independent snapshot. Published only if nothing else was
        // meanwhile (a publish, a stop or promote of an experiment): a rollback never silently undoes it.
        var recompiled = CatalogLoader.LoadKept(new InMemoryCatalogSource(target.Files, target.Info.Origin)); // it was active before
        return PublishVersion(recompiled, $"rollback to v{target.Info.Version}", target.Info.Version, current);
    }

    private CatalogSnapshot PublishVersion(CatalogSnapshot snapshot, string comment, long? rolledBackFrom, long? basedOn)
    {
        CatalogSnapshot published;
        lock (_publishGate)
        {
            if (basedOn is { } expected && expected != _version)
            {
                throw new ConcurrencyConflictException($"the catalog changed while this edit was made (it was made on version {expected}; version {_version} is current): nothing was published; read again and retry");
            }

            var at = _time.GetUtcNow();
            var kept = new StoredCatalogVersion(new CatalogVersionInfo(_version + 1, at, snapshot.Origin, comment, rolledBackFrom), snapshot.Files);
            var fromStartup = snapshot.Origin == _startupOrigin && rolledBackFrom is null ? kept.Info.Version : _lastFromStartup;
            var keep = _history.Skip(_history.Count + 1 - MaxHistory).Select(h => h.Info.Version).Append(kept.Info.Version).Append(fromStartup).ToHashSet();
            _store.Save(kept, keep); // durable before it is active: a failed write leaves the current version in place
            _lastFromStartup = fromStartup;
            Publishing?.Invoke(snapshot);
            published = snapshot.Publish(++_version, at);
            _history.Add(kept);
            if (_history.Count > MaxHistory)
            {
                _history.RemoveAt(0);
            }

            _current = published;
        }

        SegmentationTelemetry.CatalogPublishes.Add(1, SegmentationTelemetry.Tag("origin", rolledBackFrom is null ? OriginKind(published.Origin) : "rollback"), SegmentationTelemetry.Tag("result", "published"));
        Published?.Invoke(published);
        return published;
    }
}
