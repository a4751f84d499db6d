using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Audit;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Composition;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Experiments;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Application.Products;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Application.ChangeStream;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds further parts (durable storage, ...) to the domain <see cref="SegmentationCoreServiceCollectionExtensions.AddSegmentationCore"/> registered.</summary>
public interface ISegmentationBuilder
{
    /// <summary>The services the domain is registered in.</summary>
    IServiceCollection Services { get; }
}

/// <summary>The one place the decisioning domain is wired: the server, the in-memory test host, the benchmarks and the scale test all use it.</summary>
public static class SegmentationCoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers the domain: the catalog (loaded by the <see cref="CatalogStartup"/> hosted step from the
    /// registered <see cref="ICatalogSource"/>, the embedded default catalog unless another is registered), the
    /// in-memory profile store, RFM scoring, the membership index, the template renderer, the decider, the
    /// decision cache and engine, the profile write handlers, data-subject rights and catalog governance.
    /// Every registration is a <c>TryAdd</c>: register your own clock, store, catalog source, consent or
    /// retention policy, change log or compaction before calling to replace the default (a system clock, an
    /// in-memory store, consent as <see cref="ConsentPolicy.Default"/>, events kept forever, nothing written to disk).
    /// </summary>
    /// <param name="services">The services to add to.</param>
    /// <param name="configure">Sets the domain's options (cache size, render limits, event limit).</param>
    public static ISegmentationBuilder AddSegmentationCore(this IServiceCollection services, Action<SegmentationCoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<SegmentationCoreOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ICatalogSource, EmbeddedCatalogSource>();
        services.TryAddSingleton(ConsentPolicy.Default);
        services.TryAddSingleton(RetentionPolicy.KeepForever);
        services.TryAddSingleton<IChangeLog>(NoChangeLog.Instance);
        services.TryAddSingleton<IStoreCompaction>(NoStoreCompaction.Instance);
        services.TryAddSingleton<InMemoryProfileStore>();
        services.TryAddSingleton<IProfileStore>(sp => sp.GetRequiredService<InMemoryProfileStore>());

        services.TryAddSingleton(sp => new CatalogProvider(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<ICatalogVersionStore>(NoCatalogVersionStore.Instance);
        services.TryAddSingleton<CatalogStartup>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, CatalogStartup>(sp => sp.GetRequiredService<CatalogStartup>()));
        services.TryAddSingleton(sp => new RfmModelProvider(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<IChangeFeedJournal>(NoChangeFeedJournal.Instance);
        services.TryAddSingleton(sp =>
        {
            // The stream is read back from its journal before anything appends to it: offsets continue where they were.
            var options = sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.ChangeStream;
            var time = sp.GetRequiredService<TimeProvider>();
            var journal = sp.GetRequiredService<IChangeFeedJournal>();
            var feed = new ChangeFeed(options, time)
            {
                ServeOnlyJournaled = journal is not NoChangeFeedJournal, // an offset seen is never handed out again after a crash
                StreamId = journal.StreamId ?? ChangeFeed.NewStreamId(),
            };
            var (entries, last) = journal.Load(time.GetUtcNow() - options.Retention, options.Capacity);
            feed.Restore(entries, last);
            return feed;
        });
        services.TryAddSingleton(sp => new MembershipIndex(sp.GetRequiredService<ChangeFeed>())
        {
            Moved = sp.GetRequiredService<ChurnHistory>().Moved, // churn is counted from every change of a user's segments
            Listings = sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.MemberListings,
        });
        services.TryAddSingleton(sp =>
        {
            var feed = sp.GetRequiredService<ChangeFeed>();
            var scheduler = new TriggerScheduler(feed, sp.GetRequiredService<CatalogProvider>(), sp.GetRequiredService<MembershipIndex>(), sp.GetRequiredService<IProfileStore>(), sp.GetRequiredService<ConsentPolicy>());
            scheduler.Restore(sp.GetRequiredService<IChangeFeedJournal>().LoadTriggers() ?? new TriggerCheckpoint(feed.Last, [])); // entries from now on schedule triggers
            return scheduler;
        });
        services.TryAddSingleton(sp => new ChangeStreamReconciler(
            sp.GetRequiredService<ChangeFeed>(),
            sp.GetRequiredService<MembershipIndex>(),
            sp.GetRequiredService<IChangeFeedJournal>(),
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<CatalogProvider>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ConsentPolicy>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ChangeStreamService>());
        services.TryAddSingleton(sp => new DecisionCache(sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.DecisionCache));
        services.TryAddSingleton<ProductRelations>();
        services.TryAddSingleton(sp => new TemplateRenderer(
            sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.Rendering,
            sp.GetService<ILogger<TemplateRenderer>>())
        {
            Products = sp.GetRequiredService<ProductRelations>(),
        });
        services.TryAddSingleton(sp => new Decider(sp.GetRequiredService<TemplateRenderer>()));
        services.TryAddSingleton(sp =>
        {
            var measurement = new DecisionMeasurement(sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.Measurement, new ExperimentExposures(sp.GetRequiredService<IProfileStore>()));
            var identity = sp.GetRequiredService<ProfileIngestion>().Identity;
            identity.Linked += (anonymousId, _, userId) => measurement.Exposures.Link(anonymousId, userId); // an identified user keeps the arm they had anonymously
            var cache = sp.GetRequiredService<DecisionCache>();
            // Then: a decision cached for any of the ids may have served another arm (a link alone changes no profile
            // version; decisions are cached under the id asked with).
            identity.Linked += (anonymousId, given, userId) => cache.RemoveUsers([anonymousId, given, userId]);
            sp.GetRequiredService<CatalogProvider>().Publishing += next =>
            {
                measurement.Drain(); // arms given under the old weights are recorded before new ones apply...
                measurement.Exposures.Publishing(next, sp.GetRequiredService<TimeProvider>().GetUtcNow().UtcTicks); // ...and experiments whose weights change read them from then on
            };
            return measurement;
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, MeasurementDrainService>());
        services.TryAddSingleton<SegmentSizeHistory>();
        services.TryAddSingleton<DataQuality>();
        services.TryAddSingleton(sp => new ChurnHistory(sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.Measurement.ChurnSegments));
        services.TryAddSingleton<SegmentKpis>();
        services.TryAddSingleton<IMeasurementCheckpoint>(NoMeasurementCheckpoint.Instance);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SegmentSizeSampler>());
        services.TryAddSingleton(sp => new DecisionEngine(
            sp.GetRequiredService<CatalogProvider>(),
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<RfmModelProvider>(),
            sp.GetRequiredService<DecisionCache>(),
            sp.GetRequiredService<Decider>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ConsentPolicy>(),
            sp.GetRequiredService<DecisionMeasurement>(),
            sp.GetRequiredService<SendTimePriorProvider>()));
        services.TryAddSingleton<SendTimePriorProvider>();
        services.TryAddSingleton(sp => new TrackAndDecide(sp.GetRequiredService<ProfileIngestion>(), sp.GetRequiredService<DecisionEngine>(), sp.GetRequiredService<IProfileStore>()));
        services.TryAddSingleton(sp => new OutcomeRecorder(
            sp.GetRequiredService<DecisionMeasurement>(),
            sp.GetRequiredService<ProfileIngestion>(),
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.Measurement));
        services.TryAddSingleton(sp =>
        {
            var ingestion = new ProfileIngestion(
                sp.GetRequiredService<IProfileStore>(),
                sp.GetRequiredService<CatalogProvider>(),
                sp.GetRequiredService<RfmModelProvider>(),
                sp.GetRequiredService<MembershipIndex>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<IChangeLog>(),
                sp.GetRequiredService<ConsentPolicy>(),
                sp.GetRequiredService<RetentionPolicy>())
            {
                EventLimit = sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.EventLimit,
            };
            ingestion.Events.Accepted = sp.GetRequiredService<ProductRelations>().Observe; // related products learn from every accepted event
            return ingestion;
        });
        services.TryAddSingleton<ISnapshotStateSource>(sp => sp.GetRequiredService<ProfileIngestion>());
        services.TryAddSingleton(sp => new DataSubjectRights(
            sp.GetRequiredService<ProfileIngestion>(),
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<CatalogProvider>(),
            sp.GetRequiredService<RfmModelProvider>(),
            sp.GetRequiredService<MembershipIndex>(),
            sp.GetRequiredService<DecisionCache>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IStoreCompaction>(),
            sp.GetRequiredService<IMeasurementCheckpoint>(),
            sp.GetRequiredService<OutcomeRecorder>(),
            sp.GetRequiredService<AdminAuditTrail>(),
            sp.GetRequiredService<IChangeFeedJournal>(),
            sp.GetRequiredService<TriggerScheduler>(),
            sp.GetServices<IErasureParticipant>()));
        services.TryAddSingleton<IAuditJournal>(NoAuditJournal.Instance);
        services.TryAddSingleton(sp => new AdminAuditTrail(sp.GetRequiredService<IAuditJournal>(), sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new CatalogGovernance(
            sp.GetRequiredService<CatalogProvider>(),
            sp.GetRequiredService<IProfileStore>(),
            sp.GetRequiredService<RfmModelProvider>(),
            sp.GetRequiredService<MembershipIndex>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ConsentPolicy>()));
        services.TryAddSingleton(sp =>
        {
            var allocator = new BanditAllocator(sp.GetRequiredService<CatalogProvider>(), sp.GetRequiredService<DecisionMeasurement>(), sp.GetRequiredService<TimeProvider>());
            sp.GetRequiredService<CatalogProvider>().Published += catalog => allocator.Reallocate(catalog); // a new version's bandits start from what is known
            sp.GetRequiredService<DecisionMeasurement>().Restored += () => allocator.Reallocate(); // at a restart, from what was measured before it
            return allocator;
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, BanditAllocationService>(sp =>
            new BanditAllocationService(sp.GetRequiredService<BanditAllocator>(), sp.GetRequiredService<IOptions<SegmentationCoreOptions>>().Value.Measurement)));
        services.TryAddSingleton(sp => new ExperimentLifecycle(
            sp.GetRequiredService<CatalogGovernance>(),
            sp.GetRequiredService<DecisionMeasurement>(),
            sp.GetRequiredService<TimeProvider>()));
        return new SegmentationBuilder(services);
    }

    private sealed class SegmentationBuilder(IServiceCollection services) : ISegmentationBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
