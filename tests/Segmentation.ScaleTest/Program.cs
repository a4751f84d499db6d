using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Composition;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Profiles;
using Segmentation.ScaleTest;
using Segmentation.Storage;

// Memory/scale run (issue 6): N synthetic profiles with realistic histories, ingested in-process
// through ProfileIngestion.Track (validation, aggregates, derived data, memberships), then memory per
// profile, RFM recompute time and Decide latency at that size.
//
//   dotnet run -c Release --project tests/Segmentation.ScaleTest -- --profiles 1000000
//
// Options: --profiles N (default 1,000,000), --decides N (default 100,000), --seed N (default 42),
//          --threads N (ingest threads, default: processor count), --breakdown N (after ingestion, print
//          the N object types that take the most memory per profile). The run restarts itself with
//          --restore-from DIR to time a restore in a fresh process (internal; the PII key in SCALETEST_PII_KEY),
//          --keep-data (keep the snapshot's directory and print its key, to time restores again with --restore-from).
//          --kept-per-write N: instead, what one storefront page view keeps alive for N users of 12 events each (KeptPerWrite;
//          with --breakdown, by type).
const string Usage = "Usage: Segmentation.ScaleTest [--profiles N] [--decides N] [--seed N] [--threads N] [--breakdown N] [--keep-data] | --kept-per-write N";
int profiles = 1_000_000, decides = 100_000, seed = 42, threads = Environment.ProcessorCount, breakdown = 0, keptPerWrite = 0;
string? restoreFrom = null;
var keepData = false;
for (var i = 0; i < args.Length; i++)
{
    var name = args[i];
    if (name == "--keep-data")
    {
        keepData = true;
        continue;
    }

    if (name == "--restore-from" && i + 1 < args.Length)
    {
        restoreFrom = args[++i];
        continue;
    }

    if (i + 1 >= args.Length || !int.TryParse(args[++i].Replace("_", "", StringComparison.Ordinal), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < 1)
    {
        Console.Error.WriteLine($"{name} needs a positive integer");
        Console.Error.WriteLine(Usage);
        return 2;
    }

    switch (name)
    {
        case "--profiles": profiles = value; break;
        case "--decides": decides = value; break;
        case "--seed": seed = value; break;
        case "--threads": threads = value; break;
        case "--breakdown": breakdown = value; break;
        case "--kept-per-write": keptPerWrite = value; break;
        default:
            Console.Error.WriteLine($"unknown option '{name}'");
            Console.Error.WriteLine(Usage);
            return 2;
    }
}

if (keptPerWrite > 0)
{
    KeptPerWrite.Run(keptPerWrite, rounds: 12, breakdown);
    return 0;
}

if (restoreFrom is not null)
{
    // Child of a scale run: restore its snapshot in this fresh process and report.
    var childKey = Convert.FromHexString(Environment.GetEnvironmentVariable("SCALETEST_PII_KEY") ?? throw new InvalidOperationException("SCALETEST_PII_KEY is not set"));
    var result = Restore(restoreFrom, childKey, "restore in a fresh process (server restart)");
    Console.WriteLine(result.Row);
    Console.WriteLine(FormattableString.Invariant($"fingerprint {result.Fingerprint} {result.Customers}"));
    Console.WriteLine(GarbageAfterRestore(result));
    return 0;
}

decides = Math.Min(decides, profiles);
var process = Process.GetCurrentProcess();
Console.WriteLine(FormattableString.Invariant(
    $"scale run: {profiles:N0} profiles, {decides:N0} decides, seed {seed}, {threads} ingest threads; {Environment.ProcessorCount} cores, .NET {Environment.Version}, server GC {System.Runtime.GCSettings.IsServerGC}"));

// The server's wiring (AddSegmentationCore, as in BenchWorld), over the embedded default catalog the server serves.
var domain = Domain();
var clock = domain.GetRequiredService<TimeProvider>();
var catalogs = domain.GetRequiredService<CatalogProvider>();
var store = domain.GetRequiredService<InMemoryProfileStore>();
var rfm = domain.GetRequiredService<RfmModelProvider>();
var memberships = domain.GetRequiredService<MembershipIndex>();
var cache = domain.GetRequiredService<DecisionCache>();
var engine = domain.GetRequiredService<DecisionEngine>();
var ingestion = domain.GetRequiredService<ProfileIngestion>();
var now = clock.GetUtcNow();
var generator = new HistoryGenerator(seed, now);

// JIT warm-up of the whole ingest and decide path on a few profiles outside the measured population.
for (var u = 0; u < 200; u++)
{
    foreach (var e in generator.Events(u, "warm-"))
    {
        ingestion.TrackOne(0, e);
    }

    engine.Decide(new DecisionRequest($"warm-{u}", "", HistoryGenerator.Request));
}

var (heapBefore, wsBefore) = Memory(process);
Console.WriteLine(FormattableString.Invariant($"before: managed heap {Mb(heapBefore)}, working set {Mb(wsBefore)}"));

// Generator alone, so its share of the ingest time is known.
var sw = Stopwatch.StartNew();
long generated = 0;
Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
{
    long n = 0;
    for (var u = t; u < profiles; u += threads)
    {
        n += generator.Events(u).Count;
    }

    Interlocked.Add(ref generated, n);
});
var generateSeconds = sw.Elapsed.TotalSeconds;

