using Microsoft.Extensions.Options;
using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Recomputes the RFM quintiles off the request path: checks every second and recomputes when
/// purchases or refunds changed the population, at most once every <c>RfmRecomputeSeconds</c>.
/// </summary>
internal sealed class RfmRecomputeService(IOptions<SegmentationOptions> options, IProfileStore store, RfmModelProvider rfm, TimeProvider time, ILogger<RfmRecomputeService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var minInterval = TimeSpan.FromSeconds(options.Value.RfmRecomputeSeconds);
        var last = time.GetUtcNow();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!rfm.IsDirty || time.GetUtcNow() - last < minInterval)
            {
                continue;
            }

            var started = time.GetTimestamp();
            var model = rfm.Recompute(store);
            last = time.GetUtcNow();
            logger.LogInformation("RFM model v{Version} recomputed over {Customers} customers in {Ms:0} ms", model.Version, model.Customers, time.GetElapsedTime(started).TotalMilliseconds);
        }
    }
}
