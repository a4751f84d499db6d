using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using Segmentation.Core.Application.Changes;

namespace Segmentation.Storage;

/// <summary>What writing or reading a snapshot did.</summary>
/// <param name="Segment">The first log segment the snapshot does not cover (replay starts there).</param>
/// <param name="Profiles">Profiles in the snapshot.</param>
/// <param name="Bytes">File size.</param>
/// <param name="Elapsed">Time taken.</param>
public sealed record SnapshotInfo(long Segment, long Profiles, long Bytes, TimeSpan Elapsed)
{
    /// <summary>The store's state besides profiles at the snapshot (the recent RFM models), replayed before the log.</summary>
    public IReadOnlyList<ChangeRecord> Preamble { get; init; } = [];

    /// <summary>The highest profile version handed out when the snapshot was taken (erased profiles' included).</summary>
    public long VersionFloor { get; init; }

    /// <summary>For a restore: whether it ran with the garbage collector held off (<see cref="RestoreCollectorHold"/>).</summary>
    public CollectorHoldOutcome CollectorHold { get; init; }

    /// <summary>For a restore the collector was to be held off for: the no-GC region's size in bytes.</summary>
    public long CollectorHoldBytes { get; init; }
}

/// <summary>
/// The snapshot file format: every profile of the store at one point of the change log, so that restore
/// reads it and replays only the log segments written after it. Layout: an 8-byte magic, then frames
/// (<see cref="Framing"/>) whose first payload byte is the kind: a header (format version, segment, creation
/// time), chunks of up to <see cref="ChunkProfiles"/> profiles or about <see cref="ChunkBytes"/> (encoded by <see cref="ProfileCodec"/>), and a
/// trailer with the profile count. The header also carries the store's state besides profiles
/// (<see cref="SnapshotState"/>: format 2; format 1 files, without it, are still read). Chunks decode in parallel on restore. Aggregates are not stored:
/// they are a pure function of the events and are rebuilt on read. PII attribute values are sealed with
/// the <see cref="PiiProtector"/>. Files are written to a temporary name, flushed to disk and renamed, so
/// a crash never leaves a partial snapshot under the real name.
/// </summary>
public static class ProfileSnapshotFile
{
    /// <summary>Profiles per chunk.</summary>
    public const int ChunkProfiles = 1024;

    /// <summary>
    /// Bytes after which a chunk is cut even with fewer profiles: a chunk is one frame held in memory while written and
    /// read (and decoded on several threads at once), so a run of profiles with very long histories (up to a million
    /// events each) must not make one of gigabytes.
    /// </summary>
    public const int ChunkBytes = 64 << 20;

    private const int FormatVersion = 2;
    private const byte KindHeader = 1;
    private const byte KindChunk = 2;
    private const byte KindTrailer = 3;
    private const string Prefix = "snapshot-";
    private const string Suffix = ".snap";
    private static readonly byte[] Magic = "SEGSNAP\n"u8.ToArray();

    /// <summary>The path of the snapshot that covers the log up to <paramref name="segment"/> (exclusive).</summary>
    public static string PathFor(string directory, long segment) =>
        Path.Combine(directory, FormattableString.Invariant($"{Prefix}{segment:D8}{Suffix}"));

    /// <summary>True for the name of a snapshot's temporary file (a snapshot being written, or one a crash cut short).</summary>
    public static bool IsTemporary(string fileName) =>
        fileName.StartsWith(Prefix, StringComparison.Ordinal) && fileName.EndsWith(Suffix + ".tmp", StringComparison.Ordinal);

    /// <summary>The snapshots in <paramref name="directory"/> by segment, ascending.</summary>
    public static IReadOnlyList<(long Segment, string Path)> Find(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }

