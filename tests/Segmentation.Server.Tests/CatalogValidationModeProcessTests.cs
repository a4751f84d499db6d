namespace Segmentation.Server.Tests;

/// <summary>The server executable's validate-only mode, as 'nginx -t': the server's own rules, no service started.</summary>
public sealed class CatalogValidationModeProcessTests
{
    private static Task<(int Exit, string Stdout, string Stderr)> Validate(string directory) =>
        ExternalTools.Run("dotnet", $"{Path.Combine(AppContext.BaseDirectory, "Segmentation.Server.dll")} --validate-catalog {directory}", AppContext.BaseDirectory, TimeSpan.FromMinutes(1));

    [Fact]
    public async Task A_valid_catalog_exits_0_an_invalid_one_3_with_every_error_at_file_line_and_a_missing_directory_2()
    {
        var directory = Directory.CreateTempSubdirectory("seg-validate-").FullName;
        try
        {
            foreach (var file in new Core.Catalog.EmbeddedCatalogSource().ReadFiles())
            {
                var path = Path.Combine(directory, file.Name);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await File.WriteAllTextAsync(path, file.Text);
            }

            var (exit, stdout, stderr) = await Validate(directory);
            Assert.True(exit == 0, stderr + stdout);
            Assert.Contains("valid:", stdout, StringComparison.Ordinal);

            await File.WriteAllTextAsync(Path.Combine(directory, "segments", "broken.yaml"), """
                segments:
                  - id: broken
                    name: Broken
                    type: intent
                    prority: 5
                    rule: { field: orders.cuont, gte: 1 }
                    personalization:
                      content: "Hi {{ profile.traits.first_nam }}"
                      offer: "o"
                      cta: "c"
                      journey: "j"
                      messaging: "m"
                """);
            (exit, stdout, _) = await Validate(directory);
            Assert.Equal(3, exit);
            Assert.Contains("segments/broken.yaml:5:5 segment 'broken'", stdout, StringComparison.Ordinal); // file:line:column of the misspelt key
            Assert.Contains("did you mean 'priority'?", stdout, StringComparison.Ordinal);
            Assert.Contains("did you mean 'orders.count'?", stdout, StringComparison.Ordinal);

            // A valid rule with a mistyped template variable: templates are compiled once the rules are valid.
            await File.WriteAllTextAsync(Path.Combine(directory, "segments", "broken.yaml"), (await File.ReadAllTextAsync(Path.Combine(directory, "segments", "broken.yaml")))
                .Replace("prority: 5", "priority: 5", StringComparison.Ordinal).Replace("orders.cuont", "orders.count", StringComparison.Ordinal));
            (exit, stdout, _) = await Validate(directory);
            Assert.Equal(3, exit);
            Assert.Contains("template line 1, column 22: unknown trait 'first_nam'; did you mean 'first_name'?", stdout, StringComparison.Ordinal);

            (exit, _, stderr) = await Validate(Path.Combine(directory, "no-such-directory"));
            Assert.Equal(2, exit);
            Assert.Contains("does not exist", stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
