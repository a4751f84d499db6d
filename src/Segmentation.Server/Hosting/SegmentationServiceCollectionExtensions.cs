using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Segmentation.Core.Caching;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Membership;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Scoring;
using Segmentation.Core.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>Registers the decisioning domain.</summary>
public static class SegmentationServiceCollectionExtensions
{
    /// <summary>
    /// Adds the catalog (loaded at start-up, failing fast on errors), the in-memory profile store,
    /// RFM scoring, the decision cache and engine, privacy (consent policy, retention, erasure and export),
    /// and the demo data import when enabled.
    /// </summary>
    public static IServiceCollection AddSegmentation(this IServiceCollection services)
    {
        services.AddOptions<SegmentationOptions>()
            .BindConfiguration(SegmentationOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<PrivacyOptions>()
            .BindConfiguration(PrivacyOptions.Section)
            .Validate(o => !o.Problems().Any(), "invalid Segmentation:Privacy configuration: retention ages must not be negative and the sweep interval must be at least 1 second")
            .ValidateOnStart();

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<PrivacyOptions>>().Value.ToConsentPolicy());
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<PrivacyOptions>>().Value.ToRetentionPolicy());
        services.TryAddSingleton<IProfileStore, InMemoryProfileStore>();
        services.TryAddSingleton(sp => new RfmModelProvider(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SegmentationOptions>>().Value;
            var provider = new CatalogProvider(sp.GetRequiredService<TimeProvider>());
            ICatalogSource source = string.IsNullOrWhiteSpace(options.CatalogPath)
                ? new EmbeddedCatalogSource()
                : new DirectoryCatalogSource(options.CatalogPath);
            provider.Load(source);
            return provider;
        });
        services.TryAddSingleton(sp => new DecisionCache(new DecisionCacheOptions
        {
            SizeLimit = sp.GetRequiredService<IOptions<SegmentationOptions>>().Value.DecisionCacheSize,
        }));
        services.TryAddSingleton(sp => new TemplateRenderer(logger: sp.GetRequiredService<ILogger<TemplateRenderer>>()));
        services.TryAddSingleton<Decider>();
        services.TryAddSingleton<DecisionEngine>();
        services.TryAddSingleton<MembershipIndex>();
        services.TryAddSingleton<IChangeLog>(sp =>
        {
            var directory = sp.GetRequiredService<IOptions<SegmentationOptions>>().Value.DataDirectory;
            return string.IsNullOrWhiteSpace(directory)
                ? NoChangeLog.Instance
                : new FileChangeLog(Path.Combine(Path.GetFullPath(directory), ChangeLogRestorer.FileName), sp.GetRequiredService<ILogger<FileChangeLog>>());
        });
        services.TryAddSingleton<IStoreCompaction>(NoStoreCompaction.Instance);
        services.TryAddSingleton(sp => new ProfileIngestion(
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<CatalogProvider>(),
            sp.GetRequiredService<RfmModelProvider>(),
            sp.GetRequiredService<MembershipIndex>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IChangeLog>(),
            sp.GetRequiredService<ConsentPolicy>(),
            sp.GetRequiredService<RetentionPolicy>()));
        services.TryAddSingleton(sp => new DataSubjectRights(
            sp.GetRequiredService<ProfileIngestion>(),
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<CatalogProvider>(),
            sp.GetRequiredService<RfmModelProvider>(),
            sp.GetRequiredService<MembershipIndex>(),
            sp.GetRequiredService<DecisionCache>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IStoreCompaction>()));

        // Order matters: the change log is restored first, then the demo import (which skips events
        // already restored), then the periodic RFM recomputation starts.
        services.AddHostedService<ChangeLogRestorer>();
        services.AddHostedService<DemoDataImporter>();
        services.AddHostedService<RfmRecomputeService>();
        services.AddHostedService<MembershipMaintainer>();
        services.AddHostedService<CatalogDirectoryWatcher>();
        services.AddHostedService<RetentionService>();
        return services;
    }
}
