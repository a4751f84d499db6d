using System.ComponentModel.DataAnnotations;

namespace Segmentation.Server.Hosting;

/// <summary>Request and rendering limits, section <c>Segmentation:Limits</c>.</summary>
public sealed class LimitsOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation:Limits";

    /// <summary>Largest request message accepted, in bytes; larger ones fail with RESOURCE_EXHAUSTED.</summary>
    [Range(1024, 256 * 1024 * 1024)]
    public int MaxRequestBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Events per second one API key may send over <c>StreamEvents</c> (all its streams together); beyond it the stream ends with RESOURCE_EXHAUSTED.</summary>
    [Range(1, 100_000_000)]
    public int StreamEventsPerSecond { get; set; } = 200_000;

    /// <summary>Longest rendered variant, in characters; a longer render serves the variant's fallback text.</summary>
    [Range(64, 1_048_576)]
    public int TemplateOutputChars { get; set; } = 8192;

    /// <summary>Loop iterations per render (all loops together); beyond it the render stops and the fallback is served. Bounds render time.</summary>
    [Range(1, 1_000_000)]
    public int TemplateLoopLimit { get; set; } = 1000;

    /// <summary>Function recursion depth per render; beyond it the render stops and the fallback is served.</summary>
    [Range(1, 1000)]
    public int TemplateRecursionLimit { get; set; } = 16;

    /// <summary>Longest render of one variant, in milliseconds; past it the render is abandoned and the fallback is served.</summary>
    [Range(1, 10_000)]
    public int TemplateRenderMilliseconds { get; set; } = 20;
}
