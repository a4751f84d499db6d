using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Import;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Server.Hosting;

/// <summary>
/// At start-up, imports the UCI Online Retail sample through <see cref="ProfileIngestion"/> (the same
/// validation path as the API) so the service has real profiles to decide for. Timestamps are shifted
/// so the data ends yesterday. It then simulates three weeks of decisions and outcomes
/// (<see cref="OutcomeSimulation"/>, clearly labelled as simulated) so that KPIs show something. Start-up
/// waits for it; it takes about a second. Only into an empty store: a restart that restored profiles from the data
/// directory imports nothing (a demo customer erased since stays erased, and the simulation is not run again) — unless
/// the first import was stopped part-way: with a data directory, a marker file is written before the first event and
/// removed once the simulation is done, and a start that finds it imports again (the events stored already come back as
/// duplicates: their ids are the data's) and simulates, or, when it was stopped during the simulation, says the simulated
/// outcomes are partial rather than simulate a second time.
/// </summary>
internal sealed class DemoDataImporter(
    IOptions<SegmentationOptions> options,
    ProfileIngestion ingestion,
    CatalogProvider catalogs,
    DecisionEngine engine,
    OutcomeRecorder outcomes,
    IProfileStore store,
    TimeProvider time,
    ILogger<DemoDataImporter> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        logger.LogInformation("Catalog '{Name}' v{Version} from {Origin}: {Count} segments", catalogs.Current.Name, catalogs.Current.Version, catalogs.Current.Origin, catalogs.Current.Segments.Count);
        if (!options.Value.DemoData)
        {
            return Task.CompletedTask;
        }

        var marker = string.IsNullOrWhiteSpace(options.Value.DataDirectory) ? null : Path.Combine(options.Value.DataDirectory, MarkerFile);
        var stopped = marker is not null && File.Exists(marker) ? File.ReadAllText(marker).Trim() : null;
        if (store.Count > 0 && stopped is null)
        {
            logger.LogInformation("Demo data: not imported again ({Profiles} profiles restored from the data directory)", store.Count);
            return Task.CompletedTask;
        }

        if (stopped is not null)
        {
            logger.LogWarning("Demo data: the first import was stopped part-way ({Stage}); it is finished now", stopped == SimulatingStage ? "during the simulation" : "during the import");
        }

        if (marker is not null && stopped is null)
        {
            WriteMarker(marker, ImportingStage);
        }

        var path = Path.IsPathRooted(options.Value.DemoDataPath)
            ? options.Value.DemoDataPath
            : Path.Combine(AppContext.BaseDirectory, options.Value.DemoDataPath);
        using var reader = File.OpenText(path);
        var events = OnlineRetailImport.ReadEvents(reader, time.GetUtcNow(), out var report);
        var rejected = 0;
        foreach (var e in events)
        {
            try
            {
                ingestion.Track(e);
            }
            catch (ValidationException ex)
            {
                rejected++;
                logger.LogWarning("Demo event {EventId} rejected: {Reason}", e.EventId, ex.Message);
            }
        }

        var model = ingestion.RecomputeRfm();
        logger.LogInformation(
            "Demo data: {Rows} rows read, {Purchases} purchases and {Refunds} refunds for {Customers} customers, rows rejected: {Rejected}, events rejected: {EventsRejected}; timestamps shifted by {Days} days; RFM over {RfmCustomers} customers",
            report.RowsRead,
            report.Purchases,
            report.Refunds,
            report.Customers,
            string.Join(", ", report.RejectedRows.Select(r => $"{r.Key}: {r.Value}")),
            rejected,
            report.Shift.TotalDays,
            model.Customers);

        if (stopped == SimulatingStage)
        {
            // Its decisions are new ones each time: simulating again would count part of three weeks twice.
            logger.LogWarning("Demo outcomes (SIMULATED): the simulation was stopped part-way and is not run again; the KPIs hold part of it");
        }
        else
        {
            if (marker is not null)
            {
                WriteMarker(marker, SimulatingStage);
            }

            var customers = events.Select(e => e.ProfileKey).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var simulated = OutcomeSimulation.Run(engine, outcomes, customers, time.GetUtcNow());
            logger.LogInformation(
                "Demo outcomes (SIMULATED, see docs/outcomes.md): {Decisions} decisions and {Outcomes} outcomes over the last 21 days, with response rates that differ by segment",
                simulated.Decisions,
                simulated.Outcomes);
        }

        if (marker is not null)
        {
            File.Delete(marker);
        }

        return Task.CompletedTask;
    }

    /// <summary>The file in the data directory that says the first demo import has not finished, and at which stage.</summary>
    internal const string MarkerFile = "demo-import.unfinished";

    private const string ImportingStage = "importing";
    private const string SimulatingStage = "simulating";

    // Written through to the disk: a power cut after the first events are stored must not lose it.
    private static void WriteMarker(string path, string stage)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        file.Write(System.Text.Encoding.UTF8.GetBytes(stage));
        file.Flush(flushToDisk: true);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
