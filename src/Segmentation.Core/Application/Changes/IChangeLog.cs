namespace Segmentation.Core.Application.Changes;

/// <summary>
/// The write-ahead log of accepted changes. <see cref="Append"/> returns only when the record is
/// durable (or throws, and then the change must not be applied).
/// </summary>
public interface IChangeLog
{
    /// <summary>Appends a record and blocks until it is on disk.</summary>
    void Append(ChangeRecord record);

    /// <summary>
    /// Appends records in order and blocks until all are on disk, or throws, and then none of their changes may be
    /// applied. A log with group commit writes them in one commit and refuses them all when it fails (a crash in the middle
    /// of the write can still leave the first of them on disk, unacknowledged, as for any write not yet acknowledged);
    /// this default appends them one at a time, so a failure part way leaves the earlier ones on disk.
    /// </summary>
    void AppendAll(IReadOnlyList<ChangeRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        foreach (var record in records)
        {
            Append(record);
        }
    }

    /// <summary>False when records are dropped (durability off): the hottest writes then build none.</summary>
    bool KeepsRecords => true;
}

/// <summary>The change log used when durability is off: records are dropped.</summary>
public sealed class NoChangeLog : IChangeLog
{
    /// <summary>The single instance.</summary>
    public static readonly NoChangeLog Instance = new();

    private NoChangeLog()
    {
    }

    /// <inheritdoc />
    public bool KeepsRecords => false;

    /// <inheritdoc />
    public void Append(ChangeRecord record)
    {
    }
}
