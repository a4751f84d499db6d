using Segmentation.Core.Catalog;

namespace Segmentation.Server.Hosting;

/// <summary>
/// The catalog directory as the server reads it: its files (<see cref="DirectoryCatalogSource"/>), and the directory's
/// fingerprint (names, sizes and modification times of every catalog file) taken just before each read, so the watcher starts
/// from the state the start-up catalog was read from. A save made after that read (while profiles are restored, before
/// the watcher's first poll) differs from it and is published.
/// </summary>
internal sealed class CatalogDirectorySource(string path) : ICatalogSource
{
    private readonly DirectoryCatalogSource _files = new(path);
    private volatile string? _readFrom;

    /// <inheritdoc />
    public string Origin => _files.Origin;

    /// <summary>The fingerprint taken before the last read that succeeded; null before one (or when the directory could not be listed then).</summary>
    public string? ReadFrom => _readFrom;

    /// <summary>The files of the last read that succeeded (null before one): a save that leaves them as they were publishes nothing.</summary>
    public IReadOnlyList<CatalogFile>? LastRead { get; private set; }

    /// <inheritdoc />
    public IReadOnlyList<CatalogFile> ReadFiles()
    {
        string? before;
        try
        {
            before = Fingerprint(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            before = null; // the watcher then takes its first poll as the state read (as without this)
        }

        var files = _files.ReadFiles();
        _readFrom = before;
        LastRead = files;
        return files;
    }

    /// <summary>Names, sizes and modification times of every catalog file under <paramref name="path"/> (those <see cref="DirectoryCatalogSource"/> reads), in ordinal order; "missing" without the directory.</summary>
    /// <exception cref="IOException">A file was removed while it was listed, or the directory could not be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The directory or a file in it cannot be read.</exception>
    public static string Fingerprint(string path)
    {
        if (!Directory.Exists(path))
        {
            return "missing";
        }

        return string.Join('|', DirectoryCatalogSource.CatalogFilePaths(path)
            .Order(StringComparer.Ordinal)
            .Select(f => new FileInfo(f))
            .Select(f => $"{f.FullName}:{Target(f)}"));
    }

    // What a file's content is known by: its size and modification time, those of the file a link leads to (a config map's
    // files are links into a hidden folder that an update replaces; the links themselves never change).
    private static string Target(FileInfo file)
    {
        var target = file.LinkTarget is null ? file : file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? file;
        return target.Exists ? $"{target.FullName}:{target.Length}:{target.LastWriteTimeUtc.Ticks}" : "missing";
    }
}