// Ingest: each profile's events in time order, profiles spread over the threads.
var statuses = new long[3];
long done = 0;
var step = Math.Max(1, profiles / 10);
sw.Restart();
Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
{
    long accepted = 0, duplicate = 0, rejected = 0;
    for (var u = t; u < profiles; u += threads)
    {
        foreach (var e in generator.Events(u))
        {
            switch (ingestion.TrackOne(0, e).Status)
            {
                case EventStatus.Accepted: accepted++; break;
                case EventStatus.Duplicate: duplicate++; break;
                default: rejected++; break;
            }
        }

        if (Interlocked.Increment(ref done) % step == 0)
        {
            Console.WriteLine(FormattableString.Invariant($"  {Volatile.Read(ref done):N0} profiles ingested, {sw.Elapsed.TotalSeconds:F1} s"));
        }
    }

    Interlocked.Add(ref statuses[0], accepted);
    Interlocked.Add(ref statuses[1], duplicate);
    Interlocked.Add(ref statuses[2], rejected);
});
var ingestSeconds = sw.Elapsed.TotalSeconds;
var events = statuses.Sum();
Console.WriteLine(FormattableString.Invariant(
    $"ingest: {events:N0} events ({(double)events / profiles:F1}/profile; accepted {statuses[0]:N0}, duplicate {statuses[1]:N0}, rejected {statuses[2]:N0}) in {ingestSeconds:F1} s = {events / ingestSeconds:N0} events/s on {threads} threads (generator alone: {generateSeconds:F1} s, {generated / generateSeconds:N0} events/s; ingest net of generation ≈ {events / Math.Max(0.001, ingestSeconds - generateSeconds):N0} events/s)"));

sw.Restart();
var model = rfm.Recompute(store);
var rfmSeconds = sw.Elapsed.TotalSeconds;
Console.WriteLine(FormattableString.Invariant($"RFM recompute: {model.Customers:N0} customers with purchases in {rfmSeconds * 1000:F0} ms"));

sw.Restart();
var refreshed = ingestion.RefreshMemberships();
var refreshSeconds = sw.Elapsed.TotalSeconds;
Console.WriteLine(FormattableString.Invariant($"membership re-evaluation after the RFM change: {refreshed:N0} profiles re-evaluated in {refreshSeconds:F1} s"));

var (heapAfter, wsAfter) = Memory(process);
Console.WriteLine(FormattableString.Invariant(
    $"after: managed heap {Mb(heapAfter)}, working set {Mb(wsAfter)}; per profile: managed {(heapAfter - heapBefore) / (double)profiles:N0} B, working set {(wsAfter - wsBefore) / (double)profiles:N0} B (store count {store.Count:N0})"));
// The same after an aggressive collection, which also returns the GC's free space to the OS: what the
// profiles need resident, without the allocation headroom the server GC keeps committed.
GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
process.Refresh();
var wsCompacted = process.WorkingSet64;
Console.WriteLine(FormattableString.Invariant(
    $"after an aggressive GC: working set {Mb(wsCompacted)}; per profile {(wsCompacted - wsBefore) / (double)profiles:N0} B"));

if (breakdown > 0)
{
    HeapWalk.Report(new object[] { store, memberships }, profiles, breakdown);
}

// Decide on a cache miss: distinct random users, the cache cleared after a warm-up.
var random = new Random(seed);
var sample = new int[profiles];
for (var i = 0; i < profiles; i++)
{
    sample[i] = i;
}

