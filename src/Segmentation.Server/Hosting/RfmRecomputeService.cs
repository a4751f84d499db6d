using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Recomputes the RFM quintiles off the request path: checks every second and recomputes when
/// purchases or refunds changed the population, at most once every <c>RfmRecomputeSeconds</c>.
/// </summary>
internal sealed class RfmRecomputeService(IOptions<SegmentationOptions> options, ProfileIngestion ingestion, RfmModelProvider rfm, TimeProvider time, ServiceHealth health, ILogger<RfmRecomputeService> logger)
    : SupervisedBackgroundService(health, logger)
{
    protected override string Job => "RFM recomputation";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        var minInterval = TimeSpan.FromSeconds(options.Value.RfmRecomputeSeconds);
        var last = time.GetUtcNow();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (Recovering && !rfm.IsDirty)
            {
                Succeeded(); // the model the failed attempt wanted to replace was published since
                continue;
            }

            if (!rfm.IsDirty || (!Recovering && time.GetUtcNow() - last < minInterval))
            {
                continue;
            }

            var started = time.GetTimestamp();
            var model = ingestion.RecomputeRfm();
            last = time.GetUtcNow();
            Succeeded();
            logger.LogInformation("RFM model v{Version} recomputed over {Customers} customers in {Ms:0} ms", model.Version, model.Customers, time.GetElapsedTime(started).TotalMilliseconds);
        }
    }
}
