using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Catalog;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Keeps segment memberships current without blocking Decide: right after a catalog is published or
/// rolled back, every user is re-evaluated under the new catalog, and every few seconds users whose
/// memberships may have changed with time alone ("no purchase in 30 days") are re-evaluated, and segments' member
/// listings that nobody has paged for their idle time are dropped.
/// </summary>
internal sealed class MembershipMaintainer(ProfileIngestion ingestion, CatalogProvider catalogs, MembershipIndex memberships, ServiceHealth health, ILogger<MembershipMaintainer> logger)
    : SupervisedBackgroundService(health, logger)
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _published = new(0);

    protected override string Job => "membership refresh";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        catalogs.Published += OnPublished;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var triggered = await _published.WaitAsync(SweepInterval, stoppingToken);
                var started = DateTime.UtcNow;
                var count = await Task.Run(() => ingestion.RefreshMemberships(stoppingToken), stoppingToken);
                if (triggered || count > 0)
                {
                    logger.LogInformation("Re-evaluated memberships of {Count} users under catalog v{Version} in {Ms:0} ms", count, catalogs.Current.Version, (DateTime.UtcNow - started).TotalMilliseconds);
                }

                if (memberships.DropIdleListings() is > 0 and var dropped)
                {
                    logger.LogInformation("Dropped the member listings of {Count} segments not paged for {Idle}", dropped, memberships.Listings.IdleTimeout);
                }

                Succeeded(); // a failure reported before (a storage error, retried) is over
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            catalogs.Published -= OnPublished;
        }
    }

    public override void Dispose()
    {
        _published.Dispose();
        base.Dispose();
    }

    private void OnPublished(CatalogSnapshot snapshot) => _published.Release();
}
