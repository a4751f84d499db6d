using Microsoft.Extensions.Options;
using Segmentation.Core.Profiles;
using Segmentation.Core.Scoring;

namespace Segmentation.Server.Hosting;

/// <summary>Recomputes the RFM quintiles over the population periodically, off the request path.</summary>
internal sealed class RfmRecomputeService(IOptions<SegmentationOptions> options, IProfileStore store, RfmModelProvider rfm, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        rfm.Recompute(store);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.RfmRecomputeSeconds), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            rfm.Recompute(store);
        }
    }
}