        var list = new List<(long, string)>();
        foreach (var file in Directory.EnumerateFiles(directory, Prefix + "*" + Suffix))
        {
            var digits = Path.GetFileName(file)[Prefix.Length..^Suffix.Length];
            if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                list.Add((n, file));
            }
        }

        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>Writes a snapshot atomically (temporary file, fsync, rename).</summary>
    /// <param name="path">Final path (see <see cref="PathFor"/>).</param>
    /// <param name="segment">First log segment the snapshot does not cover.</param>
    /// <param name="entries">The profiles, each captured consistently with its links.</param>
    /// <param name="pii">Seals PII attribute values; null stores them as they are.</param>
    /// <param name="state">What the store holds besides profiles (null: nothing).</param>
    /// <remarks>A failed write removes its temporary file: it may hold personal data, some of it already erased.</remarks>
    public static SnapshotInfo Write(string path, long segment, IEnumerable<SnapshotEntry> entries, PiiProtector? pii, SnapshotState? state = null) =>
        Write(path, segment, entries, pii, state, ChunkBytes);

    /// <summary>As above, cutting chunks at <paramref name="chunkBytes"/> (tests).</summary>
    internal static SnapshotInfo Write(string path, long segment, IEnumerable<SnapshotEntry> entries, PiiProtector? pii, SnapshotState? state, int chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(entries);
        state ??= SnapshotState.None;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        long profiles = 0;
        DataDirectory.WriteAtomically(path, file => profiles = WriteBody(file, segment, entries, pii, state, chunkBytes), bufferSize: 1 << 20);

        return new SnapshotInfo(segment, profiles, new FileInfo(path).Length, System.Diagnostics.Stopwatch.GetElapsedTime(started)) { Preamble = state.Preamble, VersionFloor = state.VersionFloor };
    }

    private static long WriteBody(FileStream file, long segment, IEnumerable<SnapshotEntry> entries, PiiProtector? pii, SnapshotState state, int chunkBytes)
    {
        long profiles = 0;
        file.Write(Magic);
        using var header = new ProfileCodec.ChunkWriter();
        header.Writer.Write(KindHeader);
        header.Writer.Write(FormatVersion);
        header.Writer.Write(segment);
        header.Writer.Write(DateTime.UtcNow.Ticks);
        header.Writer.Write(state.VersionFloor);
        header.Writer.Write(state.Preamble.Count);
        foreach (var record in state.Preamble)
        {
            var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(record, ChangeRecordJson.Default.ChangeRecord);
            header.Writer.Write(json.Length);
            header.Writer.Write(json);
        }

        Framing.Write(file, header.Body());

        using var chunk = new ProfileCodec.ChunkWriter(); // one for every chunk: its buffers are reused
        foreach (var entry in entries)
        {
            chunk.Add(entry, pii);
            profiles++;
            if (chunk.Count == ChunkProfiles || chunk.BodyLength >= chunkBytes)
            {
                chunk.WriteChunk(file, KindChunk);
            }
        }

        if (chunk.Count > 0)
        {
            chunk.WriteChunk(file, KindChunk);
        }

        using var trailer = new ProfileCodec.ChunkWriter();
        trailer.Writer.Write(KindTrailer);
        trailer.Writer.Write(profiles);
        Framing.Write(file, trailer.Body());

        return profiles;
    }

    /// <summary>
    /// Reads a snapshot, decoding chunks on up to <paramref name="parallelism"/> threads and passing each
    /// profile to <paramref name="load"/> (called concurrently).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is damaged or incomplete, or a PII value cannot be decrypted.</exception>
    public static SnapshotInfo Read(string path, PiiProtector? pii, Action<SnapshotEntry> load, int parallelism)
    {
        ArgumentNullException.ThrowIfNull(load);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var magic = new byte[Magic.Length];
        if (file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) != magic.Length || !magic.AsSpan().SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path} is not a profile snapshot");
        }

        var header = Framing.ReadNext(file, $"snapshot {path}") ?? throw new InvalidDataException($"snapshot {path} has no header");
        long segment;
        long versionFloor = 0;
        var preamble = new List<ChangeRecord>();
        try
        {
            var reader = new ProfileCodec.ByteReader(header.Buffer, header.Length);
            var format = reader.Byte() == KindHeader ? reader.Int32() : -1;
            if (format is not (1 or FormatVersion))
            {
                throw new InvalidDataException($"snapshot {path}: unknown header or format version");
            }

            segment = reader.Int64();
            if (format >= 2)
            {
                _ = reader.Int64(); // created
                versionFloor = reader.Int64();
                var count = reader.Int32();
                for (var i = 0; i < count; i++)
                {
                    var json = reader.Take(reader.Int32());
                    preamble.Add(System.Text.Json.JsonSerializer.Deserialize(json, ChangeRecordJson.Default.ChangeRecord)
                        ?? throw new InvalidDataException($"snapshot {path}: empty state record"));
                }
            }
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new InvalidDataException($"snapshot {path}: its state records cannot be read: {ex.Message}", ex);
        }
        finally
        {
            header.Return();
        }

        long? expected = null;
        long profiles = 0;
        var frames = new BlockingCollection<PooledFrame>(boundedCapacity: 4 * Math.Max(1, parallelism));
        var failures = new ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, Math.Max(1, parallelism)).Select(_ => Task.Factory.StartNew(
            () =>
            {
                var chunk = new ProfileCodec.ChunkReader(pii); // one per thread, reused across its chunks
                foreach (var frame in frames.GetConsumingEnumerable())
                {
                    try
                    {
                        chunk.Load(frame);
                        var count = chunk.ReadChunk(KindChunk, load);
                        Interlocked.Add(ref profiles, count);
                    }
                    catch (Exception ex)
                    {
                        failures.Enqueue(ex);
                    }
                    finally
                    {
                        chunk.Unload();
                        frame.Return();
                    }
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default)).ToArray();
        try
        {
            while (Framing.ReadNext(file, $"snapshot {path}") is { } frame)
            {
                var kind = frame.Span[0];
                if (kind == KindTrailer)
                {
                    expected = BinaryPrimitives.ReadInt64LittleEndian(frame.Span[1..]);
                    frame.Return();
                    break;
                }

                if (kind != KindChunk)
                {
                    frame.Return();
                    throw new InvalidDataException($"snapshot {path}: unknown frame kind {kind}");
                }

                if (!failures.IsEmpty)
                {
                    frame.Return();
                    break;
                }

                frames.Add(frame);
            }
        }
        finally
        {
            frames.CompleteAdding();
            Task.WaitAll(workers);
            frames.Dispose();
        }

        if (failures.TryDequeue(out var failure))
        {
            throw new InvalidDataException($"snapshot {path} cannot be read: {failure.Message}", failure);
        }

        if (expected is null || expected != profiles)
        {
            throw new InvalidDataException($"snapshot {path} is incomplete: {profiles} profiles read, trailer {(expected is null ? "missing" : $"says {expected}")}");
        }

        return new SnapshotInfo(segment, profiles, file.Length, System.Diagnostics.Stopwatch.GetElapsedTime(started)) { Preamble = preamble, VersionFloor = versionFloor };
    }
}
