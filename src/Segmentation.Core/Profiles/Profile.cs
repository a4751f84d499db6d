using System.Collections.Immutable;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles.Compact;

namespace Segmentation.Core.Profiles;

/// <summary>A change of a user's winning segment: from, to, when and which write caused it. A value kept inline in the profile's history array.</summary>
public readonly record struct SegmentChange(string? From, string To, DateTimeOffset At, string Cause);

/// <summary>
/// An immutable snapshot of one user's profile: attributes with provenance (layer, source and time), the accepted events
/// in time order, and the aggregates derived from them on write. Writers build a new snapshot under
/// the user's lock; readers never lock.
/// </summary>
public sealed record Profile
{
    /// <summary>How many segment changes a profile keeps (the most recent ones).</summary>
    public const int MaxSegmentHistory = 50;

    /// <summary>Creates an empty profile.</summary>
    public Profile(string userId) => UserId = userId;

    /// <summary>The profile key: user id or anonymous id.</summary>
    public string UserId { get; init; }

    /// <summary>Globally increasing version; a new value on every change. Part of the decision cache key.</summary>
    public long Version { get; init; }

    /// <summary>Stored attributes by name. Each name holds the value of the most reliable layer written.</summary>
    public AttributeDictionary Attributes
    {
        get => _attributes;
        init
        {
            if (!_attributes.SameAs(value))
            {
                _traitValues = null; // a snapshot made with other attributes keeps nothing built from these
            }

            _attributes = value;
        }
    }

    private readonly AttributeDictionary _attributes = AttributeDictionary.Empty;

    // The declared traits as the serving catalog's rules read them (see ITraitValueLayout), built on the first
    // evaluation of this snapshot. Element 0 names the layout. Written without a lock: two threads that race
    // build equal arrays, and a reference is written whole.
    private long[]? _traitValues;

    /// <summary>
    /// This snapshot's declared traits laid out for <paramref name="layout"/>: kept by the snapshot when the
    /// layout asks for it, so every decision after the first reads them by index. Treat the array as read-only.
    /// </summary>
    public long[] TraitValues(ITraitValueLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var kept = _traitValues;
        if (kept is not null && kept[0] == layout.Id)
        {
            return kept;
        }

        var built = layout.Build(_attributes);
        if (layout.KeepOnProfiles)
        {
            _traitValues = built;
        }

        return built;
    }

    /// <summary>Accepted events in time order (ties in arrival order), stored in columns.</summary>
    public EventLog Events { get; init; } = EventLog.Empty;

    /// <summary>The ids of the recorded events, as a new set (for inspection; use <see cref="HasEvent"/> to look one up).</summary>
    public IReadOnlySet<string> EventIds => Events.Select(e => e.EventId).ToHashSet(StringComparer.Ordinal);

    /// <summary>Aggregates over <see cref="Events"/>.</summary>
    public ProfileAggregates Aggregates { get; init; } = ProfileAggregates.Empty;

    /// <summary>The winning segment (with no request context) after the last write, or null before any.</summary>
    public string? CurrentSegment { get; init; }

    /// <summary>Recent changes of the winning segment, oldest first.</summary>
    public SegmentHistory SegmentHistory { get; init; } = SegmentHistory.Empty;

    /// <summary>
    /// The consent audit trail: every grant and withdrawal recorded, in time order (ties in arrival
    /// order). The current consent for a purpose is the latest entry for it; see <see cref="LatestConsent"/>.
    /// </summary>
    public ImmutableList<ConsentRecord> ConsentTrail { get; init; } = [];

    /// <summary>Number of distinct session ids seen.</summary>
    public int Sessions => Events.Sessions;

    /// <summary>Total number of recorded events.</summary>
    public int TotalEvents => Aggregates.TotalEvents;

    /// <summary>First event time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long FirstSeenTicks => Aggregates.FirstSeenTicks;

    /// <summary>Last event time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long LastSeenTicks => Aggregates.LastSeenTicks;

