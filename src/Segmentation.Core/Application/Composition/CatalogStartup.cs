using Microsoft.Extensions.Hosting;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;

namespace Segmentation.Core.Application.Composition;

/// <summary>
/// The start-up step that loads and publishes the first catalog from the registered <see cref="ICatalogSource"/>
/// (or restores the versions a durable <see cref="ICatalogVersionStore"/> kept; see <see cref="CatalogProvider.Start"/>),
/// before anything that reads the catalog starts. A catalog with errors stops the start-up with a
/// <see cref="CatalogException"/> that names every error. Hosts run it as a hosted service; code without a
/// host (benchmarks, tests, tools) calls <see cref="Load"/>.
/// </summary>
public sealed class CatalogStartup(CatalogProvider catalogs, ICatalogSource source, ICatalogVersionStore store) : IHostedService
{
    private readonly Lock _gate = new();
    private bool _loaded;

    /// <summary>Loads the first catalog unless one was loaded already; returns the provider.</summary>
    public CatalogProvider Load(CancellationToken cancellation = default)
    {
        lock (_gate)
        {
            if (!_loaded)
            {
                catalogs.Start(source, store, cancellation);
                _loaded = true;
            }
        }

        return catalogs;
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Load(cancellationToken);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
