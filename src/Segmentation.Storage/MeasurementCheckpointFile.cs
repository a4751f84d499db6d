using System.IO.Hashing;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Rendering;

namespace Segmentation.Storage;

/// <summary>
/// Measurement's state in one file of the data directory (<c>measurement.bin</c>): the served decisions the ledger
/// remembers (id bits, user, winning segment, catalog version, channel, time), the hourly and daily KPI counters,
/// the reach sketches, segment size and churn histories, and the impressions and conversions already credited.
/// Written whole to a temporary file, flushed and renamed over the previous one, so a crash leaves either the old
/// or the new file; a checksum (XXH64) ends it. A file that cannot be read is renamed aside with a warning and
/// measurement starts empty: KPIs are derived data, and never a reason to refuse to start.
/// With a <see cref="DecisionJournalFile"/>, decisions served after the last save are not lost with a crash either: each
/// save starts a new journal file before it reads the ledger and records its number (after the experiment tables), a
/// restore replays the journal from that file on, and the files before it are deleted once the save is on disk.
/// </summary>
public sealed class MeasurementCheckpointFile(
    string directory,
    DecisionMeasurement measurement,
    SegmentSizeHistory sizes,
    ChurnHistory churn,
    OutcomeRecorder outcomes,
    CatalogProvider catalogs,
    ILogger? logger = null,
    TimeProvider? time = null,
    DecisionJournalFile? journal = null) : IMeasurementCheckpoint
{
    /// <summary>The file's name in the data directory.</summary>
    public const string FileName = "measurement.bin";

    private const string Magic = "SEGMEAS1";
    // 2: experiment arms in decision keys, KPI cells and reach; 3: experiment exposures; 4: their segments. The experiment
    // tables (weights, weight change, end, removal) follow as a trailer that a reader of format 4 without it ignores, so
    // the previous version still reads a file this one wrote (a rollback of the deployment keeps the KPIs); so do the
    // journal position, the salts, the first decision not counted and the outcomes held for users not exposed yet.
    private const int Format = 4;

    // A table's weight count that says a bandit allocated its users until the last publish (no weights: they moved); an
    // earlier version reads any negative count as weights not known.
    private const int BanditWeights = -2;

    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>False to write a file as the previous version did, without the experiment tables' trailer (for tests of reading one).</summary>
    internal bool WriteExperimentTables { get; init; } = true;

    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly object _gate = new();

    /// <summary>Path of the file.</summary>
    public string Path { get; } = System.IO.Path.Combine(directory, FileName);

    /// <inheritdoc />
    public void Save()
    {
        lock (_gate)
        {
            // Outcomes wait only while the counters are copied, not while the ledger and the file are written.
            CapturedState? state = null;
            outcomes.WhileNotCrediting(() => state = Capture());
            DataDirectory.WriteAtomically(Path, file =>
            {
                var hash = new XxHash64();
                using (var writer = new BinaryWriter(new HashingStream(file, hash), Encoding.UTF8, leaveOpen: true))
                {
                    Write(writer, state!);
                }

                file.Write(BitConverter.GetBytes(hash.GetCurrentHashAsUInt64()));
            });
            journal?.DeleteBefore(state!.JournalFrom);
        }
    }

    // What a save holds besides the ledger, copied while no outcome is credited: every outcome credit the journal wrote
    // so far is in a file before JournalFrom and in this state; outcomes credited from here on are in the new file only.
    private sealed record CapturedState(long JournalFrom, long Issued, Dictionary<Segment, int> Segments, byte[] Counters);

    private CapturedState Capture()
    {
        var journalFrom = journal?.Rotate() ?? 0;
        measurement.Exposures.Prune(_time.GetUtcNow().UtcTicks); // experiments removed long ago are not written again

        // The KPIs and exposures hold exactly the decisions before `counted` (no drain runs meanwhile); the ledger is saved
        // up to `issued`, read after it, and a restore counts the decisions in between (a drain stops at one still being
        // written, and decisions are issued while it runs).
        return measurement.WhileDrained(counted =>
        {
            var issued = measurement.Ledger.Issued;
            var segments = new Dictionary<Segment, int>(ReferenceEqualityComparer.Instance);
            using var counters = new MemoryStream();
            using (var w = new BinaryWriter(counters, Encoding.UTF8, leaveOpen: true))
            {
                WriteCounters(w, segments, journalFrom, counted);
            }

            return new CapturedState(journalFrom, issued, segments, counters.ToArray());
        });
    }

    /// <inheritdoc />
    public bool Restore()
    {
        var restored = RestoreCheckpoint(out var journalFrom);

        // Decisions served after that save (all of them, without one), from the journal.
        var replayed = journal?.Replay(journalFrom) ?? 0;
        if (replayed > 0)
        {
            _logger.LogInformation("Restored {Decisions} remembered decisions from the decision journal", replayed);
        }

        if (restored || replayed > 0)
        {
            measurement.AnnounceRestored(); // after the journal too: a bandit's allocation reads every outcome known
        }

        return restored || replayed > 0;
    }

    private bool RestoreCheckpoint(out long journalFrom)
    {
        journalFrom = 0;
        if (!File.Exists(Path))
        {
            return false;
        }

        try
        {
            var bytes = File.ReadAllBytes(Path);
            if (bytes.Length < 8 || XxHash64.HashToUInt64(bytes.AsSpan(0, bytes.Length - 8)) != BitConverter.ToUInt64(bytes, bytes.Length - 8))
            {
                throw new InvalidDataException("its checksum does not match its contents");
            }

            using var reader = new BinaryReader(new MemoryStream(bytes, 0, bytes.Length - 8, writable: false), Encoding.UTF8);
            journalFrom = Read(reader);
            return true;
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IOException or ArgumentException)
        {
            var aside = Path + ".unreadable-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture);
            File.Move(Path, aside, overwrite: true);
            _logger.LogWarning("The saved measurement state {Path} could not be read ({Reason}); it was moved to {Aside} and KPIs, remembered decisions and histories start empty. Profiles are not affected.", Path, ex.Message, aside);
            return false;
        }
    }

    /// <inheritdoc />
    public void DeleteSetAside()
    {
        var folder = System.IO.Path.GetDirectoryName(Path)!;
        foreach (var aside in Directory.EnumerateFiles(folder, FileName + ".unreadable-*"))
        {
            File.Delete(aside);
        }
    }

    private void Write(BinaryWriter w, CapturedState state)
    {
        w.Write(Magic);
        w.Write(Format);

        // Segments (as decided: id, name, type, priority, fallback, variant ids; the KPIs' first) and decision keys, each
        // written once. The ledger is read twice (keys first, then the decisions) rather than copied: a million decisions
        // would be 50 MB of copies. A slot overwritten between the reads is simply skipped.
        var (issued, segments) = (state.Issued, state.Segments);
        var keys = new Dictionary<DecisionKey, int>(ReferenceEqualityComparer.Instance);
        foreach (var d in measurement.Ledger.Remembered(issued))
        {
            if (keys.TryAdd(d.Key, keys.Count))
            {
                segments.TryAdd(d.Segment, segments.Count);
            }
        }

        w.Write(segments.Count);
        foreach (var s in segments.Keys)
        {
            DecisionKeyCodec.WriteSegment(w, s);
        }

        w.Write(keys.Count);
        foreach (var k in keys.Keys)
        {
            DecisionKeyCodec.WriteKey(w, k, segments[k.Segment]);
        }

        // The ledger.
        w.Write(measurement.Ledger.ProcessBits);
        w.Write(issued);
        foreach (var d in measurement.Ledger.Remembered(issued))
        {
            if (keys.TryGetValue(d.Key, out var key))
            {
                w.Write(d.Sequence);
                w.Write(d.UserId);
                w.Write(key);
                w.Write(d.Ticks);
            }
        }

        w.Write(-1L); // the end of the decisions
        w.Write(state.Counters);
    }

    // Everything after the ledger: KPIs, histories, credited outcomes, experiments. Adds the KPIs' segments to the
    // table written before the ledger.
    private void WriteCounters(BinaryWriter w, Dictionary<Segment, int> segments, long journalFrom, long counted)
    {
        var versions = measurement.Kpis.SegmentVersions().ToList();
        foreach (var (_, _, definition) in versions)
        {
            segments.TryAdd(definition, segments.Count);
        }

        // KPIs.
        w.Write(versions.Count);
        foreach (var (segment, version, definition) in versions)
        {
            w.Write(segment);
            w.Write(version);
            w.Write(segments[definition]);
        }

        var cells = measurement.Kpis.Cells().ToList();
        w.Write(cells.Count);
        foreach (var c in cells)
        {
            w.Write(c.Day);
            w.Write(c.Period);
            w.Write(c.Segment);
            w.Write(c.Version);
            w.Write(c.Channel);
            w.Write(c.Variant is { } kind ? (int)kind : -1);
            w.Write(c.Counts.Length);
            foreach (var n in c.Counts)
            {
                w.Write(n);
            }

            w.Write(c.Revenue);
            w.Write(c.Arm);
        }

        var reach = measurement.Kpis.ReachSketches().ToList();
        w.Write(reach.Count);
        foreach (var r in reach)
        {
            w.Write(r.Segment);
            w.Write(r.Version);
            w.Write(r.Channel);
            w.Write(r.Day);
            w.Write(r.Registers.Length);
            w.Write(r.Registers);
            w.Write(r.Arm);
        }

        var armIds = measurement.Kpis.ArmVariantIds().ToList();
        w.Write(armIds.Count);
        foreach (var (arm, ids) in armIds)
        {
            w.Write(arm);
            w.Write(ids.Length);
            foreach (var id in ids)
            {
                w.Write(id);
            }
        }

        // Size and churn histories.
        WriteRings(w, sizes.Rings().ToList());
        WriteRings(w, churn.Rings().ToList());

        // Credited impressions and conversions.
        var impressions = outcomes.Impressions().ToList();
        w.Write(impressions.Count);
        foreach (var (user, touches) in impressions)
        {
            w.Write(user);
            w.Write(touches.Length);
            foreach (var (sequence, ticks) in touches)
            {
                w.Write(sequence);
                w.Write(ticks);
            }
        }

        var conversions = outcomes.Conversions().ToList();
        w.Write(conversions.Count);
        foreach (var (sequence, order) in conversions)
        {
            w.Write(sequence);
            w.Write(order);
        }

        // Experiment exposures: every user's recorded arm, outcomes since exposure and pre-exposure values.
        var exposures = measurement.Exposures.Records().ToList();
        w.Write(exposures.Count);
        foreach (var (experiment, arm, segment, e) in exposures)
        {
            w.Write(experiment);
            w.Write(arm);
            w.Write(segment);
            w.Write(e.Subject!);
            w.Write(e.AssignedTicks);
            w.Write(e.ExposedTicks);
            w.Write(e.Impressions);
            w.Write(e.Clicks);
            w.Write(e.Conversions);
            w.Write(e.Unsubscribes);
            w.Write(e.Revenue);
            w.Write(e.PreRevenue);
            w.Write(e.PreConversions);
            w.Write(e.PreClicks);
        }

        // The trailer: each experiment's table (the weights its users were assigned under, when they changed, when it
        // ended or left the catalog).
        if (!WriteExperimentTables)
        {
            return;
        }

        var tables = measurement.Exposures.Tables().ToList();
        w.Write(tables.Count);
        foreach (var t in tables)
        {
            w.Write(t.ExperimentId);
            w.Write(t.WeightsChangedTicks);
            w.Write(t.EndTicks);
            w.Write(t.RemovedTicks);
            w.Write(t.ReadsRecords);
            w.Write(t.Weights?.Count ?? (t.Bandit ? BanditWeights : -1));
            foreach (var (arm, weight) in t.Weights ?? [])
            {
                w.Write(arm);
                w.Write(weight);
            }
        }

        w.Write(journalFrom); // the first decision journal file this save does not hold (a reader without it ignores it)

        // Each table's salt, in the order of the tables above ("" when not known; a reader without it ignores it).
        w.Write(tables.Count);
        foreach (var t in tables)
        {
            w.Write(t.Salt ?? "");
        }

        w.Write(counted); // the first decision the KPIs above do not count (a reader without it takes every saved one as counted)

        // Outcomes held for users not exposed yet (a reader without them ignores them: they would then not count).
        var held = measurement.Exposures.Held().ToList();
        w.Write(held.Count);
        foreach (var (experiment, subject, outcome) in held)
        {
            w.Write(experiment);
            w.Write(subject);
            w.Write((int)outcome.Type);
            w.Write(outcome.Value);
            w.Write(outcome.Earliest);
        }
    }

    // Restores the file's state; returns the first decision journal file it does not hold (0: every file).
    private long Read(BinaryReader r)
    {
        if (r.ReadString() != Magic || r.ReadInt32() != Format)
        {
            throw new InvalidDataException("it is not a measurement state file of a known format");
        }

        var current = catalogs.Current;
        var segments = new Segment[r.ReadInt32()];
        for (var i = 0; i < segments.Length; i++)
        {
            segments[i] = DecisionKeyCodec.ReadSegment(r, current);
        }

        var keys = new DecisionKey[r.ReadInt32()];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = DecisionKeyCodec.ReadKey(r, segments, current);
        }

        var processBits = r.ReadUInt64();
        var issued = r.ReadInt64();
        var decisions = new List<(long, string, DecisionKey, long)>();
        for (var sequence = r.ReadInt64(); sequence >= 0; sequence = r.ReadInt64())
        {
            decisions.Add((sequence, r.ReadString(), keys[r.ReadInt32()], r.ReadInt64()));
        }

        var versions = new (string, long, Segment)[r.ReadInt32()];
        for (var i = 0; i < versions.Length; i++)
        {
            versions[i] = (r.ReadString(), r.ReadInt64(), segments[r.ReadInt32()]);
        }

        var cells = new KpiStore.CellState[r.ReadInt32()];
        for (var i = 0; i < cells.Length; i++)
        {
            var (day, period, segment, version, channel, variant) = (r.ReadBoolean(), r.ReadInt64(), r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadInt32());
            var counts = new long[r.ReadInt32()];
            for (var n = 0; n < counts.Length; n++)
            {
                counts[n] = r.ReadInt64();
            }

            var revenue = r.ReadDouble();
            cells[i] = new KpiStore.CellState(day, period, segment, version, channel.Length == 0 ? "" : Channels.Intern(channel), variant < 0 ? null : (VariantKind)variant, counts, revenue, r.ReadString());
        }

        var reach = new KpiStore.ReachState[r.ReadInt32()];
        for (var i = 0; i < reach.Length; i++)
        {
            var (segment, version, channel, day) = (r.ReadString(), r.ReadInt64(), r.ReadString(), r.ReadInt64());
            var registers = r.ReadBytes(r.ReadInt32());
            reach[i] = new KpiStore.ReachState(segment, version, Channels.Intern(channel), day, registers, r.ReadString());
        }

        var armIds = new List<KeyValuePair<string, string[]>>();
        for (var count = r.ReadInt32(); count > 0; count--)
        {
            var arm = r.ReadString();
            var ids = new string[r.ReadInt32()];
            for (var n = 0; n < ids.Length; n++)
            {
                ids[n] = r.ReadString();
            }

            armIds.Add(new(arm, ids));
        }

        var sizeRings = ReadRings(r);
        var churnRings = ReadRings(r);

        var impressions = new (string, (long, long)[])[r.ReadInt32()];
        for (var i = 0; i < impressions.Length; i++)
        {
            var user = r.ReadString();
            var touches = new (long, long)[r.ReadInt32()];
            for (var t = 0; t < touches.Length; t++)
            {
                touches[t] = (r.ReadInt64(), r.ReadInt64());
            }

            impressions[i] = (user, touches);
        }

        var conversions = new (long, string)[r.ReadInt32()];
        for (var i = 0; i < conversions.Length; i++)
        {
            conversions[i] = (r.ReadInt64(), r.ReadString());
        }

        var exposures = new (string, string, string, ExposureRecord)[r.ReadInt32()];
        for (var i = 0; i < exposures.Length; i++)
        {
            var (experiment, arm, segment) = (r.ReadString(), r.ReadString(), r.ReadString());
            exposures[i] = (experiment, arm, segment, new ExposureRecord
            {
                Subject = r.ReadString(),
                AssignedTicks = r.ReadInt64(),
                ExposedTicks = r.ReadInt64(),
                Impressions = r.ReadInt32(),
                Clicks = r.ReadInt32(),
                Conversions = r.ReadInt32(),
                Unsubscribes = r.ReadInt32(),
                Revenue = r.ReadDouble(),
                PreRevenue = r.ReadDouble(),
                PreConversions = r.ReadInt32(),
                PreClicks = r.ReadInt32(),
            });
        }

        var tables = new List<ExposureTableState>();
        for (var count = r.BaseStream.Position < r.BaseStream.Length ? r.ReadInt32() : 0; count > 0; count--) // a file without the trailer has none
        {
            var (experiment, changed, end, removed, reads, arms) = (r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadBoolean(), r.ReadInt32());
            var weights = arms < 0 ? null : new (string, double)[arms];
            for (var a = 0; a < arms; a++)
            {
                weights![a] = (r.ReadString(), r.ReadDouble());
            }

            tables.Add(new ExposureTableState(experiment, changed, end, removed, reads, weights, Bandit: arms == BanditWeights));
        }

        var journalFrom = r.BaseStream.Position < r.BaseStream.Length ? r.ReadInt64() : 0;
        if (r.BaseStream.Position < r.BaseStream.Length)
        {
            var salts = r.ReadInt32();
            if (salts != tables.Count)
            {
                throw new InvalidDataException($"{salts} experiment salts for {tables.Count} tables");
            }

            for (var i = 0; i < salts; i++)
            {
                var salt = r.ReadString();
                tables[i] = tables[i] with { Salt = salt.Length == 0 ? null : salt };
            }
        }

        long? counted = r.BaseStream.Position < r.BaseStream.Length ? r.ReadInt64() : null;
        var held = new List<(string, string, HeldOutcome)>();
        for (var count = r.BaseStream.Position < r.BaseStream.Length ? r.ReadInt32() : 0; count > 0; count--)
        {
            var (experiment, subject, type) = (r.ReadString(), r.ReadString(), r.ReadInt32());
            if (!Enum.IsDefined((OutcomeType)type))
            {
                throw new InvalidDataException($"an outcome type {type} held for an experiment");
            }

            held.Add((experiment, subject, new HeldOutcome((OutcomeType)type, r.ReadDouble(), r.ReadInt64())));
        }

        // Everything was read: only now is anything restored, so an unreadable file changes nothing.
        // No drain runs meanwhile (its timer runs during a restore): it would count decisions into what is then overwritten,
        // or count the restored ones again.
        measurement.Restore(counted, () =>
        {
            measurement.Ledger.Restore(processBits, issued, decisions);
            measurement.Kpis.Restore(cells, reach, versions, armIds, current);
            sizes.Restore(sizeRings);
            churn.Restore(churnRings);
            outcomes.Restore(impressions, conversions);
            measurement.Exposures.Restore(exposures, tables, current, _time.GetUtcNow().UtcTicks, held);
        });
        return journalFrom;
    }

    private static void WriteRings(BinaryWriter w, List<(string Segment, long[] Values, long[] Hours)> rings)
    {
        w.Write(rings.Count);
        foreach (var (segment, values, hours) in rings)
        {
            w.Write(segment);
            w.Write(values.Length);
            for (var i = 0; i < values.Length; i++)
            {
                w.Write(values[i]);
                w.Write(hours[i]);
            }
        }
    }

    private static List<(string, long[], long[])> ReadRings(BinaryReader r)
    {
        var rings = new List<(string, long[], long[])>();
        for (var count = r.ReadInt32(); count > 0; count--)
        {
            var segment = r.ReadString();
            var length = r.ReadInt32();
            var (values, hours) = (new long[length], new long[length]);
            for (var i = 0; i < length; i++)
            {
                values[i] = r.ReadInt64();
                hours[i] = r.ReadInt64();
            }

            rings.Add((segment, values, hours));
        }

        return rings;
    }

    // Passes writes through to the file while hashing them.
    private sealed class HashingStream(Stream inner, NonCryptographicHashAlgorithm hash) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.Append(buffer);
            inner.Write(buffer);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
