using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;

namespace Segmentation.Storage;

/// <summary>
/// How the files that keep remembered decisions (the measurement checkpoint and the decision journal) write the
/// segments and <see cref="DecisionKey"/>s decisions share: each once per file, referred to by its index after that.
/// A segment is written as decided (id, name, type, priority, fallback flag, variant ids) and read back as the serving
/// catalog's when that still has it unchanged (<see cref="RememberedSegments.Resolve"/>).
/// </summary>
internal static class DecisionKeyCodec
{
    public static void WriteSegment(BinaryWriter w, Segment s)
    {
        w.Write(s.Id);
        w.Write(s.Name);
        w.Write((int)s.Type);
        w.Write(s.Priority);
        w.Write(s.IsFallback);
        w.Write(s.Variants.Count);
        foreach (var v in s.Variants)
        {
            w.Write((int)v.Kind);
            w.Write(v.Id);
        }
    }

    public static Segment ReadSegment(BinaryReader r, CatalogSnapshot? current)
    {
        var (id, name, type, priority, fallback) = (r.ReadString(), r.ReadString(), (SegmentType)r.ReadInt32(), r.ReadInt32(), r.ReadBoolean());
        var variants = new (VariantKind, string)[r.ReadInt32()];
        for (var v = 0; v < variants.Length; v++)
        {
            variants[v] = ((VariantKind)r.ReadInt32(), r.ReadString());
        }

        return RememberedSegments.Resolve(current, id, name, type, priority, fallback, variants);
    }

    public static void WriteKey(BinaryWriter w, DecisionKey k, int segment)
    {
        w.Write(segment);
        w.Write(k.CatalogVersion);
        w.Write(k.Channel);
        w.Write(k.FromCache);
        w.Write(k.Arm?.ExperimentId ?? "");
        w.Write(k.Arm?.Id ?? "");
    }

    public static DecisionKey ReadKey(BinaryReader r, IReadOnlyList<Segment> segments, CatalogSnapshot current)
    {
        var (segment, version, channel, fromCache, experiment, arm) = (Segment(r.ReadInt32()), r.ReadInt64(), Channels.Intern(r.ReadString()), r.ReadBoolean(), r.ReadString(), r.ReadString());
        return new DecisionKey(segment, version, channel, fromCache, experiment.Length == 0 ? null : ArmOf(current, experiment, arm));

        Segment Segment(int index) => (uint)index < (uint)segments.Count ? segments[index] : throw new InvalidDataException($"a decision key names segment {index} of {segments.Count}");
    }

    // The serving catalog's arm of that experiment, or one that keeps only the ids (its decisions are counted already).
    private static ExperimentArm ArmOf(CatalogSnapshot current, string experiment, string arm) =>
        current.Experiments.FirstOrDefault(e => e.Id == experiment)?.Arms.FirstOrDefault(a => a.Id == arm)
        ?? new ExperimentArm(arm, 0, [], [], experiment);
}
