using System.ComponentModel.DataAnnotations;

namespace Segmentation.Server.Hosting;

/// <summary>Service configuration, section <c>Segmentation</c>.</summary>
public sealed class SegmentationOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation";

    /// <summary>Directory of catalog YAML files. Empty means the embedded default catalog.</summary>
    public string CatalogPath { get; set; } = "";

    /// <summary>
    /// Directory of the durable change log (<c>changes.log</c>). Empty (the default) means durability is
    /// off: profiles live in memory only. Relative paths are resolved against the working directory.
    /// </summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>Import the demo data (UCI Online Retail sample) at start-up.</summary>
    public bool DemoData { get; set; } = true;

    /// <summary>Path of the demo CSV; relative paths are resolved against the app's base directory.</summary>
    public string DemoDataPath { get; set; } = "DemoData/online-retail-sample.csv";

    /// <summary>Maximum number of cached decisions.</summary>
    [Range(1, 100_000_000)]
    public long DecisionCacheSize { get; set; } = 100_000;

    /// <summary>Minimum seconds between RFM recomputations; a recomputation happens only after purchases or refunds changed.</summary>
    [Range(1, 86_400)]
    public int RfmRecomputeSeconds { get; set; } = 5;
}
