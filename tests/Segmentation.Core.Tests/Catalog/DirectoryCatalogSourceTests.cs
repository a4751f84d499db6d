using Segmentation.Core.Catalog;

namespace Segmentation.Core.Tests.Catalog;

/// <summary>What a catalog directory's files are: its YAML files, not hidden ones.</summary>
public sealed class DirectoryCatalogSourceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "segcat-files-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Hidden_files_and_folders_are_not_catalog_files_so_a_config_map_mount_is_read_once()
    {
        // Regression (review): every *.yaml under the directory was read, hidden ones included: in a Kubernetes config map
        // mount each file is also in a hidden timestamped folder (behind the '..data' link), so every segment was a duplicate
        // and the catalog was refused; a YAML file in '.git' or an editor's backup was read as part of the catalog too.
        var embedded = new EmbeddedCatalogSource().ReadFiles();
        var version = Path.Combine(_dir, "..2026_12_07_10_00_00.123");
        foreach (var file in embedded)
        {
            Write(Path.Combine(version, file.Name), file.Text);
        }

        Directory.CreateSymbolicLink(Path.Combine(_dir, "..data"), version);
        foreach (var top in embedded.Select(f => f.Name.Split('/')[0]).Distinct())
        {
            var target = Path.Combine(_dir, "..data", top);
            if (Directory.Exists(target))
            {
                Directory.CreateSymbolicLink(Path.Combine(_dir, top), target);
            }
            else
            {
                File.CreateSymbolicLink(Path.Combine(_dir, top), target);
            }
        }

        Write(Path.Combine(_dir, ".git", "broken.yaml"), "segments: [ not closed");
        Write(Path.Combine(_dir, "segments", ".value.yaml.swp"), "swap");
        Write(Path.Combine(_dir, "segments", ".old.yaml"), embedded[0].Text);
        Write(Path.Combine(_dir, "notes.txt"), "not a catalog file");

        var files = new DirectoryCatalogSource(_dir).ReadFiles();

        Assert.Equal(embedded.Select(f => f.Name).Order(StringComparer.Ordinal), files.Select(f => f.Name));
        Assert.Equal(CatalogLoader.Load(new EmbeddedCatalogSource()).Segments.Count, CatalogLoader.Load(new DirectoryCatalogSource(_dir)).Segments.Count);
    }

    private static void Write(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