    /// <summary>
    /// The time of the user's latest own event at or before <paramref name="nowTicks"/> (not one of the service's sends or
    /// impressions), or <see cref="long.MinValue"/>, and the time of their earliest own event after it (an event dated a
    /// little ahead), or <see cref="long.MaxValue"/>.
    /// </summary>
    public (long Last, long Next) OwnEventTicks(long nowTicks)
    {
        // The series are sorted by time, so the service's events are taken off the end of all events, equal times pairing up.
        var sends = Series(EventTypes.EmailSend);
        var shown = Series(EventTypes.Impression);
        if (sends.Count == 0 && shown.Count == 0 && LastSeenTicks <= nowTicks)
        {
            return (LastSeenTicks, long.MaxValue);
        }

        var all = AllEvents;
        var next = long.MaxValue;
        int j = sends.Count - 1, k = shown.Count - 1;
        for (var i = all.Count - 1; i >= 0; i--)
        {
            var ticks = all.TicksAt(i);
            if (j >= 0 && sends.TicksAt(j) == ticks)
            {
                j--;
            }
            else if (k >= 0 && shown.TicksAt(k) == ticks)
            {
                k--;
            }
            else if (ticks > nowTicks)
            {
                next = ticks; // not yet: the last own event until then is an earlier one
            }
            else
            {
                return (ticks, next);
            }
        }

        return (long.MinValue, next);
    }

    /// <summary>Number of purchases.</summary>
    public int Orders => Aggregates.Orders;

    /// <summary>Purchase value minus refunded value.</summary>
    public double Revenue => Aggregates.Revenue;

    /// <summary>Revenue per order, 0 without orders.</summary>
    public double AverageOrderValue => Orders == 0 ? 0 : Revenue / Orders;

    /// <summary>First purchase time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long FirstPurchaseTicks => Aggregates.FirstPurchaseTicks;

    /// <summary>Last purchase time (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long LastPurchaseTicks => Aggregates.LastPurchaseTicks;

    /// <summary>Items in the open cart.</summary>
    public int CartItems => Aggregates.CartItems;

    /// <summary>Last cart change (UTC ticks) or <see cref="long.MinValue"/>.</summary>
    public long CartUpdatedTicks => Aggregates.CartUpdatedTicks;

    /// <summary>Email sends in time order.</summary>
    public ImmutableArray<EmailSend> EmailSends => Aggregates.EmailSends;

    /// <summary>Campaign ids with at least one open.</summary>
    public StringSet OpenedCampaigns => Aggregates.OpenedCampaigns;

    /// <summary>Campaign ids with at least one click.</summary>
    public StringSet ClickedCampaigns => Aggregates.ClickedCampaigns;

    /// <summary>Every event, whatever its type (for activity windows): a view of the event log's times.</summary>
    public EventSeries AllEvents => Events.AsSeries();

    /// <summary>The events of one type, or an empty series.</summary>
    public EventSeries Series(string type) => Aggregates.Series.TryGetValue(type, out var s) ? s : EventSeries.Empty;

    /// <summary>True when an event with this id was recorded.</summary>
    public bool HasEvent(string eventId) => Events.Contains(eventId);

    /// <summary>
    /// The latest recorded grant or withdrawal for <paramref name="purpose"/>, or null when none was recorded:
    /// the entry with the latest time, and of entries with the same time the one recorded last.
    /// </summary>
    public ConsentRecord? LatestConsent(ConsentPurpose purpose)
    {
        for (var i = ConsentTrail.Count - 1; i >= 0; i--)
        {
            if (ConsentTrail[i].Purpose == purpose)
            {
                return ConsentTrail[i];
            }
        }

        return null;
    }

    /// <summary>
    /// Adds a grant or withdrawal to the consent trail, in time order. An identical entry (same purpose,
    /// grant, source and time) already present is not added again, so replaying a record is idempotent;
    /// this instance is returned then.
    /// </summary>
    public Profile WithConsent(ConsentRecord record, long newVersion) => WithConsent(record, newVersion, merging: false);

    // merging: a record of a merged profile. Which of two records of the same time from two profiles was recorded last
    // is not known, so of those the withdrawal counts (the trail's last record of a purpose is its status): a grant
    // goes before the records of its time, a withdrawal after them.
    private Profile WithConsent(ConsentRecord record, long newVersion, bool merging)
    {
        if (ConsentTrail.Contains(record))
        {
            return this;
        }

        var index = ConsentTrail.Count;
        while (index > 0 && (ConsentTrail[index - 1].At > record.At || (merging && record.Granted && ConsentTrail[index - 1].At == record.At)))
        {
            index--;
        }

        return this with { Version = newVersion, ConsentTrail = ConsentTrail.Insert(index, record) };
    }

