using Segmentation.Core.Rules;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Loads a catalog: reads its files (<see cref="YamlCatalogReader"/>), checks their shape
/// (<see cref="CatalogValidator"/>) and compiles them (<see cref="CatalogCompiler"/>) into a
/// <see cref="CatalogSnapshot"/>. Every error names the file, line, segment and clause; a catalog with any
/// error is rejected whole.
/// </summary>
public static class CatalogLoader
{
    /// <summary>
    /// Loads a catalog version that was already active (a restart, a rollback): checks added since it was published (a
    /// comparison with no value, a non-string trait observed by a text field) do not refuse it, so an upgrade never stops
    /// a server whose active catalog passed the checks of its day; a new publish is checked (<see cref="Load(ICatalogSource, CancellationToken)"/>).
    /// </summary>
    public static CatalogSnapshot LoadKept(ICatalogSource source, CancellationToken cancellation = default) =>
        KeptVersion.Compile(() => Load(source, cancellation));

    /// <summary>
    /// Loads and compiles the catalog, or throws <see cref="CatalogException"/> with every error. Honours
    /// <paramref name="cancellation"/> throughout (a caller whose deadline passed stops the work).
    /// </summary>
    public static CatalogSnapshot Load(ICatalogSource source, CancellationToken cancellation = default) =>
        Load(source, [], cancellation);

    /// <summary>
    /// Loads the catalog with <paramref name="extra"/> documents added to its files (a candidate segment
    /// being previewed), or throws <see cref="CatalogException"/> with every error.
    /// </summary>
    public static CatalogSnapshot Load(ICatalogSource source, IReadOnlyList<SyntaxMap> extra, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(extra);
        var files = source.ReadFiles();
        var errors = new List<CatalogError>();
        var documents = new List<SyntaxMap>();
        var budget = new YamlLimits.CatalogBudget(); // every file's tree is held until the catalog is validated
        foreach (var file in files)
        {
            cancellation.ThrowIfCancellationRequested();
            documents.AddRange(ReadDocuments(file, errors, budget, cancellation));
        }

        if (files.Count == 0)
        {
            errors.Add(new CatalogError(source.Origin, 0, null, null, "no catalog files (*.yaml) found"));
        }

        documents.AddRange(extra);
        var definition = CatalogValidator.Validate(source.Origin, documents, errors, cancellation);
        var snapshot = CatalogCompiler.Compile(definition, errors, cancellation);
        if (errors.Count > 0 || snapshot is null)
        {
            throw new CatalogException(errors);
        }

        snapshot.SetFiles(files);
        return snapshot;
    }

    /// <summary>The root mappings of one catalog file (empty documents are skipped; any other root is an error).</summary>
    public static IEnumerable<SyntaxMap> ReadDocuments(CatalogFile file, List<CatalogError> errors, CancellationToken cancellation = default) => ReadDocuments(file, errors, null, cancellation);

    /// <summary>The root mappings of one file of a catalog whose files together are bounded by <paramref name="catalog"/>.</summary>
    public static IEnumerable<SyntaxMap> ReadDocuments(CatalogFile file, List<CatalogError> errors, YamlLimits.CatalogBudget? catalog, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(errors);
        foreach (var root in YamlCatalogReader.Read(file, errors, catalog, cancellation))
        {
            if (root is SyntaxMap map)
            {
                yield return map;
            }
            else if (root is not SyntaxScalar { Value: null or "" })
            {
                errors.Add(new CatalogError(file.Name, root.At.Line, null, null, "a catalog file must be a mapping with any of: " + string.Join(", ", CatalogValidator.TopLevelKeys)));
            }
        }
    }
}
