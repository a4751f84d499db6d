using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// Keeps what measurement remembers — the ledger of served decisions, the KPIs, segment sizes, churn, credited
/// impressions and conversions — across restarts: saved every minute, after every compaction of the store (an
/// erasure included, so an erased user leaves the saved copy too) and at shutdown; restored at start-up.
/// </summary>
public interface IMeasurementCheckpoint
{
    /// <summary>Saves the current state (write to a temporary file, flush, rename). Throws <see cref="IOException"/> when the disk refuses.</summary>
    void Save();

    /// <summary>Restores the saved state into empty measurement; false when there is none (or it was unreadable and was set aside).</summary>
    bool Restore();

    /// <summary>
    /// Deletes the copies <see cref="Restore"/> set aside as unreadable: an erasure calls it after <see cref="Save"/>, since
    /// they may hold the erased user's ids (they are kept only for diagnosis). Throws <see cref="IOException"/> when the disk refuses.
    /// </summary>
    void DeleteSetAside();
}

/// <summary>No durability: nothing is saved or restored.</summary>
public sealed class NoMeasurementCheckpoint : IMeasurementCheckpoint
{
    /// <summary>The instance.</summary>
    public static readonly NoMeasurementCheckpoint Instance = new();

    /// <inheritdoc />
    public void Save()
    {
    }

    /// <inheritdoc />
    public bool Restore() => false;

    /// <inheritdoc />
    public void DeleteSetAside()
    {
    }
}

/// <summary>Segments as remembered decisions knew them, for decisions restored after a restart.</summary>
public static class RememberedSegments
{
    private static readonly Scriban.Template Empty = Scriban.Template.Parse("");

    /// <summary>
    /// A segment as a remembered decision needs it (id, name, type, priority, fallback flag and its variants' ids):
    /// <paramref name="current"/>'s definition when it has the same id and variant ids, else a definition that keeps
    /// only those (its templates are never rendered).
    /// </summary>
    public static Segment Resolve(CatalogSnapshot? current, string id, string name, SegmentType type, int priority, bool isFallback, IReadOnlyList<(VariantKind Kind, string Id)> variants)
    {
        if (current?.Segments.FirstOrDefault(s => s.Id == id) is { } live
            && live.Variants.Count == variants.Count
            && live.Variants.Select(v => (v.Kind, v.Id)).SequenceEqual(variants))
        {
            return live;
        }

        return new Segment
        {
            Id = id,
            Name = name,
            Type = type,
            Priority = priority,
            IsFallback = isFallback,
            SourceFile = "(a remembered decision)",
            Variants = [.. variants.Select(v => new VariantTemplate(v.Kind, v.Id, "", Empty, "", false))],
        };
    }
}