    /// <summary>
    /// Removes the events <paramref name="expired"/> selects (retention) with their ids, and replays the
    /// aggregates over the events that remain, so removed events no longer count anywhere. Returns this
    /// instance when nothing was removed.
    /// </summary>
    public Profile WithoutEvents(Func<StoredEvent, bool> expired, long newVersion, out int removed)
    {
        ArgumentNullException.ThrowIfNull(expired);
        var kept = new List<StoredEvent>(Events.Count);
        foreach (var e in Events)
        {
            if (!expired(e))
            {
                kept.Add(e);
            }
        }

        removed = Events.Count - kept.Count;
        if (removed == 0)
        {
            return this;
        }

        // An observed attribute's latest observation may be among the removed events: it is stored first, so its time
        // neither goes back nor depends on the order the events arrived in.
        var attributes = Attributes;
        foreach (var attribute in Attributes.Values)
        {
            var observed = LastObserved(attribute);
            if (observed.UpdatedAt != attribute.UpdatedAt)
            {
                attributes = attributes.SetItem(observed.Name, observed);
            }
        }

        return WithEvents(kept, newVersion) with { Attributes = attributes };
    }

    /// <summary>
    /// The segment history with the causes that name one of <paramref name="eventIds"/> (events removed by
    /// retention) replaced by <see cref="ExpiredEventCause"/>: the change of segment stays, the removed
    /// event's id goes. Returns this instance when no cause names one.
    /// </summary>
    public Profile WithoutEventCauses(IReadOnlySet<string> eventIds)
    {
        ArgumentNullException.ThrowIfNull(eventIds);
        var changed = false;
        var history = new List<SegmentChange>(SegmentHistory.Count);
        foreach (var change in SegmentHistory)
        {
            if (change.Cause.StartsWith(EventCausePrefix, StringComparison.Ordinal) && eventIds.Contains(change.Cause[EventCausePrefix.Length..]))
            {
                history.Add(change with { Cause = ExpiredEventCause });
                changed = true;
            }
            else
            {
                history.Add(change);
            }
        }

        return changed ? this with { SegmentHistory = SegmentHistory.Of(history) } : this;
    }

    /// <summary>The prefix of a segment change's cause that names the event which caused it (<c>event:&lt;id&gt;</c>).</summary>
    public const string EventCausePrefix = "event:";

    /// <summary>The cause of a segment change whose event was removed by retention.</summary>
    public const string ExpiredEventCause = "event:(removed by retention)";

    /// <summary>The stored value of an attribute, or null.</summary>
    public object? Trait(string name) => Attributes.TryGetValue(name, out var a) ? a.Value : null;

    /// <summary>
    /// Applies an event and returns the new snapshot, or this instance when the event id was already
    /// recorded (idempotent retries). An event later than every recorded one is folded into the
    /// aggregates; a late event is inserted by its time and the aggregates are replayed, so the result
    /// equals in-order delivery.
    /// </summary>
    public Profile Apply(StoredEvent e, long newVersion)
    {
        if (HasEvent(e.EventId))
        {
            return this;
        }

        var late = e.Ticks < Events.LastTicks;
        var events = Events.Add(e);
        var aggregates = late ? ProfileAggregates.Replay([.. events]) : Aggregates.Fold(e);
        if (late && events.HasArchive)
        {
            aggregates = aggregates with { Series = EventSeriesDictionary.Of(events) }; // a late event: series of the rebuilt runs
        }

        if (events.HotFull)
        {
            // The newest events move to the archive run, the series with them: a write keeps copying only a short run.
            aggregates = aggregates with { Series = aggregates.Series.Freeze(events.Runs.Hot) };
            events = events.Freeze();
        }

        // The attributes the event observes, then one copy of the profile with everything (not one per attribute).
        var attributes = Attributes;
        if (ObservedValue(e, ObservedAttributes.LastViewedCategory) is { } category)
        {
            attributes = WithObserved(attributes, events, e, late, ObservedAttributes.LastViewedCategory, category);
        }

        if (ObservedValue(e, ObservedAttributes.Country) is { } country)
        {
            attributes = WithObserved(attributes, events, e, late, ObservedAttributes.Country, country);
        }

        return this with { Version = newVersion, Events = events, Aggregates = aggregates, Attributes = attributes };
    }