for (var i = 0; i < decides; i++)
{
    var j = random.Next(i, profiles);
    (sample[i], sample[j]) = (sample[j], sample[i]);
}

var ids = sample.AsSpan(0, decides).ToArray().Select(HistoryGenerator.UserId).ToArray();
foreach (var id in ids.Take(2000))
{
    engine.Decide(new DecisionRequest(id, "", HistoryGenerator.Request));
}

cache.Clear();
var (missLatencies, missHits, missSeconds) = DecideAll(engine, ids);
Console.WriteLine(Report("Decide, cache miss", missLatencies, missHits, missSeconds));

// Decide on a hit: the same users again (at most 50,000, well inside the cache's 100,000 entries), asked
// for once more first, since the cache keeps a decision from a context's second request.
var hitIds = ids.Take(50_000).ToArray();
DecideAll(engine, hitIds);
var (hitLatencies, hitHits, hitSeconds) = DecideAll(engine, hitIds);
Console.WriteLine(Report("Decide, cache hit", hitLatencies, hitHits, hitSeconds));

Console.WriteLine();
Console.WriteLine("| profiles | events | ingest s | events/s | managed B/profile | working set B/profile | after aggressive GC B/profile | RFM recompute ms | miss p50 µs | miss p99 µs | hit p50 µs | hit p99 µs |");
Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
Console.WriteLine(FormattableString.Invariant(
    $"| {profiles:N0} | {events:N0} | {ingestSeconds:F1} | {events / ingestSeconds:N0} | {(heapAfter - heapBefore) / (double)profiles:N0} | {(wsAfter - wsBefore) / (double)profiles:N0} | {(wsCompacted - wsBefore) / (double)profiles:N0} | {rfmSeconds * 1000:F0} | {Us(missLatencies, 0.50):F1} | {Us(missLatencies, 0.99):F1} | {Us(hitLatencies, 0.50):F1} | {Us(hitLatencies, 0.99):F1} |"));

