using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Catalog;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// What decisions did: the ledger of served decisions and the KPIs counted from it and from outcomes. A
/// decision is only written to the ledger when it is served (no lock, no allocation); it is counted into
/// the KPIs by <see cref="Drain"/>, which every KPI query calls first (so answers are behind only by decisions still
/// being made, which the drain waits for) and a background loop calls every second (so the ring never laps the count).
/// </summary>
public sealed class DecisionMeasurement(MeasurementOptions options, ExperimentExposures? exposures = null)
{
    /// <summary>Every user's recorded arm and outcomes per experiment (recorded as decisions are counted).</summary>
    public ExperimentExposures Exposures { get; } = exposures ?? new ExperimentExposures();

    private readonly object _drain = new();
    private LedgerCursor _counted = new(0);

    /// <summary>The served decisions, for attribution.</summary>
    public DecisionLedger Ledger { get; } = new(options.RememberedDecisions);

    /// <summary>The KPIs.</summary>
    public KpiStore Kpis { get; } = new();

    /// <summary>Decisions the ring overwrote before they were counted (zero unless draining fell a whole ring behind).</summary>
    public long Lost { get; private set; }

    private KeyTable? _keys;

    /// <summary>
    /// The shared <see cref="DecisionKey"/> of a decision of <paramref name="catalog"/> won by
    /// <paramref name="winner"/> on <paramref name="channel"/>, answered by the cache or not: one array read
    /// for the serving catalog.
    /// </summary>
    public DecisionKey KeyFor(CatalogSnapshot catalog, Segment winner, string? channel, bool fromCache = false, ExperimentArm? arm = null)
    {
        var channelIndex = Channels.IndexOf(channel);
        var table = Volatile.Read(ref _keys);
        if (table is null || !ReferenceEquals(table.Catalog, catalog))
        {
            table = new KeyTable(catalog, new DecisionKey?[catalog.Segments.Count * Channels.MaxDistinct * 2]);
            Volatile.Write(ref _keys, table); // a new catalog: the old one's keys live on in the ledger as long as it remembers them
        }

        var index = (((winner.Rank * Channels.MaxDistinct) + channelIndex) * 2) + (fromCache ? 1 : 0);
        if (arm is null && (uint)index < (uint)table.Keys.Length && table.Keys[index] is { } known && ReferenceEquals(known.Segment, winner))
        {
            return known; // the common case: one array read
        }

        if ((uint)index >= (uint)table.Keys.Length || !ReferenceEquals(catalog.Segments[winner.Rank], winner))
        {
            return new DecisionKey(winner, catalog.Version, Channels.Name(channelIndex), fromCache, arm); // a winner of another snapshot
        }

        if (arm is not null)
        {
            // A decision in an experiment: the arm's own keys, per winner (an experiment of the whole catalog has many);
            // experiment traffic only pays this lookup.
            var keys = table.Arms.GetOrAdd(arm, static (_, length) => new DecisionKey?[length], table.Keys.Length);
            return keys[index] ??= new DecisionKey(winner, catalog.Version, Channels.Name(channelIndex), fromCache, arm);
        }

        return table.Keys[index] ??= new DecisionKey(winner, catalog.Version, Channels.Name(channelIndex), fromCache);
    }

    /// <summary>Remembers a served decision (see <see cref="DecisionLedger.Remember"/>).</summary>
    public void Remember(long sequence, string userId, DecisionKey key, long ticks) => Ledger.Remember(sequence, userId, key, ticks);

    private sealed record KeyTable(CatalogSnapshot Catalog, DecisionKey?[] Keys)
    {
        public System.Collections.Concurrent.ConcurrentDictionary<ExperimentArm, DecisionKey?[]> Arms { get; } = new(ReferenceEqualityComparer.Instance);
    }

