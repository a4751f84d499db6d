using Segmentation.Core.Events;
using Segmentation.Core.Rules;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Catalog;

/// <summary>
/// A scheduled trigger: <see cref="Delay"/> after a user enters <see cref="Segment"/>, if they are still in it
/// (unless <see cref="StillMember"/> is false) and none of the <see cref="Unless"/> events happened since they
/// entered, a <c>triggered</c> entry is appended to the change stream for workflow engines to act on
/// ("3 days after cart abandonment, if no purchase since").
/// </summary>
/// <param name="Id">The trigger's id, unique in the catalog.</param>
/// <param name="Segment">The segment whose entry schedules it.</param>
/// <param name="Delay">How long after the entry it comes due (0 to 90 days).</param>
/// <param name="Unless">Event types that cancel it when one happens after the entry (<c>purchase</c>, <c>email_open</c>, ...).</param>
/// <param name="StillMember">When true (the default), it fires only if the user is still in the segment, without having left it since.</param>
/// <param name="Description">What it is for, for people reading the catalog.</param>
public sealed record SegmentTrigger(string Id, string Segment, TimeSpan Delay, IReadOnlyList<string> Unless, bool StillMember, string Description)
{
    /// <summary>The longest delay a trigger may have.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromDays(90);
}

/// <summary>Reads <c>triggers:</c> entries from catalog files, reporting mistakes at file:line.</summary>
internal sealed class TriggerReader(Action<SyntaxNode, string, string> error)
{
    private static readonly string[] Keys = ["id", "segment", "delay", "unless", "still_member", "description"];

    /// <summary>
    /// Reads the triggers of <paramref name="nodes"/>, on the <paramref name="segments"/> declared; one on the
    /// <paramref name="fallback"/> segment is refused: no user is ever a member of it (it serves those no other segment
    /// matched), so nothing would arm it.
    /// </summary>
    public IReadOnlyList<SegmentTrigger> Read(IReadOnlyList<SyntaxMap> nodes, IReadOnlySet<string> segments, string? fallback = null)
    {
        var triggers = new List<SegmentTrigger>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var map in nodes)
        {
            if (Read(map, segments, fallback) is not { } trigger)
            {
                continue;
            }

            if (!ids.Add(trigger.Id))
            {
                error(map, "triggers", $"duplicate trigger id '{trigger.Id}'");
                continue;
            }

            triggers.Add(trigger);
        }

        return triggers;
    }

    private SegmentTrigger? Read(SyntaxMap map, IReadOnlySet<string> segments, string? fallback)
    {
        foreach (var (k, _) in map.Entries)
        {
            if (!Keys.Contains(k.Text))
            {
                error(k, "triggers", $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, Keys)}; a trigger has: {string.Join(", ", Keys)}");
            }
        }

        var ok = true;
        var id = map.Get("id")?.Text;
        if (id is null || !CatalogValidator.IdPattern().IsMatch(id))
        {
            error(map.Get("id") ?? map, "triggers.id", "a trigger needs an 'id' of lower-case letters, digits and underscores (at most 64)");
            ok = false;
        }

        var clause = $"triggers.{id}";
        var segment = map.Get("segment")?.Text;
        if (segment is null || !segments.Contains(segment))
        {
            error(map.Get("segment") ?? map, clause + ".segment", segment is null ? "a trigger names the 'segment' whose entry schedules it" : $"unknown segment '{segment}'");
            ok = false;
        }
        else if (segment == fallback && !KeptVersion.Loading) // a version active before this check still loads (its trigger stays inert)
        {
            error(map.Get("segment")!, clause + ".segment", $"'{segment}' is the fallback segment, which no user is ever a member of (it serves those no other segment matched): a trigger on it would never fire");
            ok = false;
        }

        var delay = TimeSpan.Zero;
        if (map.Get("delay") is { } delayNode
            && !(IsZero(delayNode.Text) || (Rules.Duration.TryParse(delayNode.Text, out delay) && delay <= SegmentTrigger.MaxDelay)))
        {
            error(delayNode, clause + ".delay", $"'delay' is a duration from 0 to 90d, such as 3d or 12h; got '{delayNode.Text}'");
            ok = false;
        }

        var unless = new List<string>();
        foreach (var node in map.Get("unless") is SyntaxList list ? list.Items : map.Get("unless") is { } single ? [single] : [])
        {
            if (node.Text is { } type && EventTypes.IsKnown(type))
            {
                unless.Add(type);
            }
            else
            {
                error(node, clause + ".unless", $"'{node.Text}' is not an event type (built-in such as purchase or email_open, or custom.<name>)");
                ok = false;
            }
        }

        var stillMember = true;
        if (map.Get("still_member") is { } stillNode && !bool.TryParse(stillNode.Text, out stillMember))
        {
            error(stillNode, clause + ".still_member", $"'still_member' is true or false; got '{stillNode.Text}'");
            ok = false;
        }

        return ok ? new SegmentTrigger(id!, segment!, delay, unless, stillMember, map.Get("description")?.Text ?? "") : null;
    }

    // No delay, written as 0 with or without a unit (durations elsewhere are positive, so the parser refuses it).
    private static bool IsZero(string? text) => text?.Trim() is "0" or "0m" or "0h" or "0d" or "0w";
}