// Durability: snapshot the store (as the server's compaction does), then restore it twice: in this
// process into a second store while the original population stays in memory (a harder case for the GC),
// then, with both stores released, in a fresh process, as a server restart does (the old process has
// exited and its memory is free): the number the restore target is about.
var dataDir = Directory.CreateTempSubdirectory("seg-scale-").FullName;
try
{
    var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
    if (keepData)
    {
        Console.WriteLine($"snapshot directory {dataDir}, PII key {Convert.ToHexString(key)}");
    }

    var pii = Pii(catalogs, key);
    sw.Restart();
    var remembered = WriteMeasurementCheckpoint(domain, dataDir, profiles, seed);
    Console.WriteLine(FormattableString.Invariant($"measurement checkpoint: {remembered:N0} remembered decisions over 30 days, {new FileInfo(Path.Combine(dataDir, MeasurementCheckpointFile.FileName)).Length / 1048576.0:0} MB, written in {sw.Elapsed.TotalSeconds:0.0} s"));
    sw.Restart();
    var written = WriteSnapshot(store, dataDir, pii);
    Console.WriteLine(FormattableString.Invariant(
        $"snapshot: {written.Profiles:N0} profiles written in {sw.Elapsed.TotalSeconds:F1} s, {written.Bytes / 1048576.0:F0} MB ({written.Bytes / (double)profiles:F0} B/profile)"));

    var fingerprint = Fingerprint(store);
    var expected = ids.Take(1000).Select(id => store.Get(id)!).ToArray();
    var restored = Restore(dataDir, key, "restore in this process, original population still in memory");
    var same = expected.Count(p => restored.Store!.Get(p.UserId) is { } r && r.Version == p.Version && r.TotalEvents == p.TotalEvents && r.Revenue.Equals(p.Revenue) && r.Attributes.Count == p.Attributes.Count);
    var row = restored.Row;
    var restoredCustomers = restored.Customers;

    // Release both populations and return their memory to the OS before the "restart".
    store = null!;
    restored = null!;
    engine = null!;
    ingestion = null!;
    memberships = null!;
    cache = null!;
    domain.Dispose();
    domain = null!;
    GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    process.Refresh();
    Console.WriteLine(FormattableString.Invariant($"both populations released: this process's managed heap {Mb(GC.GetTotalMemory(forceFullCollection: false))}, working set {Mb(process.WorkingSet64)}"));
    var fresh = RestoreInFreshProcess(dataDir, key);
    Console.WriteLine(FormattableString.Invariant($"  {same}/{expected.Length} sampled profiles identical in this process; fresh process: fingerprint {(fresh.Fingerprint == fingerprint ? "matches" : "DIFFERS from")} the original store's"));
    Console.WriteLine("| restore | profiles | snapshot MB | restore s | measurement state s | Decide served s | + capture read and memberships s | fully ready s |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
    Console.WriteLine(fresh.Row);
    Console.WriteLine(row);
    if (same != expected.Length || fresh.Fingerprint != fingerprint || restoredCustomers != model.Customers || fresh.Customers != model.Customers)
    {
        Console.Error.WriteLine("restore mismatch");
        return 1;
    }
}
finally
{
    if (keepData)
    {
        Console.WriteLine($"kept {dataDir}; time its restore again with: SCALETEST_PII_KEY=<key above> dotnet run -c Release --project tests/Segmentation.ScaleTest -- --restore-from {dataDir}");
    }
    else
    {
        Directory.Delete(dataDir, recursive: true);
    }
}

GC.KeepAlive(generator);
return statuses[2] > 0 ? 1 : 0;

static (long[] Latencies, int Hits, double Seconds) DecideAll(DecisionEngine engine, string[] ids)
{
    var latencies = new long[ids.Length];
    var hits = 0;
    var start = Stopwatch.GetTimestamp();
    for (var i = 0; i < ids.Length; i++)
    {
        var t = Stopwatch.GetTimestamp();
        var d = engine.Decide(new DecisionRequest(ids[i], "", HistoryGenerator.Request));
        latencies[i] = Stopwatch.GetTimestamp() - t;
        hits += d.FromCache ? 1 : 0;
    }

    var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
    Array.Sort(latencies);
    return (latencies, hits, seconds);
}

static string Report(string what, long[] sorted, int hits, double seconds) => FormattableString.Invariant(
    $"{what}: {sorted.Length:N0} users, {hits:N0} served from cache, p50 {Us(sorted, 0.50):F1} µs, p90 {Us(sorted, 0.90):F1} µs, p99 {Us(sorted, 0.99):F1} µs, max {Us(sorted, 1.0):F0} µs, {sorted.Length / seconds:N0} decides/s on one thread");

static double Us(long[] sorted, double q) =>
    sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)] * 1_000_000.0 / Stopwatch.Frequency;

static (long Heap, long WorkingSet) Memory(Process process)
{
    var heap = GC.GetTotalMemory(forceFullCollection: true);
    GC.WaitForPendingFinalizers();
    heap = GC.GetTotalMemory(forceFullCollection: true);
    process.Refresh();
    return (heap, process.WorkingSet64);
}

static string Mb(long bytes) => FormattableString.Invariant($"{bytes / 1048576.0:N0} MiB");

// As the server's compaction does. Waited for, not awaited: the program's rest would otherwise run as the
// compaction's continuation, on a stack whose frames still hold the store.
static SnapshotInfo WriteSnapshot(InMemoryProfileStore store, string dataDir, PiiProtector pii)
{
    using var log = new FileChangeLog(dataDir, pii: pii);
    using var compactor = new StoreCompactor(store, log, pii);
    log.Recover(_ => { });
    compactor.CompactAsync().GetAwaiter().GetResult();
    return compactor.Last!;
}

// The measurement state a server of this population saves every minute: its ledger full (the decisions remembered for
// attribution, by default about a million, over the last 30 days, of the population's users, every segment, two channels)
// and their KPIs, written where the server keeps it; the restore reads it before serving, as the server's does.
static int WriteMeasurementCheckpoint(ServiceProvider domain, string dataDir, int profiles, int seed)
{
    var measurement = domain.GetRequiredService<DecisionMeasurement>();
    var catalog = domain.GetRequiredService<CatalogProvider>().Current;
    var now = domain.GetRequiredService<TimeProvider>().GetUtcNow();
    var capacity = measurement.Ledger.Capacity;
    var random = new Random(seed);
    for (var i = 0; i < capacity; i++)
    {
        var at = now.AddMinutes(-random.Next(30 * 24 * 60));
        var (sequence, _) = measurement.Ledger.Issue(at);
        var segment = catalog.Segments[random.Next(catalog.Segments.Count)];
        measurement.Remember(sequence, HistoryGenerator.UserId(random.Next(profiles)), measurement.KeyFor(catalog, segment, i % 4 == 0 ? "email" : "web"), at.UtcTicks);
    }

    measurement.Drain();
    Checkpoint(domain, dataDir).Save();
    return capacity;
}

