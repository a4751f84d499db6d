using System.Reflection;

namespace Segmentation.Core.Catalog;

/// <summary>A catalog file's name (relative, for error messages) and its text.</summary>
public sealed record CatalogFile(string Name, string Text);

/// <summary>Where catalog files come from.</summary>
public interface ICatalogSource
{
    /// <summary>Describes the origin, e.g. <c>embedded:default</c> or a directory path.</summary>
    string Origin { get; }

    /// <summary>Reads every catalog file, in a stable (ordinal by name) order.</summary>
    IReadOnlyList<CatalogFile> ReadFiles();
}

/// <summary>The default catalog shipped inside the core library.</summary>
public sealed class EmbeddedCatalogSource : ICatalogSource
{
    private const string Prefix = "DefaultCatalog/";

    /// <inheritdoc />
    public string Origin => "embedded:default";

    /// <inheritdoc />
    public IReadOnlyList<CatalogFile> ReadFiles()
    {
        var assembly = typeof(EmbeddedCatalogSource).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n => new CatalogFile(n[Prefix.Length..].Replace('\\', '/'), Read(assembly, n)))
            .ToList();
    }

    private static string Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

/// <summary>
/// Catalog files (<c>*.yaml</c>, <c>*.yml</c>) under a directory, recursively, leaving out hidden files and folders (a
/// name starting with a dot: an editor's swap files, <c>.git</c>, and the timestamped folders behind a Kubernetes config
/// map's links, whose files would otherwise be read twice).
/// </summary>
public sealed class DirectoryCatalogSource(string path) : ICatalogSource
{
    // Hidden means a name starting with a dot, on every platform (not a file system's own attribute); a folder that cannot
    // be read fails the read (a catalog read without some of its files would be published as if they were removed).
    private static readonly EnumerationOptions Walk = new() { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false, MatchType = MatchType.Simple };

    /// <inheritdoc />
    public string Origin => Path.GetFullPath(path);

    /// <summary>The full paths of the catalog files under <paramref name="directory"/>, in no particular order.</summary>
    /// <exception cref="IOException">The directory could not be read.</exception>
    public static IEnumerable<string> CatalogFilePaths(string directory) =>
        Directory.EnumerateFiles(directory, "*", Walk)
            .Where(f => !IsHidden(Path.GetRelativePath(directory, f)) && (f.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)));

    private static bool IsHidden(string relative) => relative.StartsWith('.') || relative.Contains("/.", StringComparison.Ordinal) || relative.Contains("\\.", StringComparison.Ordinal);

    /// <inheritdoc />
    public IReadOnlyList<CatalogFile> ReadFiles()
    {
        if (!Directory.Exists(path))
        {
            throw new CatalogException([new CatalogError(path, 0, null, null, "catalog directory does not exist")]);
        }

        return CatalogFilePaths(path)
            .Select(f => (Rel: Path.GetRelativePath(path, f).Replace('\\', '/'), Full: f))
            .OrderBy(f => f.Rel, StringComparer.Ordinal)
            .Select(f => new CatalogFile(f.Rel, File.ReadAllText(f.Full)))
            .ToList();
    }
}

/// <summary>Catalog files held in memory (tests, previews of candidate catalogs).</summary>
public sealed class InMemoryCatalogSource(IReadOnlyList<CatalogFile> files, string origin = "memory") : ICatalogSource
{
    /// <inheritdoc />
    public string Origin => origin;

    /// <inheritdoc />
    public IReadOnlyList<CatalogFile> ReadFiles() => files.OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
}
