using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;
using Segmentation.Core.Validation;
using Segmentation.Core.Tests.Experiments;

namespace Segmentation.Core.Tests.Application.Catalogs;

/// <summary>Edits of a catalog file's text where a mapping was written (an experiment stopped or promoted through the API).</summary>
public sealed class CatalogTextTests
{
    private static readonly DateTimeOffset Stop = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static Experiment Edited(string experiments)
    {
        var source = ExperimentCatalogTests.Source(experiments);
        var experiment = CatalogLoader.Load(source).Experiments.Single();
        var files = source.ReadFiles().Select(f => f.Name == experiment.Node.At.File ? f with { Text = CatalogText.SetScalar(f.Text, experiment.Node, "stop", CatalogText.Instant(Stop)) } : f).ToList();
        return CatalogLoader.Load(new InMemoryCatalogSource(files)).Experiments.Single();
    }

    [Theory]
    [InlineData("\u2028")]
    [InlineData("\u2029")]
    [InlineData("\u0085")]
    [InlineData("\r")]
    public void A_line_break_the_yaml_reader_counts_above_the_edit_does_not_move_it(string lineBreak)
    {
        // Regression (review): the text was split on '\n' alone, while the YAML reader's line numbers also count a lone
        // carriage return and the Unicode line breaks (a pasted text, text converted from cp1252): the edit replaced the
        // line below the one meant, and the file no longer loaded (or another key lost its value).
        var experiments = ExperimentCatalogTests.Experiment
            .Replace("description: Does a stronger offer convert VIPs better?", $"description: \"Does a stronger offer{lineBreak}      convert VIPs better?\"", StringComparison.Ordinal)
            .Replace("    primary_metric:", "    stop: 2026-07-01T00:00:00Z\n    primary_metric:", StringComparison.Ordinal);

        var edited = Edited(experiments);

        Assert.Equal((Stop.UtcTicks, "conversion_rate"), (edited.StopTicks, edited.PrimaryMetric));
    }

    [Theory]
    [InlineData("stop:\n      2026-07-01T00:00:00Z")]
    [InlineData("stop: >-\n      2026-07-01T00:00:00Z")]
    public void A_value_not_written_on_its_keys_line_alone_is_refused_rather_than_left_behind(string stop)
    {
        // Regression (review): only the key's line was replaced, and the rest of the old value stayed behind it: the edited
        // file no longer loaded.
        var experiments = ExperimentCatalogTests.Experiment.Replace("    primary_metric:", $"    {stop}\n    primary_metric:", StringComparison.Ordinal);

        var refused = Assert.Throws<PreconditionFailedException>(() => Edited(experiments));

        Assert.Contains("not written on its key's line alone", refused.Message, StringComparison.Ordinal);
    }
}