static MeasurementCheckpointFile Checkpoint(ServiceProvider domain, string dataDir) => new(
    dataDir,
    domain.GetRequiredService<DecisionMeasurement>(),
    domain.GetRequiredService<SegmentSizeHistory>(),
    domain.GetRequiredService<ChurnHistory>(),
    domain.GetRequiredService<OutcomeRecorder>(),
    domain.GetRequiredService<CatalogProvider>());

// The domain wired as the server wires it, its catalog loaded.
static ServiceProvider Domain()
{
    var services = new ServiceCollection();
    services.AddSegmentationCore();
    var provider = services.BuildServiceProvider();
    provider.GetRequiredService<CatalogStartup>().Load();
    return provider;
}

static PiiProtector Pii(CatalogProvider catalogs, byte[] key) =>
    new(key, name => catalogs.Current.Traits.TryGetValue(name, out var t) && t.Pii);

// Restores the snapshot in dataDir into a new store as the server's start-up does (ProfileIngestion.Restore over the
// data directory: the snapshot, the log after it, the logged RFM model, the retention sweep), reads the measurement
// checkpoint (remembered decisions, KPIs, histories; the change stream's journal is not written here), captures the restored
// profiles for relearning related products (after which the server serves Decide), then evaluates the memberships
// (after which it is fully ready), and reports the times. RFM is recomputed afterwards, outside the timings, only to
// check the restore: the server restores the model its snapshot carries instead.
static RestoreResult Restore(string dataDir, byte[] key, string what)
{
    using var domain = Domain();
    var store = domain.GetRequiredService<InMemoryProfileStore>();
    var ingestion = domain.GetRequiredService<ProfileIngestion>();
    var clock = domain.GetRequiredService<TimeProvider>();
    var pii = Pii(domain.GetRequiredService<CatalogProvider>(), key);
    using var files = new FileStore(dataDir, store, pii, state: null);
    var checkpoint = Checkpoint(domain, dataDir); // the server builds measurement's state (its ledger) before its restore starts
    var process = Process.GetCurrentProcess();
    var sw = Stopwatch.StartNew();
    var cpuBefore = process.TotalProcessorTime;
    var kernelBefore = process.PrivilegedProcessorTime;
    var pauseBefore = GC.GetTotalPauseDuration();
    var gcsBefore = GC.CollectionCount(0);
    var (gen1Before, gen2Before) = (GC.CollectionCount(1), GC.CollectionCount(2));
    var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
    var restore = ingestion.Restore(files);
    var snapshot = restore.Snapshot!;
    var restoreSeconds = sw.Elapsed.TotalSeconds;
    process.Refresh();
    var cpu = (process.TotalProcessorTime - cpuBefore).TotalSeconds;
    var kernel = (process.PrivilegedProcessorTime - kernelBefore).TotalSeconds;
    var pause = (GC.GetTotalPauseDuration() - pauseBefore).TotalSeconds;
    var gcs = GC.CollectionCount(0) - gcsBefore;
    var (gen1, gen2) = (GC.CollectionCount(1) - gen1Before, GC.CollectionCount(2) - gen2Before);
    var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
    var workingSet = process.WorkingSet64;
    var heap = GC.GetGCMemoryInfo();

    // As the server's restorer does next, before serving: the remembered decisions, KPIs and histories (timed on their
    // own; the figures above are the profiles' restore alone, comparable with the earlier rounds').
    var beforeMeasurement = sw.Elapsed.TotalSeconds;
    if (!checkpoint.Restore())
    {
        throw new InvalidOperationException($"{dataDir} holds no measurement checkpoint that reads ({MeasurementCheckpointFile.FileName}): a directory the scale test kept before it wrote one? Generate it again");
    }

    var measurementSeconds = sw.Elapsed.TotalSeconds - beforeMeasurement;
    var last = files.Compactor.Last;
    var region = (last?.CollectorHoldBytes ?? 0) >> 20;
    var collector = last?.CollectorHold switch
    {
        Segmentation.Storage.CollectorHoldOutcome.Held => $"the collector held off (a no-GC region of {region:N0} MiB)",
        Segmentation.Storage.CollectorHoldOutcome.EndedEarly => $"the collector running past its no-GC region of {region:N0} MiB",
        Segmentation.Storage.CollectorHoldOutcome.Refused => $"the collector as usual (a no-GC region of {region:N0} MiB refused)",
        Segmentation.Storage.CollectorHoldOutcome.NoRoom => "the collector as usual (no room for a no-GC region)",
        _ => "the collector as usual",
    };

    // As the server's restorer does before serving: a capture of the restored profiles for relearning related products
    // begun (and the store's count read for the membership rebuild); Decide is served from here.
    var capture = store.BeginCapture();
    _ = store.Count;
    var servedSeconds = sw.Elapsed.TotalSeconds;

    // As its background task does first: the capture read.
    Profile[]? restored = capture.Take();
    var captureSeconds = sw.Elapsed.TotalSeconds - servedSeconds;
    var membershipPauseBefore = GC.GetTotalPauseDuration();
    var membershipCpuBefore = process.TotalProcessorTime;
    var evaluated = ingestion.EvaluateNewMemberships();
    var membershipSeconds = sw.Elapsed.TotalSeconds - servedSeconds - captureSeconds;
    var relearning = Stopwatch.StartNew();
    var relations = new Segmentation.Core.Application.Products.ProductRelations();
    relations.Learn(restored); // after the memberships, in the background in the server
    restored = null;
    var relearnSeconds = relearning.Elapsed.TotalSeconds;
    process.Refresh();
    var membershipPause = (GC.GetTotalPauseDuration() - membershipPauseBefore).TotalSeconds;
    var membershipCpu = (process.TotalProcessorTime - membershipCpuBefore).TotalSeconds;
    var rfm = Stopwatch.StartNew();
    var model = new RfmModelProvider(clock).Recompute(store); // the check, not part of a restart
    var rfmSeconds = rfm.Elapsed.TotalSeconds;
    Console.WriteLine(FormattableString.Invariant(
        $"{what}: {snapshot.Profiles:N0} profiles from the snapshot + {restore.Log.Records:N0} log records in {restoreSeconds:0.0} s wall (snapshot read {snapshot.Elapsed.TotalSeconds:0.0} s on {Environment.ProcessorCount} cores; the rest: log, logged RFM model, retention sweep: {restore.Expired.ProfilesChanged:N0} profiles changed), {cpu:0.0} s CPU ({kernel:0.0} s of it in the kernel), {gcs} GCs ({gen1} of them gen1 or gen2, {gen2} gen2) pausing {pause:0.0} s (snapshot read with {collector}), {allocated / (double)Math.Max(1, snapshot.Profiles):N0} B allocated per profile, working set {workingSet / 1048576.0:N0} MiB (peak {process.PeakWorkingSet64 / 1048576.0:N0} MiB, GC heap {heap.HeapSizeBytes / 1048576.0:N0} MiB, committed {heap.TotalCommittedBytes / 1048576.0:N0} MiB); the measurement state restored in {measurementSeconds:0.00} s; **Decide served after {servedSeconds:0.0} s**; in the background: the restored profiles' capture read in {captureSeconds * 1000:0} ms, memberships of {evaluated:N0} profiles {membershipSeconds:0.0} s ({membershipCpu:0.0} s CPU, GC pauses {membershipPause:0.0} s), fully ready (membership index complete) after {servedSeconds + captureSeconds + membershipSeconds:0.0} s; related products relearned in the background in {relearnSeconds:0.0} s ({relations.Products:N0} products); RFM recomputed for the check in {rfmSeconds:0.0} s (not part of a restart)"));
    var row = FormattableString.Invariant(
        $"| {what} | {snapshot.Profiles:N0} | {snapshot.Bytes / 1048576.0:0} | {restoreSeconds:0.0} | {measurementSeconds:0.00} | {servedSeconds:0.0} | {captureSeconds + membershipSeconds:0.0} | {servedSeconds + captureSeconds + membershipSeconds:0.0} |");
    return new RestoreResult(store, model.Customers, row, Fingerprint(store));
}

