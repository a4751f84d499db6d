using Segmentation.Core.Catalog;

namespace Segmentation.Server.Hosting;

/// <summary>
/// <c>Segmentation.Server --validate-catalog DIR</c>: loads a catalog directory with the server's own loader (one
/// implementation of the rules, never a copy), prints every error as <c>file:line segment 'x' at clause: message</c>,
/// and exits 0 when valid, 3 when invalid, 2 when the directory is missing — without starting the service or needing
/// a data directory, keys or a network. Warnings that are measured against profiles (sizes, overlaps) need the running
/// service: <c>segctl validate</c>.
/// </summary>
internal static class CatalogValidationMode
{
    /// <summary>The argument that asks for it.</summary>
    public const string Argument = "--validate-catalog";

    /// <summary>The directory to validate when <paramref name="args"/> ask for this mode, else null.</summary>
    public static string? Requested(string[] args)
    {
        var at = Array.IndexOf(args, Argument);
        return at < 0 ? null : at + 1 < args.Length ? args[at + 1] : "";
    }

    /// <summary>Validates <paramref name="directory"/>; returns the exit code.</summary>
    public static int Run(string directory)
    {
        if (directory.Length == 0 || !Directory.Exists(directory))
        {
            Console.Error.WriteLine($"error: {Argument} needs a catalog directory{(directory.Length == 0 ? "" : $"; '{directory}' does not exist")}");
            return 2;
        }

        var source = new DirectoryCatalogSource(directory);
        try
        {
            var catalog = CatalogLoader.Load(source);
            Console.WriteLine($"{source.Origin}: {catalog.Files.Count} files, valid: {catalog.Segments.Count} segments, {catalog.Experiments.Count} experiments, {catalog.Triggers.Count} triggers");
            return 0;
        }
        catch (CatalogException ex)
        {
            Console.WriteLine($"{source.Origin}: INVALID ({ex.Errors.Count} error{(ex.Errors.Count == 1 ? "" : "s")})");
            foreach (var error in ex.Errors)
            {
                Console.WriteLine($"  error   {error}");
            }

            return 3;
        }
    }
}
