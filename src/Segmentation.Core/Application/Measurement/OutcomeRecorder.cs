using System.Collections.Concurrent;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Measurement;

/// <summary>Options of outcome measurement.</summary>
public sealed record MeasurementOptions
{
    /// <summary>
    /// How long after a decision its outcomes are credited to it, and how far back a conversion without a
    /// decision id looks for the user's last impression (last touch). Default 7 days.
    /// </summary>
    public TimeSpan AttributionWindow { get; init; } = TimeSpan.FromDays(7);

    /// <summary>Decisions remembered for attribution (rounded up to a power of two; a 32-byte slot each). Default 1,048,576.</summary>
    public int RememberedDecisions { get; init; } = 1 << 20;

    /// <summary>
    /// The segments that are churn states (lapsed or lost customers): a member of another segment who enters one
    /// of them has churned from it. Default <c>churned</c> and <c>lost_customers</c> (the default catalog's); ids the
    /// serving catalog does not have are simply never entered.
    /// </summary>
    public IReadOnlyList<string> ChurnSegments { get; init; } = ["churned", "lost_customers"];

    /// <summary>How often bandit experiments reallocate new users from their outcomes so far. Default 5 minutes.</summary>
    public TimeSpan BanditInterval { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>What crediting one outcome did, as the decision journal keeps it to credit it again after a crash.</summary>
/// <param name="Sequence">The credited decision's sequence in the ledger; -1 when unattributed.</param>
/// <param name="Ticks">The outcome's time (UTC ticks).</param>
/// <param name="Type">The outcome's type.</param>
/// <param name="Variant">The variant it concerns.</param>
/// <param name="Value">Its value (a conversion's; 0 otherwise).</param>
/// <param name="SubjectId">The user (or anonymous id) it was reported for.</param>
/// <param name="OrderId">A conversion's order id.</param>
public readonly record struct OutcomeCredit(long Sequence, long Ticks, OutcomeType Type, VariantKind? Variant, double Value, string SubjectId, string? OrderId);

/// <summary>The result of one outcome.</summary>
/// <param name="Index">Position in the request.</param>
/// <param name="Attribution">How it was attributed, or that it was rejected.</param>
/// <param name="DecisionId">The decision credited, when attributed.</param>
/// <param name="SegmentId">That decision's segment.</param>
/// <param name="Violations">Why it was rejected.</param>
public sealed record OutcomeResult(int Index, Attribution Attribution, string? DecisionId, string? SegmentId, IReadOnlyList<FieldViolation> Violations);

/// <summary>
/// Records outcomes of decisions: validates each, records it as an event of the user's profile (so rules can
/// read it, and re-sending its event id is not counted twice), credits it to the decision it names — or, for a
/// conversion without one, to the user's last impression within the attribution window (last touch) — and
/// counts it in the KPIs of that decision's segment, variant, channel and catalog version. An outcome whose
/// decision is unknown, expired, forgotten by the ledger or made for another user is counted as unattributed,
/// never refused. An order is credited with one conversion: a second report of it is a duplicate, whichever decision
/// it names or reaches.
/// </summary>
public sealed class OutcomeRecorder(DecisionMeasurement measurement, ProfileIngestion ingestion, IProfileStore profiles, TimeProvider time, MeasurementOptions options) : IDisposable
{
    // An outcome may arrive a little before the decision's own time when clocks differ.
    private static readonly long ClockSkew = TimeSpan.FromMinutes(5).Ticks;

    // Per user, the most recent credited impressions (at most RecentImpressions, newest last), so a conversion
    // that arrives out of order is still credited to the last impression at or before its own time.
    private const int RecentImpressions = 8;
    private readonly ConcurrentDictionary<string, (long Sequence, long Ticks)[]> _impressions = new(StringComparer.Ordinal);
    // Each order credited with a conversion, and the decision's sequence it was credited to — or, when unattributed (or
    // its decision forgotten), a time as Unattributed(ticks), a negative number: an order counts once, whichever decision
    // a second report of it would name or reach by last touch. See Prune for how the map stays bounded.
    private readonly ConcurrentDictionary<string, long> _orders = new(StringComparer.Ordinal);
    private const int UnattributedPerPrune = 65_536;
    private int _unattributedSincePrune;
    private int _pruning; // 1 while a thread prunes
    private readonly ReaderWriterLockSlim _crediting = new();
    private readonly ConcurrentQueue<OutcomeCredit> _unjournaled = new();
    private long _prunedAt;

    /// <summary>
    /// True when a decision journal keeps what each outcome credited (<see cref="TakeCredits"/>), so that KPIs
    /// credited after the last checkpoint survive a crash. Set before the first outcome.
    /// </summary>
    internal bool JournalsCredits { get; set; }

    /// <summary>Moves the credits recorded since the last call (oldest first) to <paramref name="into"/>, for the journal.</summary>
    internal void TakeCredits(List<OutcomeCredit> into)
    {
        while (_unjournaled.TryDequeue(out var credit))
        {
            into.Add(credit);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> (a checkpoint: start a new journal file, then save the state) while no outcome is
    /// being credited, so every credit is either in the saved state and the journal files before the new one, or in
    /// neither.
    /// </summary>
    internal void WhileNotCrediting(Action action)
    {
        _crediting.EnterWriteLock();
        try
        {
            action();
        }
        finally
        {
            _crediting.ExitWriteLock();
        }
    }

    /// <summary>
    /// Credits again what a journaled outcome credited (after the checkpoint and the journal's decisions were restored);
    /// false when its decision is no longer remembered.
    /// </summary>
    internal bool Replay(in OutcomeCredit credit)
    {
        if (credit.Sequence < 0)
        {
            if (IsNewOrder(credit.Type, credit.OrderId, Unattributed(credit.Ticks)))
            {
                CreditUnattributed(credit.SubjectId, credit.Type, credit.Value, credit.Ticks);
            }

            return true;
        }

        return measurement.Ledger.TryRead(credit.Sequence, out var d)
            && CreditDecision(d, credit.Type, credit.Variant, credit.Value, credit.Ticks, credit.SubjectId, credit.OrderId);
    }

    /// <summary>Each user's recent credited impressions, for a checkpoint.</summary>
    internal IEnumerable<(string UserId, (long Sequence, long Ticks)[] Touches)> Impressions() => _impressions.Select(i => (i.Key, i.Value));

    /// <summary>The orders credited with a conversion and their decisions (negative: unattributed, at a time), for a checkpoint.</summary>
    internal IEnumerable<(long Sequence, string OrderId)> Conversions() => _orders.Select(static o => (o.Value, o.Key));

    /// <summary>Restores a checkpoint's impressions and credited conversions.</summary>
    internal void Restore(IEnumerable<(string UserId, (long Sequence, long Ticks)[] Touches)> impressions, IEnumerable<(long Sequence, string OrderId)> conversions)
    {
        foreach (var (user, touches) in impressions)
        {
            _impressions[user] = touches;
        }

        foreach (var (sequence, order) in conversions)
        {
            _orders.TryAdd(order, sequence); // a checkpoint from before orders counted once may name one order twice
        }
    }

    /// <inheritdoc />
    public void Dispose() => _crediting.Dispose();

    /// <summary>Forgets <paramref name="userIds"/> (erasure): their remembered decisions and impressions.</summary>
    public void Forget(IReadOnlySet<string> userIds)
    {
        ArgumentNullException.ThrowIfNull(userIds);

        // While nothing credits and no drain runs: an outcome or a drain that read a decision of theirs before it was
        // forgotten would credit it, or record its exposure, after (the same order of locks as a checkpoint's).
        WhileNotCrediting(() => measurement.WhileDrained(() =>
        {
            var ledger = measurement.Ledger;
            if (ledger.Forget(userIds) > 0)
            {
                foreach (var (order, sequence) in _orders)
                {
                    if (sequence >= 0 && ledger.IsForgotten(sequence))
                    {
                        _orders.TryRemove(order, out _); // their order ids: a forgotten decision is never credited again
                    }
                }
            }

            measurement.Exposures.Forget(userIds);
            foreach (var id in userIds)
            {
                _impressions.TryRemove(id, out _);
            }
        }));
    }

    /// <summary>Test hook: runs for an outcome after its decision was looked up and before it is credited.</summary>
    internal Action<Outcome>? BeforeCrediting { get; set; }

    /// <summary>
    /// What measurement holds about <paramref name="ids"/> (a user and the ids stitched to them), for an export: their
    /// records in experiments, and the decisions remembered for attribution — the newest <paramref name="maxDecisions"/>,
    /// newest first, and how many there are. A scan of the ledger and of every experiment's records.
    /// </summary>
    internal (IReadOnlyList<(string ExperimentId, string ArmId, string SegmentId, ExposureRecord Record)> Experiments, int Decisions, IReadOnlyList<RememberedDecision> Newest) HeldAbout(IReadOnlySet<string> ids, int maxDecisions)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var experiments = measurement.Exposures.Records().Where(r => r.Record.Subject is { } subject && ids.Contains(subject)).ToList();
        var decisions = measurement.Ledger.Remembered(measurement.Ledger.Issued).Where(d => ids.Contains(d.UserId)).ToList();
        return (experiments, decisions.Count, [.. Enumerable.Reverse(decisions).Take(maxDecisions)]);
    }

    /// <summary>Most outcomes per call.</summary>
    public const int MaxPerCall = 1_000;

    /// <summary>Throws <see cref="ValidationException"/> unless a call of <paramref name="count"/> outcomes may be recorded (1 to <see cref="MaxPerCall"/>).</summary>
    public static void CheckCount(int count)
    {
        if (count == 0 || count > MaxPerCall)
        {
            throw new ValidationException("outcomes", $"1 to {MaxPerCall} outcomes per call (got {count})");
        }
    }

    /// <summary>Records <paramref name="outcomes"/>, each on its own; one result per outcome, in order.</summary>
    public IReadOnlyList<OutcomeResult> RecordMany(IReadOnlyList<Outcome> outcomes)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        CheckCount(outcomes.Count);

        var results = new OutcomeResult[outcomes.Count];
        for (var i = 0; i < results.Length; i++)
        {
            results[i] = Record(i, outcomes[i], $"outcomes[{i}]");
        }

        return results;
    }

    /// <summary>Records one outcome, reporting (not throwing) why it was rejected.</summary>
    public OutcomeResult Record(int index, Outcome outcome, string prefix = "outcome")
    {
        ArgumentNullException.ThrowIfNull(outcome);
        var result = RecordOne(index, outcome, prefix);
        if (SegmentationTelemetry.Outcomes.Enabled)
        {
            SegmentationTelemetry.Outcomes.Add(
                1,
                SegmentationTelemetry.Tag("type", Enum.IsDefined(outcome.Type) ? Outcome.EventType(outcome.Type) : "unknown"),
                SegmentationTelemetry.Tag("attribution", AttributionNames[(int)result.Attribution]));
        }

        return result;
    }

    private static readonly string[] AttributionNames = ["decision", "last_impression", "unattributed", "duplicate", "rejected"];

    private OutcomeResult RecordOne(int index, Outcome outcome, string prefix)
    {
        var now = time.GetUtcNow();
        try
        {
            outcome.ThrowIfInvalid(now, prefix);
        }
        catch (ValidationException ex)
        {
            return new OutcomeResult(index, Attribution.Rejected, null, null, ex.Violations);
        }

        var credited = Credit(outcome);
        var decisionId = credited is { } c ? Text(c.Decision.DecisionId, outcome.DecisionId) : null;
        TrackResult tracked;
        try
        {
            tracked = ingestion.Track(ProfileEvent(outcome, credited, decisionId), prefix);
        }
        catch (ValidationException ex)
        {
            return new OutcomeResult(index, Attribution.Rejected, null, null, ex.Violations);
        }
        catch (LimitExceededException ex)
        {
            return new OutcomeResult(index, Attribution.Rejected, null, null, [new FieldViolation(prefix, ex.Message)]);
        }

        if (tracked.Duplicate)
        {
            return new OutcomeResult(index, Attribution.Duplicate, null, null, []);
        }

        var ticks = outcome.Timestamp.UtcTicks;
        var value = outcome.Type == OutcomeType.Conversion ? outcome.Value : 0;
        OutcomeResult result;
        BeforeCrediting?.Invoke(outcome);
        _crediting.EnterReadLock(); // a checkpoint holds either this credit and its journal record, or neither
        try
        {
            if (credited is { } erased && measurement.Ledger.IsForgotten(erased.Decision.Sequence))
            {
                // Its user was erased while the outcome was on its way (Forget runs while nothing credits): nothing of it
                // is kept, neither in the experiment and impressions nor in the journal.
                return new OutcomeResult(index, Attribution.Unattributed, null, null, []);
            }

            if (credited is not { } d)
            {
                if (!IsNewOrder(outcome.Type, outcome.OrderId, Unattributed(ticks)))
                {
                    return new OutcomeResult(index, Attribution.Duplicate, null, null, []);
                }

                CreditUnattributed(outcome.SubjectId, outcome.Type, value, ticks);
                Journal(new OutcomeCredit(-1, ticks, outcome.Type, outcome.Variant, value, outcome.SubjectId, outcome.OrderId));
                result = new OutcomeResult(index, Attribution.Unattributed, null, null, []);
            }
            else if (CreditDecision(d.Decision, outcome.Type, outcome.Variant, value, ticks, outcome.SubjectId, outcome.OrderId))
            {
                Journal(new OutcomeCredit(d.Decision.Sequence, ticks, outcome.Type, outcome.Variant, value, outcome.SubjectId, outcome.OrderId));
                result = new OutcomeResult(index, d.LastTouch ? Attribution.LastImpression : Attribution.Decision, decisionId, d.Decision.Segment.Id, []);
            }
            else
            {
                return new OutcomeResult(index, Attribution.Duplicate, decisionId, d.Decision.Segment.Id, []);
            }
        }
        finally
        {
            _crediting.ExitReadLock();
        }

        Prune();
        return result;
    }

    // An outcome credited to no decision: counted as unattributed, and in the user's experiments wherever it was credited.
    private void CreditUnattributed(string subject, OutcomeType type, double value, long ticks)
    {
        measurement.Kpis.AddUnattributed(ticks, type);
        measurement.Exposures.Credit(subject, type, value, ticks);
    }

    // False for a conversion of an order credited already (to this decision, another one, or none); otherwise the order
    // is now credited to the decision at sequence (or unattributed: see Unattributed).
    private bool IsNewOrder(OutcomeType type, string? orderId, long sequence)
    {
        if (type != OutcomeType.Conversion || string.IsNullOrEmpty(orderId))
        {
            return true;
        }

        if (!_orders.TryAdd(orderId, sequence))
        {
            return false;
        }

        if (sequence < 0)
        {
            Interlocked.Increment(ref _unattributedSincePrune);
        }

        return true;
    }

    // An unattributed order's entry: its time, as a negative number (decisions' sequences are never negative).
    private static long Unattributed(long ticks) => -1 - ticks;

    // An outcome credited to decision d: false when it is a conversion of an order credited already.
    private bool CreditDecision(in RememberedDecision d, OutcomeType type, VariantKind? variant, double value, long ticks, string subject, string? orderId)
    {
        if (!IsNewOrder(type, orderId, d.Sequence))
        {
            return false;
        }

        if (d.Key.Arm is { Experiment: { } experiment } arm)
        {
            // The decision's arm is recorded before its outcome counts (the drain may not have reached the decision yet).
            var exposes = experiment.Exposure == ExposureTrigger.Decision || type is OutcomeType.Impression or OutcomeType.EmailSend;
            measurement.Exposures.Record(arm, d.UserId, exposes && experiment.Exposure == ExposureTrigger.Decision ? d.Ticks : ticks, exposes, d.Segment.Id);
        }

        measurement.Exposures.Credit(subject, type, value, ticks);
        measurement.Kpis.AddOutcome(ticks, d.Segment.Id, d.CatalogVersion, d.Channel, variant, type, value, d.Key.Arm?.Key ?? "");
        if (type == OutcomeType.Impression)
        {
            var touch = (Sequence: d.Sequence, Ticks: ticks);
            _impressions.AddOrUpdate(subject, static (_, t) => [t], static (_, old, t) => WithTouch(old, t), touch);
        }

        return true;
    }

    private void Journal(in OutcomeCredit credit)
    {
        if (JournalsCredits)
        {
            _unjournaled.Enqueue(credit);
        }
    }

    // The decision the outcome is credited to, or null.
    private (RememberedDecision Decision, bool LastTouch)? Credit(Outcome outcome)
    {
        var ticks = outcome.Timestamp.UtcTicks;
        var window = options.AttributionWindow.Ticks;
        if (outcome.DecisionId.Length > 0)
        {
            return measurement.Ledger.TryFind(outcome.DecisionId, out var d) && InWindow(d.Ticks) && SameSubject(outcome.SubjectId, d.UserId)
                ? (d, false)
                : null;
        }

        // A conversion without a decision id: the user's last impression at or before it, under any id of the user (an
        // impression as an anonymous visitor, the conversion once signed in, or the other way round), if the conversion
        // is within the window after that impression (the impression was within the window after its decision).
        var (last, lastAt) = (-1L, long.MinValue);
        foreach (var id in IdsOf(outcome.SubjectId))
        {
            if (_impressions.TryGetValue(id, out var recent))
            {
                for (var i = recent.Length - 1; i >= 0; i--)
                {
                    var (sequence, at) = recent[i];
                    if (at <= ticks)
                    {
                        (last, lastAt) = at > lastAt ? (sequence, at) : (last, lastAt);
                        break;
                    }
                }
            }
        }

        return last >= 0 && ticks - lastAt <= window && measurement.Ledger.TryRead(last, out var touched) ? (touched, true) : null;

        bool InWindow(long decided) => ticks >= decided - ClockSkew && ticks - decided <= window;
    }

    // The subject's own id, the profile it resolves to, and every id linked to that profile.
    private IEnumerable<string> IdsOf(string subject)
    {
        yield return subject;
        if (profiles.Get(subject) is not { } profile)
        {
            yield break;
        }

        if (!string.Equals(profile.UserId, subject, StringComparison.Ordinal))
        {
            yield return profile.UserId;
        }

        foreach (var linked in profiles.LinkedIds(profile.UserId))
        {
            if (!string.Equals(linked, subject, StringComparison.Ordinal))
            {
                yield return linked;
            }
        }
    }

    // The same user, directly or through an identity link (a decision for an anonymous id, an outcome for the user it became).
    private bool SameSubject(string outcomeSubject, string decisionSubject)
    {
        if (string.Equals(outcomeSubject, decisionSubject, StringComparison.Ordinal))
        {
            return true;
        }

        return profiles.Get(outcomeSubject) is { } a && profiles.Get(decisionSubject) is { } b && string.Equals(a.UserId, b.UserId, StringComparison.Ordinal);
    }

    // A decision id as text: the outcome's own string when it already is the canonical form (no new string).
    private static string Text(Guid id, string given)
    {
        Span<char> text = stackalloc char[36];
        return id.TryFormat(text, out var n) && text[..n].SequenceEqual(given) ? given : id.ToString();
    }

    // The lower-case name of each variant kind, as outcome events carry it in their category.
    private static readonly string[] VariantNames = [.. Enum.GetValues<VariantKind>().Select(v => v.ToString().ToLowerInvariant())];

    private static BehaviourEvent ProfileEvent(Outcome o, (RememberedDecision Decision, bool LastTouch)? credited, string? decisionId) => new()
    {
        EventId = o.EventId,
        Type = Outcome.EventType(o.Type),
        UserId = o.UserId,
        AnonymousId = o.AnonymousId,
        Timestamp = o.Timestamp,
        // The page type of an outcome is the segment whose decision it was credited to ("outcome" when none): contact
        // policies scoped to a segment count that segment's negative outcomes by it.
        Context = new EventContext(Source: credited?.Decision.Channel ?? "outcome", Device: "unknown", SessionId: "", PageType: credited?.Decision.Segment.Id ?? "outcome"),
        Value = o.Type == OutcomeType.Conversion ? o.Value : 0,
        Currency = o.Currency,
        OrderId = o.OrderId,
        CampaignId = decisionId ?? (o.DecisionId.Length > 0 ? o.DecisionId : null),
        Category = o.Variant is { } v && (int)v >= 0 && (int)v < VariantNames.Length ? VariantNames[(int)v] : o.Variant?.ToString().ToLowerInvariant(),
    };

    // The user's recent impressions with one more, oldest first, at most RecentImpressions (the oldest falls out).
    private static (long Sequence, long Ticks)[] WithTouch((long Sequence, long Ticks)[] old, (long Sequence, long Ticks) touch)
    {
        var at = old.Length;
        while (at > 0 && old[at - 1].Ticks > touch.Ticks)
        {
            at--; // an impression reported late goes in its place by time
        }

        var keep = Math.Min(old.Length + 1, RecentImpressions);
        var drop = old.Length + 1 - keep;
        var touches = new (long, long)[keep];
        for (int from = 0, to = 0; from <= old.Length; from++)
        {
            var item = from < at ? old[from] : from == at ? touch : old[from - 1];
            if (from >= drop)
            {
                touches[to++] = item;
            }
        }

        return touches;
    }

    // Each time the ledger has forgotten another quarter of its capacity, and each time UnattributedPerPrune unattributed
    // orders were added (one thread at a time): an order whose decision is forgotten is kept as an unattributed one from
    // now, unattributed orders past their attribution window are dropped, and so are impressions of forgotten decisions
    // (they can never be credited again). Both stay bounded by what the ledger remembers and the window.
    private void Prune()
    {
        var ledger = measurement.Ledger;
        var forgotten = ledger.Issued - ledger.Capacity;
        var ledgerMoved = forgotten > Volatile.Read(ref _prunedAt) + (ledger.Capacity / 4);
        if (!ledgerMoved && Volatile.Read(ref _unattributedSincePrune) < UnattributedPerPrune)
        {
            return;
        }

        if (Interlocked.Exchange(ref _pruning, 1) == 1)
        {
            return; // another thread prunes
        }

        try
        {
            Volatile.Write(ref _unattributedSincePrune, 0);
            var now = time.GetUtcNow().UtcTicks;
            var expired = Unattributed(now - options.AttributionWindow.Ticks);
            foreach (var (order, sequence) in _orders)
            {
                if (sequence >= 0 && sequence < forgotten)
                {
                    // Its decision is forgotten, the order is not: a report of it arriving later is still a duplicate,
                    // for an attribution window from now, as an unattributed order's is.
                    _orders.TryUpdate(order, Unattributed(now), sequence);
                }
                else if (sequence < 0 && sequence > expired)
                {
                    _orders.TryRemove(new KeyValuePair<string, long>(order, sequence));
                }
            }

            if (ledgerMoved)
            {
                Volatile.Write(ref _prunedAt, forgotten);
                ForgetImpressions(forgotten);
            }
        }
        finally
        {
            Volatile.Write(ref _pruning, 0);
        }
    }

    // Impressions of decisions the ledger has forgotten can never be credited again.
    private void ForgetImpressions(long forgotten)
    {
        foreach (var (user, touches) in _impressions)
        {
            if (touches.Max(static t => t.Sequence) < forgotten)
            {
                _impressions.TryRemove(new KeyValuePair<string, (long Sequence, long Ticks)[]>(user, touches)); // unless a newer impression replaced it meanwhile
            }
        }
    }
}