// The collections that follow a restore while decisions are served: short-lived garbage (what requests leave behind),
// 2 KB per restored profile (64 MiB at least), allocated over the restored store, with the collections' pauses in all and
// the most paused in any one megabyte (the longest pause, or two shorter ones). A restore leaves its profiles young (with
// or without a no-GC region); the first collections after it promote them, which is where the long pauses are.
static string GarbageAfterRestore(RestoreResult restored)
{
    var pauseBefore = GC.GetTotalPauseDuration();
    var gcsBefore = GC.CollectionCount(0);
    var longest = TimeSpan.Zero;
    var megabytes = (int)Math.Max(64, (restored.Store?.Count ?? 0) * 2048L >> 20);
    var process = Process.GetCurrentProcess();
    var cpuBefore = process.TotalProcessorTime;
    var sw = Stopwatch.StartNew();
    for (var megabyte = 0; megabyte < megabytes; megabyte++)
    {
        var pausedBefore = GC.GetTotalPauseDuration();
        for (var i = 0; i < 10_000; i++)
        {
            GC.KeepAlive(new byte[80]); // about 100 B each with the array's header: 1 MB per round
        }

        var paused = GC.GetTotalPauseDuration() - pausedBefore; // this megabyte's pauses: the longest pause, or more
        longest = paused > longest ? paused : longest;
    }

    GC.KeepAlive(restored.Store);
    process.Refresh();
    return FormattableString.Invariant(
        $"then {megabytes:N0} MB of request garbage over the restored store: {GC.CollectionCount(0) - gcsBefore} GCs pausing {(GC.GetTotalPauseDuration() - pauseBefore).TotalMilliseconds:0} ms in all, the longest (the most paused in one megabyte) {longest.TotalMilliseconds:0} ms, in {sw.Elapsed.TotalSeconds:0.0} s ({(process.TotalProcessorTime - cpuBefore).TotalSeconds:0.0} s CPU)");
}

