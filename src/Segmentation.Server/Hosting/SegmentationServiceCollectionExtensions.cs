using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Catalog;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>Registers the decisioning domain with the host's configuration.</summary>
public static class SegmentationServiceCollectionExtensions
{
    /// <summary>
    /// Adds the domain (<c>AddSegmentationCore</c>) configured from <c>Segmentation</c>, <c>Segmentation:Privacy</c>
    /// and <c>Segmentation:Limits</c>: the catalog source (the embedded default or a directory), the decision
    /// cache size and template limits, consent and retention policies, durable storage when a data directory is
    /// set; and the host's background work: restore at start-up, scheduled snapshots, the demo data import,
    /// RFM recomputation, membership maintenance, catalog directory watching and retention sweeps.
    /// </summary>
    public static IServiceCollection AddSegmentation(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<SegmentationOptions>()
            .BindConfiguration(SegmentationOptions.Section)
            .ValidateDataAnnotations()
            .Validate(
                o => string.IsNullOrWhiteSpace(o.DataDirectory) || o.HasValidEncryptionKey(),
                "Segmentation:EncryptionKey must be base64 of 32 bytes when Segmentation:DataDirectory is set (PII is encrypted at rest); generate one with: openssl rand -base64 32")
            .ValidateOnStart();
        services.AddOptions<PrivacyOptions>()
            .BindConfiguration(PrivacyOptions.Section)
            .ValidateProblems(o => o.Problems())
            .ValidateOnStart();
        services.AddLimitsOptions(); // template limits are read here

        services.TryAddSingleton<ICatalogSource>(sp => sp.GetRequiredService<IOptions<SegmentationOptions>>().Value.CatalogPath is var path && !string.IsNullOrWhiteSpace(path)
            ? new CatalogDirectorySource(path)
            : new EmbeddedCatalogSource());
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<PrivacyOptions>>().Value.ToConsentPolicy());
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<PrivacyOptions>>().Value.ToRetentionPolicy());
        services.AddOptions<Core.Application.Composition.SegmentationCoreOptions>()
            .Configure<IOptions<SegmentationOptions>, IOptions<LimitsOptions>>((core, segmentation, limits) =>
            {
                core.DecisionCache = core.DecisionCache with
                {
                    SizeLimit = segmentation.Value.DecisionCacheSize,
                    AdmitOnRepeat = segmentation.Value.DecisionCacheAdmitOnRepeat,
                };
                core.Measurement = new Core.Application.Measurement.MeasurementOptions
                {
                    AttributionWindow = TimeSpan.FromDays(segmentation.Value.AttributionWindowDays),
                    RememberedDecisions = segmentation.Value.RememberedDecisions,
                    ChurnSegments = segmentation.Value.ChurnSegments ?? ["churned", "lost_customers"],
                    BanditInterval = TimeSpan.FromSeconds(segmentation.Value.BanditIntervalSeconds),
                };
                core.MemberListings = core.MemberListings with { IdleTimeout = TimeSpan.FromMinutes(segmentation.Value.MemberListingIdleMinutes) };
                core.ChangeStream = new Core.Application.Membership.ChangeFeedOptions
                {
                    Retention = TimeSpan.FromDays(segmentation.Value.ChangeStreamRetentionDays),
                    Capacity = segmentation.Value.ChangeStreamCapacity,
                };
                core.Rendering = new Core.Rendering.RenderLimits
                {
                    OutputLimit = limits.Value.TemplateOutputChars,
                    LoopLimit = limits.Value.TemplateLoopLimit,
                    RecursiveLimit = limits.Value.TemplateRecursionLimit,
                    TimeLimit = TimeSpan.FromMilliseconds(limits.Value.TemplateRenderMilliseconds),
                };
            });

        services.AddSegmentationCore().AddFileStorage(sp =>
        {
            var options = sp.GetRequiredService<IOptions<SegmentationOptions>>().Value;
            if (string.IsNullOrWhiteSpace(options.DataDirectory))
            {
                return null;
            }

            var catalogs = sp.GetRequiredService<CatalogProvider>();
            var pii = PiiProtector.FromBase64(options.EncryptionKey, name => catalogs.Current.Traits.TryGetValue(name, out var trait) && trait.Pii);
            return new FileStorageSettings(options.DataDirectory, pii, options.AcceptDataLoss, TimeSpan.FromMilliseconds(options.DecisionJournalMilliseconds), options.HoldCollectorDuringRestore);
        });
        services.TryAddSingleton<ServiceHealth>();

        // Order matters: the catalog is loaded first (AddSegmentationCore's start-up step), then the change log
        // is restored, then the demo import (which skips events already restored), then the periodic work starts.
        services.AddHostedService<ChangeLogRestorer>();
        services.AddHostedService<SnapshotScheduler>();
        services.AddHostedService<MeasurementCheckpointService>();
        services.AddHostedService<DemoDataImporter>();
        services.AddHostedService<RfmRecomputeService>();
        services.AddHostedService<MembershipMaintainer>();
        services.AddHostedService<CatalogDirectoryWatcher>();
        services.AddHostedService<RetentionService>();
        services.AddHostedService<TimeZoneDataStartupReport>();
        services.AddOptions<RedisIngestionOptions>()
            .BindConfiguration(RedisIngestionOptions.Section)
            .ValidateProblems(o => o.Problems().Select(p => $"{RedisIngestionOptions.Section}: {p}"))
            .Validate<IOptions<SegmentationOptions>>(
                (o, segmentation) => !o.Enabled || !string.IsNullOrWhiteSpace(segmentation.Value.DataDirectory),
                "Segmentation:RedisIngestion:Enabled needs Segmentation:DataDirectory: an entry is acknowledged once its event is on disk, and without a data directory nothing is (acknowledged events would be lost at the next restart, and never read again)")
            .ValidateOnStart();
        services.AddHostedService<RedisStreamIngestion>(); // after the change-log restorer, so entries apply to the restored store; idle unless enabled
        services.AddSingleton<Core.Application.Privacy.IErasureParticipant, RedisDeadLetterEraser>(); // an erasure reaches the dead letters too
        return services;
    }
}
