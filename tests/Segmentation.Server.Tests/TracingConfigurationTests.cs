using Microsoft.Extensions.DependencyInjection;

namespace Segmentation.Server.Tests;

/// <summary>
/// Which hosts record trace spans. Not beside <see cref="TelemetryTests"/>: its meters are process-wide, and these hosts
/// would replace its series.
/// </summary>
public sealed class TracingConfigurationTests
{
    [Fact]
    public void Traces_asked_for_without_an_exporter_create_no_tracer_and_an_exporter_gets_one()
    {
        using var traced = new TelemetryTests.Host().WithWebHostBuilder(b => b.UseSetting("Segmentation:Telemetry:Traces", "true"));
        using var exported = new TelemetryTests.Host().WithWebHostBuilder(b => b.UseSetting("Segmentation:Telemetry:OtlpEndpoint", "http://127.0.0.1:9"));

        Assert.Null(traced.Services.GetService<OpenTelemetry.Trace.TracerProvider>()); // it would create spans nothing exports
        Assert.NotNull(exported.Services.GetService<OpenTelemetry.Trace.TracerProvider>());
    }
}
