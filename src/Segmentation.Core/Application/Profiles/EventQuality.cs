using System.Collections.Concurrent;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Events;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// The quality of the behavioural events the service is sent, counted as they arrive (since the service
/// started): how many were accepted, sent again (duplicates) or rejected and why, and how complete the accepted
/// ones were — the share carrying each optional context field.
/// </summary>
/// <remarks>
/// An accepted event costs one atomic increment: the counter of its combination of present context fields
/// (six fields, 64 combinations), from which every field's share and the accepted total are summed when read.
/// Rejection reasons are the field that failed validation (<c>timestamp</c>, <c>type</c>, <c>context.device</c>…),
/// without the index of the event in its call; at most <see cref="MaxReasons"/> distinct reasons are kept, the
/// rest counted as <c>other</c>.
/// </remarks>
public sealed class EventQuality
{
    /// <summary>Most distinct rejection reasons counted by name.</summary>
    public const int MaxReasons = 64;

    /// <summary>The context fields whose presence is counted, in bit order.</summary>
    public static readonly IReadOnlyList<string> ContextFields = ["context.source", "context.device", "context.session_id", "context.page_type", "context.page_path", "context.country"];

    private readonly long[] _accepted = new long[1 << 6];
    private readonly ConcurrentDictionary<string, long> _rejected = new(StringComparer.Ordinal);
    private long _duplicates;

    /// <summary>Counts an accepted event.</summary>
    public void Accepted(BehaviourEvent e)
    {
        var c = e.Context;
        var mask = (c.Source.Length > 0 ? 1 : 0)
            | (c.Device.Length > 0 ? 2 : 0)
            | (c.SessionId.Length > 0 ? 4 : 0)
            | (c.PageType.Length > 0 ? 8 : 0)
            | (string.IsNullOrEmpty(c.PagePath) ? 0 : 16)
            | (string.IsNullOrEmpty(c.Country) ? 0 : 32);
        Interlocked.Increment(ref _accepted[mask]);
        if (SegmentationTelemetry.Events.Enabled)
        {
            SegmentationTelemetry.Events.Add(1, SegmentationTelemetry.Tag("result", "accepted"));
        }
    }

    /// <summary>Counts an event whose id had been recorded before.</summary>
    public void Duplicate()
    {
        Interlocked.Increment(ref _duplicates);
        if (SegmentationTelemetry.Events.Enabled)
        {
            SegmentationTelemetry.Events.Add(1, SegmentationTelemetry.Tag("result", "duplicate"));
        }
    }

    /// <summary>Counts a rejected event under the reason of its first violation (field paths under <paramref name="prefix"/>).</summary>
    public void Rejected(IReadOnlyList<FieldViolation> violations, string prefix) => Rejected(violations.Count == 0 ? "event" : ReasonOf(violations[0].Field, prefix));

    /// <summary>Counts a rejected event under <paramref name="reason"/>.</summary>
    public void Rejected(string reason)
    {
        if (!_rejected.ContainsKey(reason) && _rejected.Count >= MaxReasons)
        {
            reason = "other";
        }

        _rejected.AddOrUpdate(reason, 1, static (_, n) => n + 1);
        if (SegmentationTelemetry.Events.Enabled)
        {
            SegmentationTelemetry.Events.Add(1, SegmentationTelemetry.Tag("result", "rejected"), SegmentationTelemetry.Tag("reason", reason));
        }
    }

    /// <summary>What has been counted so far.</summary>
    public EventQualityCounts Read()
    {
        long accepted = 0;
        var present = new long[ContextFields.Count];
        for (var mask = 0; mask < _accepted.Length; mask++)
        {
            var n = Volatile.Read(ref _accepted[mask]);
            accepted += n;
            for (var bit = 0; bit < present.Length; bit++)
            {
                if ((mask & (1 << bit)) != 0)
                {
                    present[bit] += n;
                }
            }
        }

        var completeness = new Dictionary<string, double>(StringComparer.Ordinal);
        for (var bit = 0; bit < present.Length; bit++)
        {
            completeness[ContextFields[bit]] = accepted == 0 ? 0 : (double)present[bit] / accepted;
        }

        var rejected = _rejected.OrderByDescending(r => r.Value).ThenBy(r => r.Key, StringComparer.Ordinal).ToList();
        return new EventQualityCounts(accepted, Volatile.Read(ref _duplicates), rejected.Sum(r => r.Value), rejected, completeness);
    }

    // "events[12].context.device" under prefix "events[12]" → "context.device"; the prefix itself → "event".
    internal static string ReasonOf(string field, string prefix)
    {
        var rest = field.StartsWith(prefix, StringComparison.Ordinal) ? field.AsSpan(prefix.Length) : field.AsSpan();
        rest = rest.TrimStart('.');
        if (rest.IsEmpty)
        {
            return "event";
        }

        // Indices inside the event (lines[3].quantity) are not part of the reason either.
        var reason = new System.Text.StringBuilder(rest.Length);
        var inIndex = false;
        foreach (var ch in rest)
        {
            if (ch == '[')
            {
                inIndex = true;
            }
            else if (ch == ']')
            {
                inIndex = false;
            }
            else if (!inIndex)
            {
                reason.Append(ch);
            }
        }

        return reason.Length > 64 ? reason.ToString(0, 64) : reason.ToString();
    }
}

/// <summary>Counts of <see cref="EventQuality"/>.</summary>
/// <param name="Accepted">Events accepted.</param>
/// <param name="Duplicates">Events whose id had been recorded before (nothing changed).</param>
/// <param name="Rejected">Events rejected.</param>
/// <param name="RejectedByReason">Rejections by reason, most frequent first.</param>
/// <param name="Completeness">Share of accepted events carrying each optional context field.</param>
public sealed record EventQualityCounts(long Accepted, long Duplicates, long Rejected, IReadOnlyList<KeyValuePair<string, long>> RejectedByReason, IReadOnlyDictionary<string, double> Completeness);
