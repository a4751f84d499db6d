using System.ComponentModel.DataAnnotations;

namespace Segmentation.Server.Hosting;

/// <summary>Service configuration, section <c>Segmentation</c>.</summary>
public sealed class SegmentationOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation";

    /// <summary>Directory of catalog YAML files. Empty means the embedded default catalog.</summary>
    public string CatalogPath { get; set; } = "";

    /// <summary>
    /// Directory of the durable store: change log segments (<c>changes-NNNNNNNN.log</c>) and snapshots
    /// (<c>snapshot-NNNNNNNN.snap</c>). Empty (the default) means durability is off: profiles live in
    /// memory only. Relative paths are resolved against the working directory.
    /// </summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>
    /// Base64 of the 32-byte AES-256-GCM key that encrypts PII attribute values (<c>pii: true</c> in the
    /// catalog schema) in the change log and snapshots. Required when <see cref="DataDirectory"/> is set.
    /// Generate one with <c>openssl rand -base64 32</c>; keep it out of source control (environment
    /// variable <c>Segmentation__EncryptionKey</c> or a secret store).
    /// </summary>
    public string EncryptionKey { get; set; } = "";

    /// <summary>
    /// Start although files the data directory's manifest expects (a snapshot, a log segment) are missing or
    /// cut, restoring from what is there and accepting that the changes the missing files held are lost.
    /// Off by default: start-up then stops and names the files. Set it for one start, after restoring what
    /// can be restored from backups; the first snapshot after that start makes the loss permanent.
    /// </summary>
    public bool AcceptDataLoss { get; set; }

    /// <summary>
    /// Restore a large snapshot (32 MiB and more) with the garbage collector held off: a no-GC region of 3.5 × the
    /// snapshot's bytes, at most half the memory the collector may use, committed (not touched) while it is open.
    /// On by default; turn it off where committed memory is counted against a tight limit.
    /// </summary>
    public bool HoldCollectorDuringRestore { get; set; } = true;

    /// <summary>A snapshot is written (and the log compacted) when this much log has accumulated since the last one.</summary>
    [Range(1024, long.MaxValue)]
    public long SnapshotLogBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>A snapshot is also written when this many minutes passed since the last one and anything was logged.</summary>
    [Range(1, 10_080)]
    public int SnapshotIntervalMinutes { get; set; } = 60;

    /// <summary>Seconds between checks of the snapshot conditions.</summary>
    [Range(1, 3_600)]
    public int SnapshotCheckSeconds { get; set; } = 10;

    /// <summary>True when <see cref="EncryptionKey"/> is base64 of 32 bytes.</summary>
    internal bool HasValidEncryptionKey()
    {
        var buffer = new byte[64];
        return Convert.TryFromBase64String(EncryptionKey.Trim(), buffer, out var written) && written == 32;
    }

    /// <summary>Import the demo data (UCI Online Retail sample) at start-up: on in Development only, a real deployment starts empty.</summary>
    public bool DemoData { get; set; }

    /// <summary>Path of the demo CSV; relative paths are resolved against the app's base directory.</summary>
    public string DemoDataPath { get; set; } = "DemoData/online-retail-sample.csv";

    /// <summary>Maximum number of cached decisions.</summary>
    [Range(1, 100_000_000)]
    public long DecisionCacheSize { get; set; } = 100_000;

    /// <summary>
    /// Cache a decision only from the second request of a user with the same context (true), so contexts seen
    /// once do not fill the cache; false caches every computed decision.
    /// </summary>
    public bool DecisionCacheAdmitOnRepeat { get; set; } = true;

    /// <summary>Days after a decision during which its outcomes are credited to it (and a conversion looks back for the last impression).</summary>
    [Range(1, 90)]
    public int AttributionWindowDays { get; set; } = 7;

    /// <summary>Served decisions remembered for attribution (32 bytes each; rounded up to a power of two).</summary>
    [Range(16, 1 << 27)]
    public int RememberedDecisions { get; set; } = 1 << 20;

    /// <summary>
    /// Seconds between saves of measurement's state (remembered decisions, KPIs, size and churn histories) to the data
    /// directory, when it changed; it is also saved after every snapshot and erasure and at shutdown.
    /// </summary>
    [Range(1, 86_400)]
    public int MeasurementCheckpointSeconds { get; set; } = 60;

    /// <summary>
    /// Milliseconds between writes of the decision journal (the decisions served and outcomes credited since the last
    /// one, flushed to disk together): what a crash can lose of them, against one flush per interval.
    /// </summary>
    [Range(1, 60_000)]
    public int DecisionJournalMilliseconds { get; set; } = 20;

    /// <summary>Days the change stream (WatchSegmentChanges) keeps entries for consumers to resume from.</summary>
    [Range(1, 90)]
    public int ChangeStreamRetentionDays { get; set; } = 7;

    /// <summary>Most entries the change stream keeps (about 120 bytes each in memory, and on disk with a data directory).</summary>
    [Range(1_000, 50_000_000)]
    public int ChangeStreamCapacity { get; set; } = 1_000_000;

    /// <summary>
    /// Minutes a segment's ordered member listing (built in the background by its first ListSegmentMembers page) is kept
    /// up to date without a page; after that it is dropped at the next sweep (every 5 s) or the segment's next change,
    /// whichever comes first (about 64 MB per million members).
    /// </summary>
    [Range(1, 1_440)]
    public int MemberListingIdleMinutes { get; set; } = 10;

    /// <summary>Seconds between bandit experiments' reallocations of new users (Thompson sampling on their outcomes so far).</summary>
    [Range(10, 86_400)]
    public int BanditIntervalSeconds { get; set; } = 300;

    /// <summary>Segments that are churn states (default <c>churned</c>, <c>lost_customers</c>): entering one from another segment is churn from it.</summary>
    public string[]? ChurnSegments { get; set; }

    /// <summary>Minimum seconds between RFM recomputations; a recomputation happens only after purchases or refunds changed.</summary>
    [Range(1, 86_400)]
    public int RfmRecomputeSeconds { get; set; } = 5;
}
