using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Profiles;
using Segmentation.Storage;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Where a data directory is and how values are sealed in it.</summary>
/// <param name="Directory">The data directory.</param>
/// <param name="Pii">Seals personal-data values at rest.</param>
/// <param name="AcceptDataLoss">Start although files the manifest expects are missing (operator override).</param>
/// <param name="DecisionJournalInterval">How often the decision journal writes and flushes what was served and credited since (null: its default).</param>
/// <param name="HoldCollectorDuringRestore">Restore a large snapshot with the garbage collector held off (<see cref="RestoreCollectorHold"/>).</param>
public sealed record FileStorageSettings(string Directory, PiiProtector? Pii, bool AcceptDataLoss = false, TimeSpan? DecisionJournalInterval = null, bool HoldCollectorDuringRestore = true);

/// <summary>Registers durable storage of the profile store on local disk.</summary>
public static class FileStorageServiceCollectionExtensions
{
    /// <summary>
    /// Keeps the profile store durable in a data directory (change log written ahead of memory, snapshots,
    /// compaction, PII sealed at rest) when <paramref name="settings"/> gives one; when it gives null,
    /// durability is off and nothing is written. Replaces the domain's <see cref="IChangeLog"/> and
    /// <see cref="IStoreCompaction"/>; <see cref="DurableStorage"/> gives the file store to start-up restore and
    /// scheduled snapshots.
    /// </summary>
    public static ISegmentationBuilder AddFileStorage(this ISegmentationBuilder builder, Func<IServiceProvider, FileStorageSettings?> settings)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(settings);
        var services = builder.Services;
        services.TryAddSingleton(sp => settings(sp) is { } s
            ? new DurableStorage(new FileStore(
                s.Directory,
                sp.GetRequiredService<IProfileStore>(),
                s.Pii,
                new LazySnapshotState(sp),
                sp.GetService<ILoggerFactory>(),
                s.AcceptDataLoss,
                s.HoldCollectorDuringRestore))
            : DurableStorage.Off);
        services.Replace(ServiceDescriptor.Singleton(sp => sp.GetRequiredService<DurableStorage>().ChangeLog));
        services.Replace(ServiceDescriptor.Singleton(sp => sp.GetRequiredService<DurableStorage>().Compaction));
        services.Replace(ServiceDescriptor.Singleton<IMeasurementCheckpoint>(sp => sp.GetRequiredService<DurableStorage>().Store is { } store
            ? new MeasurementCheckpointFile(
                store.Data.Path,
                sp.GetRequiredService<DecisionMeasurement>(),
                sp.GetRequiredService<SegmentSizeHistory>(),
                sp.GetRequiredService<ChurnHistory>(),
                sp.GetRequiredService<OutcomeRecorder>(),
                sp.GetRequiredService<Segmentation.Core.Application.Catalogs.CatalogProvider>(),
                sp.GetService<ILoggerFactory>()?.CreateLogger<MeasurementCheckpointFile>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<DecisionJournalFile>())
            : NoMeasurementCheckpoint.Instance));
        services.TryAddSingleton(sp => new DecisionJournalFile(
            sp.GetRequiredService<DurableStorage>().Store!.Data.Path,
            sp.GetRequiredService<DecisionMeasurement>(),
            sp.GetRequiredService<Segmentation.Core.Application.Catalogs.CatalogProvider>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger<DecisionJournalFile>(),
            settings(sp)?.DecisionJournalInterval,
            sp.GetRequiredService<OutcomeRecorder>()));
        services.Replace(ServiceDescriptor.Singleton<Segmentation.Core.Application.ChangeStream.IChangeFeedJournal>(sp => sp.GetRequiredService<DurableStorage>().Store is { } store
            ? new ChangeStreamJournal(store.Data.Path, sp.GetService<ILoggerFactory>()?.CreateLogger<ChangeStreamJournal>())
            : Segmentation.Core.Application.ChangeStream.NoChangeFeedJournal.Instance));
        services.Replace(ServiceDescriptor.Singleton<Segmentation.Core.Application.Catalogs.ICatalogVersionStore>(sp => sp.GetRequiredService<DurableStorage>().Store is { } store
            ? new CatalogVersionFiles(store.Data.Path, sp.GetService<ILoggerFactory>()?.CreateLogger<CatalogVersionFiles>())
            : Segmentation.Core.Application.Catalogs.NoCatalogVersionStore.Instance));
        services.Replace(ServiceDescriptor.Singleton<Segmentation.Core.Application.Audit.IAuditJournal>(sp => sp.GetRequiredService<DurableStorage>().Store is { } store
            ? new AuditJournalFile(store.Data.Path, sp.GetService<ILoggerFactory>()?.CreateLogger<AuditJournalFile>())
            : Segmentation.Core.Application.Audit.NoAuditJournal.Instance));
        return builder;
    }

    // What snapshots carry besides profiles comes from the profile writer, which itself depends on the change
    // log this storage provides: it is resolved when a snapshot is taken, not when the storage is built.
    private sealed class LazySnapshotState(IServiceProvider services) : ISnapshotStateSource
    {
        public SnapshotState Capture() => services.GetRequiredService<ISnapshotStateSource>().Capture();
    }
}
