using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Segmentation.Core.Application.Audit;

namespace Segmentation.Storage;

/// <summary>
/// The admin audit trail in the data directory: <c>audit.jsonl</c>, one JSON object per line, appended and written
/// through to the operating system on every entry (a process crash loses nothing) and flushed to disk at most a second
/// later and at shutdown. An erasure or a trimming rewrites the file through a temporary file and a rename. A torn last
/// line (a power loss mid-write, or a write the disk refused) is left out with a warning and cut off the file before the
/// next entry is written, so it never ends up in the middle of the trail; any other unreadable line stops the start naming
/// the file. Entries are written again once the disk has room.
/// </summary>
public sealed class AuditJournalFile : IAuditJournal, IDisposable
{
    /// <summary>The file's name in the data directory.</summary>
    public const string FileName = "audit.jsonl";

    private readonly string _path;
    private readonly ILogger? _logger;
    private readonly Lock _gate = new();
    private readonly Timer _flush;
    private FileStream? _file; // unbuffered: a write reaches the operating system whole or fails, never waits in a buffer
    private bool _dirty;
    private bool _closed;

    /// <summary>Keeps the trail in <paramref name="dataDirectory"/>/<see cref="FileName"/>.</summary>
    public AuditJournalFile(string dataDirectory, ILogger<AuditJournalFile>? logger = null)
    {
        _path = Path.Combine(dataDirectory, FileName);
        _logger = logger;
        _flush = new Timer(_ => FlushToDisk(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <inheritdoc />
    public IReadOnlyList<AuditEntry> Load()
    {
        if (!File.Exists(_path))
        {
            return [];
        }

        // Every entry is one line ending in '\n', written in one call: anything after the last '\n' is a write cut short
        // (a power loss, a full disk), left out here and cut off the file before the next entry is written (Open).
        var bytes = File.ReadAllBytes(_path);
        var complete = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        if (complete < bytes.Length)
        {
            _logger?.LogWarning("The last line of {Path} is incomplete (a write cut short) and was dropped", _path);
        }

        var lines = Encoding.UTF8.GetString(bytes, 0, complete).Split('\n');
        var entries = new List<AuditEntry>(lines.Length);
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            try
            {
                entries.Add(JsonSerializer.Deserialize(lines[i], AuditJson.Default.AuditEntry) ?? throw new JsonException("null entry"));
            }
            catch (JsonException ex)
            {
                throw new StoreDamagedException($"line {i + 1} of the audit trail {_path} cannot be read ({ex.Message}); it is written only by the service. Restore it from a backup, or move it aside to start with an empty trail", ex);
            }
        }

        return entries;
    }

    /// <inheritdoc />
    public void Append(AuditEntry entry)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(entry, AuditJson.Default.AuditEntry);
        var line = new byte[json.Length + 1];
        json.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        lock (_gate)
        {
            // Closed at shutdown, after which the data directory may already be another server's: an action finishing
            // that late (a call outliving the shutdown timeout) fails its audit instead of reopening the file.
            ObjectDisposedException.ThrowIf(_closed, this);
            var file = Open();
            try
            {
                BeforeWrite?.Invoke();
                file.Write(line); // the entry and its newline in one write
            }
            catch (IOException)
            {
                // What part of the line reached the file is cut off when the file is next opened. The entries written
                // before it are owed their sync: done now, since nothing syncs a file that is not open (a disk that
                // keeps refusing writes would otherwise leave them unsynced until it takes one again).
                _file = null;
                if (_dirty)
                {
                    try
                    {
                        Sync(file);
                    }
                    catch (IOException)
                    {
                        // Still owed: the next file opened is synced by the timer (a sync covers the whole file).
                    }
                }

                file.Dispose(); // unbuffered: closing writes nothing, so it cannot fail on a full disk
                throw;
            }

            _dirty = true;
        }
    }

    // Most bytes one entry's line takes (its fields are bounded); a file whose last newline is further back than this
    // from its end is left as it is, for the next start to report.
    private const int MaxLineBytes = 64 * 1024;

    // The file, open at its end, which is cut back to just after its last newline first: a write the disk refused
    // leaves part of its line behind, and the next entry must not be written after it (the line would be unreadable).
    private FileStream Open()
    {
        if (_file is not null)
        {
            return _file;
        }

        var file = DataDirectory.OpenDurably(_path, p => new FileStream(p, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0));
        try
        {
            var length = file.Length;
            var tail = (int)Math.Min(length, MaxLineBytes);
            var bytes = new byte[tail];
            file.Position = length - tail;
            file.ReadExactly(bytes);
            var newline = Array.LastIndexOf(bytes, (byte)'\n');
            var whole = newline >= 0 ? length - tail + newline + 1 : tail == length ? 0 : length;
            if (whole < length)
            {
                _logger?.LogWarning("The audit trail ended in part of a line (a write the disk refused); it was cut off");
                file.SetLength(whole);
            }

            file.Position = whole;
        }
        catch
        {
            file.Dispose();
            throw;
        }

        return _file = file;
    }

    /// <inheritdoc />
    public void Rewrite(IReadOnlyList<AuditEntry> entries)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this); // as an append
            if (_file is not null && _dirty)
            {
                Sync(_file); // the entries written since the last flush: durable even if the copy below is refused
            }

            _file?.Dispose(); // unbuffered: nothing to write, so it cannot fail
            _file = null;
            DataDirectory.WriteAtomically(_path, file =>
            {
                foreach (var entry in entries)
                {
                    file.Write(JsonSerializer.SerializeToUtf8Bytes(entry, AuditJson.Default.AuditEntry));
                    file.WriteByte((byte)'\n');
                }
            });
            _dirty = false;
        }
    }

    // Flushes the file to disk; what was written before is then durable.
    private void Sync(FileStream file)
    {
        file.Flush(flushToDisk: true);
        _dirty = false;
        Syncs++;
    }

    /// <summary>Test hook: runs before each entry's write (a refused write throws).</summary>
    internal Action? BeforeWrite { get; set; }

    /// <summary>How many times the file was flushed to disk (for tests).</summary>
    internal int Syncs { get; private set; }

    private void FlushToDisk()
    {
        lock (_gate)
        {
            if (!_dirty || _file is null)
            {
                return;
            }

            try
            {
                Sync(_file);
            }
            catch (IOException ex)
            {
                _logger?.LogWarning("The audit trail could not be flushed to disk: {Reason}", ex.Message);
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _flush.Dispose();
        FlushToDisk();
        lock (_gate)
        {
            _closed = true;
            _file?.Dispose();
            _file = null;
        }
    }
}

/// <summary>Source-generated JSON metadata for audit entries (one per line, camelCase).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AuditEntry))]
internal sealed partial class AuditJson : JsonSerializerContext;