// Runs this program again with --restore-from, so the restore starts from an empty heap like a server restart.
static RestoreResult RestoreInFreshProcess(string dataDir, byte[] key)
{
    var exe = Environment.ProcessPath!;
    var start = new ProcessStartInfo(exe) { RedirectStandardOutput = true, UseShellExecute = false };
    if (Path.GetFileNameWithoutExtension(exe) == "dotnet")
    {
        start.ArgumentList.Add(typeof(HistoryGenerator).Assembly.Location);
    }

    start.ArgumentList.Add("--restore-from");
    start.ArgumentList.Add(dataDir);
    start.Environment["SCALETEST_PII_KEY"] = Convert.ToHexString(key);
    using var child = Process.Start(start)!;
    string? row = null, fingerprint = null;
    int customers = -1;
    while (child.StandardOutput.ReadLine() is { } line)
    {
        if (line.StartsWith("fingerprint ", StringComparison.Ordinal))
        {
            var parts = line.Split(' ');
            fingerprint = parts[1];
            customers = int.Parse(parts[2], CultureInfo.InvariantCulture);
        }
        else if (line.StartsWith('|'))
        {
            row = line;
        }
        else
        {
            Console.WriteLine(line);
        }
    }

    child.WaitForExit();
    if (child.ExitCode != 0 || row is null || fingerprint is null)
    {
        throw new InvalidOperationException($"the fresh-process restore failed (exit code {child.ExitCode})");
    }

    return new RestoreResult(null, customers, row, fingerprint); // the store stayed in the child
}

// Order-independent digest of what a restore must reproduce: ids, versions, events, revenue, attributes.
static string Fingerprint(InMemoryProfileStore store)
{
    ulong sum = 0;
    long count = 0;
    var hash = new System.IO.Hashing.XxHash64();
    Span<byte> numbers = stackalloc byte[8 * 6];
    foreach (var p in store.Snapshot())
    {
        hash.Reset();
        hash.Append(System.Text.Encoding.UTF8.GetBytes(p.UserId + "\n" + p.CurrentSegment));
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers, p.Version);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[8..], p.TotalEvents);
        System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(numbers[16..], p.Revenue);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[24..], p.Attributes.Count);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[32..], p.SegmentHistory.Count);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(numbers[40..], p.Sessions);
        hash.Append(numbers);
        sum += hash.GetCurrentHashAsUInt64();
        count++;
    }

    return FormattableString.Invariant($"{count}:{sum:x}");
}

internal sealed record RestoreResult(InMemoryProfileStore? Store, int Customers, string Row, string Fingerprint);