    /// <summary>
    /// Runs <paramref name="restore"/> (a checkpoint's ledger, KPIs and exposures) while no drain runs, then marks the
    /// decisions issued before <paramref name="counted"/> (all issued, without one) as counted: the checkpoint holds their
    /// counts. Those from it on are counted by the next drain.
    /// </summary>
    internal void Restore(long? counted, Action restore)
    {
        ArgumentNullException.ThrowIfNull(restore);
        lock (_drain)
        {
            restore();
            _counted = new LedgerCursor(Math.Min(counted ?? long.MaxValue, Ledger.Issued));
        }
    }

    /// <summary>Raised once what was measured before a restart is restored (its checkpoint and the decisions journaled after it): what depends on it is worked out again.</summary>
    public event Action? Restored;

    /// <summary>Raises <see cref="Restored"/> (by the checkpoint's reader, once it has read everything).</summary>
    internal void AnnounceRestored() => Restored?.Invoke();

    /// <summary>
    /// Drains, then runs <paramref name="capture"/> with the first sequence not counted while no drain runs: the KPIs and
    /// exposures it copies hold exactly the decisions before that sequence (what a checkpoint saves with them).
    /// </summary>
    internal T WhileDrained<T>(Func<long, T> capture)
    {
        ArgumentNullException.ThrowIfNull(capture);
        lock (_drain)
        {
            Drain();
            return capture(_counted.Next);
        }
    }

    /// <summary>Drains, then runs <paramref name="action"/> while no drain runs.</summary>
    internal void WhileDrained(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        lock (_drain)
        {
            Drain();
            action();
        }
    }

    /// <summary>Counts every decision remembered since the last drain into the KPIs.</summary>
    public void Drain()
    {
        lock (_drain)
        {
            try
            {
                DrainLocked();
            }
            finally
            {
                // The service's metrics: one addition per winner, channel and cache result drained, not one per decision.
                foreach (var (key, count) in _drained)
                {
                    Count(key, count);
                }

                _drained.Clear();
            }
        }
    }

    private readonly Dictionary<DecisionKey, long> _drained = new(ReferenceEqualityComparer.Instance);

    private void DrainLocked()
    {
        var issued = Ledger.Issued;
        while (_counted.Next < issued)
        {
            switch (_counted.Read(Ledger, out var d))
            {
                case LedgerRead.Remembered:
                    Kpis.AddDecision(d.Ticks, d.Key, d.UserId);
                    if (d.Key.Arm is { Experiment: { } experiment } arm)
                    {
                        Exposures.Record(arm, d.UserId, d.Ticks, experiment.Exposure == ExposureTrigger.Decision, d.Segment.Id);
                    }

                    CollectionsMarshal.GetValueRefOrAddDefault(_drained, d.Key, out _)++;
                    break;
                case LedgerRead.Waiting:
                    return; // being written: counted by the next drain
                case LedgerRead.Overwritten:
                    Lost++; // overwritten by a later lap of the ring
                    break;
            }
        }
    }

    // The service's metrics, off the request path: a decision is counted when it is drained.
    private static void Count(DecisionKey key, long count)
    {
        if (SegmentationTelemetry.Decisions.Enabled)
        {
            SegmentationTelemetry.Decisions.Add(
                count,
                SegmentationTelemetry.Tag("segment", key.Segment.Id),
                SegmentationTelemetry.Tag("channel", key.Channel),
                SegmentationTelemetry.Tag("cache", key.FromCache ? "hit" : "miss"));
        }

        if (key.Segment.IsFallback && key.Arm?.ExperimentId != Experiment.HoldoutId && SegmentationTelemetry.FallbackDecisions.Enabled) // the holdout's fallback is on purpose
        {
            SegmentationTelemetry.FallbackDecisions.Add(count, SegmentationTelemetry.Tag("channel", key.Channel));
        }
    }
}

/// <summary>Drains <see cref="DecisionMeasurement"/> every second while the host runs.</summary>
public sealed class MeasurementDrainService(DecisionMeasurement measurement) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.NextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            measurement.Drain();
        }
    }
}
