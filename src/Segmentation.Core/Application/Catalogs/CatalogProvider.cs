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
/// old version's files under a new version number.
/// </summary>
public sealed class CatalogProvider
{
    /// <summary>How many published versions are kept.</summary>
    public const int MaxHistory = 20;

    private readonly TimeProvider _time;
    private readonly Lock _publishGate = new();
    private readonly List<(CatalogSnapshot Snapshot, CatalogVersionInfo Info)> _history = [];
    private volatile CatalogSnapshot? _current;
    private long _version;

    /// <summary>Creates an empty provider; call <see cref="Load"/> or Publish before use.</summary>
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

    /// <summary>Loads a catalog from <paramref name="source"/> and publishes it. Throws <see cref="CatalogException"/> and keeps the current catalog on error.</summary>
    public CatalogSnapshot Load(ICatalogSource source, string comment = "", CancellationToken cancellation = default)
    {
        CatalogSnapshot loaded;
        try
        {
            loaded = CatalogLoader.Load(source, cancellation);
        }
        catch (CatalogException)
        {
            SegmentationTelemetry.CatalogPublishes.Add(1, SegmentationTelemetry.Tag("origin", OriginKind(source.Origin)), SegmentationTelemetry.Tag("result", "rejected"));
            throw;
        }

        return Publish(loaded, comment);
    }

    // The kind of origin, a bounded tag: "embedded", "api", "directory" (a path is never a tag).
    private static string OriginKind(string origin) =>
        origin.StartsWith("embedded", StringComparison.Ordinal) ? "embedded"
        : origin.StartsWith("api", StringComparison.Ordinal) ? "api"
        : "directory";

    /// <summary>Publishes a compiled snapshot with the next version.</summary>
    public CatalogSnapshot Publish(CatalogSnapshot snapshot, string comment = "") => PublishVersion(snapshot, comment, null);

    /// <summary>
    /// Republishes the files of an earlier version (the one before the current when
    /// <paramref name="version"/> is null) as a new version. Throws <see cref="NotFoundException"/>
    /// when that version is not kept.
    /// </summary>
    public CatalogSnapshot Rollback(long? version = null)
    {
        CatalogSnapshot target;
        lock (_publishGate)
        {
            var current = Current.Version;
            var entry = version is { } v
                ? _history.FirstOrDefault(h => h.Info.Version == v)
                : _history.LastOrDefault(h => h.Info.Version < current);
            if (entry.Snapshot is null || entry.Info.Version == current)
            {
                throw new NotFoundException(version is null
                    ? "there is no earlier catalog version to roll back to"
                    : $"catalog version {version} is not available (kept: {string.Join(", ", _history.Select(h => h.Info.Version))})");
            }

            target = entry.Snapshot;
        }

        // Recompile from the kept files so the new version is an independent snapshot.
        var recompiled = CatalogLoader.Load(new InMemoryCatalogSource(target.Files, target.Origin));
        return PublishVersion(recompiled, $"rollback to v{target.Version}", target.Version);
    }

    private CatalogSnapshot PublishVersion(CatalogSnapshot snapshot, string comment, long? rolledBackFrom)
    {
        CatalogSnapshot published;
        lock (_publishGate)
        {
            Publishing?.Invoke(snapshot);
            published = snapshot.Publish(++_version, _time.GetUtcNow());
            _history.Add((published, new CatalogVersionInfo(published.Version, published.LoadedAt, published.Origin, comment, rolledBackFrom)));
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