    /// <summary>
    /// Merges another profile's history into this one (identity stitching): events are united by event
    /// id, so an event both profiles recorded counts once, and the aggregates are replayed; attributes
    /// merge under the layer hierarchy (the more reliable layer wins) and, within a layer, the newer value wins.
    /// </summary>
    public Profile Merge(Profile other, long newVersion, out int mergedEvents, out int duplicateEvents)
    {
        var events = new List<StoredEvent>(Events.Count + other.Events.Count);
        events.AddRange(Events);
        var ids = new HashSet<string>(events.Select(e => e.EventId), StringComparer.Ordinal);
        mergedEvents = 0;
        duplicateEvents = 0;
        foreach (var e in other.Events)
        {
            if (ids.Add(e.EventId))
            {
                events.Add(e);
                mergedEvents++;
            }
            else
            {
                duplicateEvents++;
            }
        }

        var merged = WithEvents([.. events.OrderBy(e => e.Ticks)], newVersion) with // stable: ties keep arrival order
        {
            SegmentHistory = SegmentHistory.Of(SegmentHistory.Concat(other.SegmentHistory).OrderBy(c => c.At).TakeLast(MaxSegmentHistory)), // stable: ties keep this profile's first
        };

        foreach (var consent in other.ConsentTrail)
        {
            merged = merged.WithConsent(consent, newVersion, merging: true);
        }

        // Observed attributes compete by their latest observations in the merged history, not by their stored times.
        foreach (var attribute in other.Attributes.Values)
        {
            var incoming = merged.LastObserved(attribute);
            if (!merged.Attributes.TryGetValue(attribute.Name, out var held) || Wins(merged.LastObserved(held), incoming))
            {
                merged = merged with { Version = newVersion, Attributes = merged.Attributes.SetItem(incoming.Name, incoming) };
            }
        }

        return merged;
    }

    /// <summary>
    /// Sets an attribute unless a more reliable layer already holds it. Within the same layer,
    /// the later write wins. Returns false when the write was ignored.
    /// </summary>
    public bool TrySetAttribute(ProfileAttribute attribute, long newVersion, out Profile result)
    {
        if (Attributes.TryGetValue(attribute.Name, out var held) && !Wins(LastObserved(held), attribute))
        {
            result = this;
            return false;
        }

        result = this with { Version = newVersion, Attributes = Attributes.SetItem(attribute.Name, attribute) };
        return true;
    }

    /// <summary>
    /// This profile without the attribute named <paramref name="name"/> when it is held in <paramref name="layer"/> from
    /// <paramref name="source"/> (a derivation that no longer holds); the same profile otherwise.
    /// </summary>
    public Profile WithoutAttribute(string name, AttributeLayer layer, string source) =>
        Attributes.TryGetValue(name, out var held) && held.Layer == layer && string.Equals(held.Source, source, StringComparison.Ordinal)
            ? this with { Attributes = Attributes.RemoveItem(name) }
            : this;

    // Whether a write of attribute replaces the attribute held under its name: not when a more reliable layer holds it,
    // nor when the same layer holds a newer value.
    private static bool Wins(ProfileAttribute held, ProfileAttribute attribute) =>
        !(held.Layer > attribute.Layer || (held.Layer == attribute.Layer && held.UpdatedAt > attribute.UpdatedAt));

    /// <summary>Records the winning segment after a write; appends a change when it differs.</summary>
    public Profile WithSegment(string winner, DateTimeOffset at, string cause)
    {
        if (winner == CurrentSegment)
        {
            return this;
        }

        var history = SegmentHistory.Add(new SegmentChange(CurrentSegment, winner, at, cause), MaxSegmentHistory);
        return this with { CurrentSegment = winner, SegmentHistory = history };
    }

    /// <summary>
    /// The stored attributes as a reader sees them: an attribute the profile observes from events carries the time of
    /// its latest observation. (An event that observes the value, source and layer already held leaves the stored
    /// attribute as it is, so that most events of a visit copy no attributes; its stored time is then the first
    /// observation of the value.)
    /// </summary>
    public IEnumerable<ProfileAttribute> AttributesAsObserved() => Attributes.Values.Select(LastObserved);

    /// <summary><paramref name="attribute"/> with the time of its latest observation when it is an observed attribute this profile's events observed later.</summary>
    internal ProfileAttribute LastObserved(ProfileAttribute attribute) => LastObservedIn(Events, attribute);

