using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;

namespace Segmentation.Storage;

/// <summary>
/// Published catalog versions in the data directory, one JSON file per version (<c>catalogs/v0000000042.json</c>:
/// the version's record and its catalog files), written to a temporary file, flushed and renamed before the
/// version becomes active. Versions the provider no longer keeps are deleted after the new one is written.
/// Catalog files hold no personal data, so nothing here is sealed.
/// </summary>
public sealed class CatalogVersionFiles : ICatalogVersionStore
{
    /// <summary>The subdirectory of the data directory.</summary>
    public const string DirectoryName = "catalogs";

    private readonly string _directory;
    private readonly ILogger? _logger;

    /// <summary>Keeps versions under <paramref name="dataDirectory"/>/<see cref="DirectoryName"/>.</summary>
    public CatalogVersionFiles(string dataDirectory, ILogger<CatalogVersionFiles>? logger = null)
    {
        _directory = Path.Combine(dataDirectory, DirectoryName);
        _logger = logger;
    }

    /// <inheritdoc />
    public IReadOnlyList<StoredCatalogVersion> Load()
    {
        if (!Directory.Exists(_directory))
        {
            return [];
        }

        var versions = new List<StoredCatalogVersion>();
        foreach (var path in Directory.EnumerateFiles(_directory, "v*.json").Order(StringComparer.Ordinal))
        {
            CatalogVersionDocument? document;
            try
            {
                document = JsonSerializer.Deserialize(File.ReadAllBytes(path), CatalogVersionJson.Default.CatalogVersionDocument);
            }
            catch (JsonException ex)
            {
                throw new StoreDamagedException($"the published catalog version {path} cannot be read ({ex.Message}); it is written only by the service. Restore it from a backup, or move it aside to start without that version", ex);
            }

            if (document is null || document.Version <= 0 || document.Files is null)
            {
                throw new StoreDamagedException($"the published catalog version {path} is empty or incomplete; restore it from a backup, or move it aside to start without that version");
            }

            versions.Add(new StoredCatalogVersion(
                new CatalogVersionInfo(document.Version, document.PublishedAt, document.Origin ?? "", document.Comment ?? "", document.RolledBackFrom),
                [.. document.Files.Select(f => new CatalogFile(f.Name, f.Text))]));
        }

        versions.Sort((a, b) => a.Info.Version.CompareTo(b.Info.Version));
        return versions;
    }

    /// <inheritdoc />
    public void Save(StoredCatalogVersion version, IReadOnlySet<long> keep)
    {
        ArgumentNullException.ThrowIfNull(version);
        ArgumentNullException.ThrowIfNull(keep);
        DataDirectory.CreateDurably(_directory); // the folder's name is durable too: a power cut could otherwise lose every kept version
        var info = version.Info;
        var document = new CatalogVersionDocument(info.Version, info.PublishedAt, info.Origin, info.Comment, info.RolledBackFrom, [.. version.Files.Select(f => new CatalogVersionFile(f.Name, f.Text))]);
        var path = PathOf(info.Version);
        try
        {
            DataDirectory.WriteAtomically(path, file => JsonSerializer.Serialize(file, document, CatalogVersionJson.Default.CatalogVersionDocument));
        }
        catch (ReplacedNotFlushedException)
        {
            // The version's file is in place but its name may not be durable: the publish fails (the current version
            // stays), so the file must not make it the active version at the next start either.
            DataDirectory.TryDelete(path);
            throw;
        }

        foreach (var old in Directory.EnumerateFiles(_directory, "v*.json"))
        {
            if (VersionOf(old) is { } v && v != info.Version && !keep.Contains(v))
            {
                DataDirectory.TryDelete(old);
                _logger?.LogDebug("Catalog version {Version} is no longer kept", v);
            }
        }
    }

    private string PathOf(long version) => Path.Combine(_directory, "v" + version.ToString("D10", CultureInfo.InvariantCulture) + ".json");

    private static long? VersionOf(string path) =>
        long.TryParse(Path.GetFileNameWithoutExtension(path).AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
}

/// <summary>One published catalog version as stored.</summary>
internal sealed record CatalogVersionDocument(long Version, DateTimeOffset PublishedAt, string? Origin, string? Comment, long? RolledBackFrom, IReadOnlyList<CatalogVersionFile>? Files);

/// <summary>One catalog file of a stored version.</summary>
internal sealed record CatalogVersionFile(string Name, string Text);

/// <summary>Source-generated JSON metadata for stored catalog versions.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(CatalogVersionDocument))]
internal sealed partial class CatalogVersionJson : JsonSerializerContext;
