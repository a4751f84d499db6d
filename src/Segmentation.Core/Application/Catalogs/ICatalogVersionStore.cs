using Segmentation.Core.Catalog;

namespace Segmentation.Core.Application.Catalogs;

/// <summary>A published catalog version as it is kept: its record and the files it was compiled from.</summary>
/// <param name="Info">Version, time, origin, comment, and the version a rollback restored.</param>
/// <param name="Files">The catalog files of that version.</param>
public sealed record StoredCatalogVersion(CatalogVersionInfo Info, IReadOnlyList<CatalogFile> Files);

/// <summary>
/// Where published catalog versions are kept across restarts (a data directory), so that a catalog published through
/// the API, the version numbers and the rollback history survive. Storage lives outside the domain; the domain only
/// asks for the versions it kept and hands over each new one before it becomes active.
/// </summary>
public interface ICatalogVersionStore
{
    /// <summary>The kept versions, oldest first; empty when none were kept (a new data directory, or no durability).</summary>
    IReadOnlyList<StoredCatalogVersion> Load();

    /// <summary>
    /// Keeps <paramref name="version"/> durably before it becomes active, and forgets the kept versions not in
    /// <paramref name="keep"/>. Throws when it cannot be written: the publish then fails and the current version stays.
    /// </summary>
    void Save(StoredCatalogVersion version, IReadOnlySet<long> keep);
}

/// <summary>No durability: versions live in memory only and start again at 1 after a restart.</summary>
public sealed class NoCatalogVersionStore : ICatalogVersionStore
{
    /// <summary>The one instance.</summary>
    public static readonly NoCatalogVersionStore Instance = new();

    private NoCatalogVersionStore()
    {
    }

    /// <inheritdoc />
    public IReadOnlyList<StoredCatalogVersion> Load() => [];

    /// <inheritdoc />
    public void Save(StoredCatalogVersion version, IReadOnlySet<long> keep)
    {
    }
}
