using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Storage;

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
            .Validate(
                o => string.IsNullOrWhiteSpace(o.DataDirectory) || o.HasValidEncryptionKey(),
                "Segmentation:EncryptionKey must be base64 of 32 bytes when Segmentation:DataDirectory is set (PII is encrypted at rest); generate one with: openssl rand -base64 32")
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
        services.TryAddSingleton(sp =>
        {
            var limits = sp.GetRequiredService<IOptions<LimitsOptions>>().Value;
            return new TemplateRenderer(
                new RenderLimits { OutputLimit = limits.TemplateOutputChars, LoopLimit = limits.TemplateLoopLimit, RecursiveLimit = limits.TemplateRecursionLimit, TimeLimit = TimeSpan.FromMilliseconds(limits.TemplateRenderMilliseconds) },
                sp.GetRequiredService<ILogger<TemplateRenderer>>());
        });
        services.TryAddSingleton<Decider>();
        services.TryAddSingleton<DecisionEngine>();
        services.TryAddSingleton<MembershipIndex>();
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SegmentationOptions>>().Value;
            if (string.IsNullOrWhiteSpace(options.DataDirectory))
            {
                return DurableStorage.Off;
            }

            var catalogs = sp.GetRequiredService<CatalogProvider>();
            var pii = PiiProtector.FromBase64(options.EncryptionKey, name => catalogs.Current.Traits.TryGetValue(name, out var trait) && trait.Pii);
            return new DurableStorage(new FileStore(
                options.DataDirectory,
                sp.GetRequiredService<IProfileStore>(),
                pii,
                new LazySnapshotState(sp),
                sp.GetRequiredService<ILoggerFactory>(),
                options.AcceptDataLoss));
        });
        services.TryAddSingleton<ServiceHealth>();
        services.TryAddSingleton(sp => sp.GetRequiredService<DurableStorage>().ChangeLog);
        services.TryAddSingleton(sp => sp.GetRequiredService<DurableStorage>().Compaction);
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
        services.AddHostedService<SnapshotScheduler>();
        services.AddHostedService<DemoDataImporter>();
        services.AddHostedService<RfmRecomputeService>();
        services.AddHostedService<MembershipMaintainer>();
        services.AddHostedService<CatalogDirectoryWatcher>();
        services.AddHostedService<RetentionService>();
        return services;
    }
}

/// <summary>The profile writer's snapshot state, resolved when a snapshot is taken (the writer itself depends on the store).</summary>
internal sealed class LazySnapshotState(IServiceProvider services) : Core.Application.Changes.ISnapshotStateSource
{
    public Core.Application.Changes.SnapshotState Capture() => services.GetRequiredService<ProfileIngestion>().Capture();
}