    private static ProfileAttribute LastObservedIn(EventLog events, ProfileAttribute attribute)
    {
        if (attribute.Layer != AttributeLayer.FirstParty || !ObservedAttributes.All.Contains(attribute.Name) || attribute.Value is not string value)
        {
            return attribute;
        }

        // Only events after the stored time can move it: the archived run is read only when it reaches past that time.
        var latest = attribute.UpdatedAt.UtcTicks;
        var (archived, hot) = events.Runs;
        if (archived.LastTicks > latest)
        {
            latest = LatestObservation(archived, attribute.Name, value, attribute.Source, latest);
        }

        if (hot.LastTicks > latest)
        {
            latest = LatestObservation(hot, attribute.Name, value, attribute.Source, latest);
        }

        return latest == attribute.UpdatedAt.UtcTicks ? attribute : attribute with { UpdatedAt = new DateTimeOffset(latest, TimeSpan.Zero) };
    }

    private static long LatestObservation(EventLog run, string name, string value, string source, long after)
    {
        var latest = after;
        foreach (var e in run)
        {
            if (e.Ticks > latest && string.Equals(ObservedValue(e, name), value, StringComparison.Ordinal) && string.Equals(e.Source, source, StringComparison.Ordinal))
            {
                latest = e.Ticks;
            }
        }

        return latest;
    }

    // The value an event observes for an observed attribute, or null.
    private static string? ObservedValue(in StoredEvent e, string name) => name switch
    {
        ObservedAttributes.Country => string.IsNullOrEmpty(e.Country) ? null : e.Country,
        ObservedAttributes.LastViewedCategory => e.Type == EventTypes.ProductView ? e.Category : null,
        _ => null,
    };

    // The attributes with what e observes under name. The value, source and layer already held: nothing changes (the
    // latest observation is read from the events, see LastObserved). A late event competes with the held value's latest
    // observation, so the result is what in-order delivery gives. Observed values and sources are low-cardinality:
    // stored as shared instances.
    private static AttributeDictionary WithObserved(AttributeDictionary attributes, EventLog events, in StoredEvent e, bool late, string name, string value)
    {
        var attribute = new ProfileAttribute(name, StringPool.Share(value), AttributeLayer.FirstParty, StringPool.Share(e.Source), new DateTimeOffset(e.Ticks, TimeSpan.Zero));
        if (!attributes.TryGetValue(name, out var held))
        {
            return attributes.SetItem(name, attribute);
        }

        if (held.Layer == AttributeLayer.FirstParty && held.Value is string heldValue && string.Equals(heldValue, value, StringComparison.Ordinal)
            && string.Equals(held.Source, attribute.Source, StringComparison.Ordinal))
        {
            return attributes;
        }

        return Wins(late ? LastObservedIn(events, held) : held, attribute) ? attributes.SetItem(name, attribute) : attributes;
    }

    /// <summary>This profile with exactly <paramref name="ordered"/> (in time order) as its events, aggregates replayed.</summary>
    internal Profile WithEvents(IReadOnlyList<StoredEvent> ordered, long newVersion)
    {
        var (events, aggregates) = Replay(ordered, null);
        return this with { Version = newVersion, Events = events, Aggregates = aggregates };
    }

    /// <summary>
    /// The log and aggregates of <paramref name="ordered"/> (see <see cref="WithEvents"/>), for building a profile
    /// with them in one step (a restore builds a million); with <paramref name="ids"/>, the events' ids and session
    /// ids are the UTF-8 there (a snapshot's own bytes) instead of their <see cref="StoredEvent.EventId"/> and
    /// <see cref="StoredEvent.SessionId"/>.
    /// </summary>
    internal static (EventLog Events, ProfileAggregates Aggregates) Replay(IReadOnlyList<StoredEvent> ordered, Utf8EventIds? ids)
    {
        var events = EventLog.Of(ordered, ids);
        var aggregates = ProfileAggregates.Replay(ordered);
        if (events.HasArchive)
        {
            aggregates = aggregates with { Series = EventSeriesDictionary.Of(events) };
        }

        return (events, aggregates);
    }
}

/// <summary>Names of attributes the service observes from events (first-party layer).</summary>
public static class ObservedAttributes
{
    /// <summary>Category of the last product viewed.</summary>
    public const string LastViewedCategory = "last_viewed_category";

    /// <summary>Country seen on the user's events.</summary>
    public const string Country = "country";

    /// <summary>Every attribute the profile observes from events.</summary>
    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal) { LastViewedCategory, Country };
}
