using System.Collections.Concurrent;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Experiments;
using Segmentation.Core.Outcomes;
using Segmentation.Core.Profiles;

namespace Segmentation.Core.Application.Measurement;

/// <summary>
/// One user's place in one experiment: the arm they were given, when, when they were first exposed, what they did
/// afterwards and the pre-exposure values CUPED adjusts with.
/// </summary>
internal struct ExposureRecord
{
    /// <summary>The user (the profile's id), or null when the record was erased or moved.</summary>
    public string? Subject;

    /// <summary>The arm's index in its table's arm ids.</summary>
    public int Arm;

    /// <summary>The index (in its table's segment ids) of the segment that won the exposing decision; -1 when not known.</summary>
    public int Segment;

    /// <summary>When the arm was first recorded (UTC ticks).</summary>
    public long AssignedTicks;

    /// <summary>When the user was first exposed (UTC ticks), or 0 while assigned but not exposed.</summary>
    public long ExposedTicks;

    /// <summary>Impressions (web impressions and email sends) after exposure.</summary>
    public int Impressions;

    /// <summary>Clicks (web and email) after exposure.</summary>
    public int Clicks;

    /// <summary>Conversions after exposure.</summary>
    public int Conversions;

    /// <summary>Unsubscribes after exposure.</summary>
    public int Unsubscribes;

    /// <summary>Conversion value after exposure.</summary>
    public double Revenue;

    /// <summary>Purchase and conversion value in the pre-exposure window.</summary>
    public double PreRevenue;

    /// <summary>Purchases and conversions in the pre-exposure window.</summary>
    public int PreConversions;

    /// <summary>Clicks in the pre-exposure window.</summary>
    public int PreClicks;

    /// <summary>True once exposed.</summary>
    public readonly bool Exposed => ExposedTicks != 0 && Subject is not null;
}

/// <summary>
/// An outcome of a user assigned to an experiment that exposes on the first impression, credited before that
/// impression reached the service (or before the impression the user is exposed at, when an earlier one may still be
/// reported): held until it does, then counted if it came after it.
/// </summary>
/// <param name="Type">The outcome's type.</param>
/// <param name="Value">Its value (a conversion's).</param>
/// <param name="Earliest">Its time less the allowed clock skew (UTC ticks), as exposure is compared with it.</param>
internal readonly record struct HeldOutcome(OutcomeType Type, double Value, long Earliest);

/// <summary>
/// Every user's recorded arm and outcomes per experiment: what keeps a user in their arm when weights change or when
/// they are identified, and what results are computed from, one record per user per experiment.
/// </summary>
/// <remarks>
/// <para>A decision served in an experiment records the user's arm when the decision is counted (off the request
/// path, within a second) — or earlier, when an outcome names the decision first. From then on the user keeps that
/// arm (<see cref="IRecordedAssignments"/>), whatever the weights become, as long as the arm exists. A user is
/// <em>exposed</em> when the decision is served, or on its first impression when the experiment says
/// <c>exposure: impression</c>; from then on every outcome of theirs counts in their arm (user-level analysis: a
/// conversion counts wherever it was credited, as experimentation platforms count it). An outcome that reaches the
/// service before the impression it followed is held until the impression does (the newest 16 per user; at most
/// 100,000 per experiment, letting go of those a day older than a new one), and counts if it came after it. At
/// exposure, the user's own history of the 30 days before is read for CUPED: purchase and conversion value, their
/// count, and clicks.</para>
/// <para>Reads (a decision asking for a recorded arm) take no lock; writes take the experiment's lock. Records live
/// in chunks that never move, about 120 bytes per user per experiment with the index. Identification moves an
/// anonymous user's records to the user (unless the user has their own); erasure removes them.</para>
/// </remarks>
public sealed class ExperimentExposures(IProfileStore? profiles = null) : IRecordedAssignments
{
    /// <summary>How far back before exposure the pre-exposure values (CUPED's covariates) are read.</summary>
    public static readonly TimeSpan PrePeriod = TimeSpan.FromDays(30);

    /// <summary>How long the records of an experiment removed from the catalog are kept (for a rollback), before <see cref="Prune"/> drops them.</summary>
    public static readonly TimeSpan RemovedRetention = TimeSpan.FromDays(30);

    // An outcome a little before the exposure's own time (clocks differ) still counts.
    private static readonly long ClockSkew = TimeSpan.FromMinutes(5).Ticks;

    private readonly ConcurrentDictionary<string, ExposureTable> _tables = new(StringComparer.Ordinal);

    // The catalog last published and when: a table made after it (its experiment's first user recorded) is brought up to
    // it, as a table that existed then was.
    private volatile Published? _published;

    /// <inheritdoc />
    /// <remarks>
    /// While an experiment's weights are those its users were assigned under and nobody's record was moved by an
    /// identification, the hash gives every recorded user their recorded arm: the answer is null without reading the
    /// user's record (a decision then pays one dictionary lookup of the experiment). Once weights change (see
    /// <see cref="Publishing"/>) or a record moves, the user's record is read.
    /// </remarks>
    public string? RecordedArm(string experimentId, string subjectId) =>
        _tables.TryGetValue(experimentId, out var table) && table.ReadsRecords ? table.ArmOf(subjectId) : null;

    /// <summary>
    /// Whether the arm a decision serves the subject may still change: the experiment reads recorded arms (its weights
    /// changed since its users were split) and the subject's is not recorded yet (an earlier decision may be, at the next
    /// drain, and then it is the one served).
    /// </summary>
    public bool ArmMayChange(string experimentId, string subjectId) =>
        _tables.TryGetValue(experimentId, out var table) && table.ReadsRecords && !table.Holds(subjectId);

    /// <inheritdoc />
    public bool IsRecorded(string experimentId, string subjectId) =>
        _tables.TryGetValue(experimentId, out var table) && table.Holds(subjectId);

    /// <summary>
    /// Called with a catalog about to be served: an experiment whose arms' weights differ from those its users were
    /// assigned under reads recorded arms from now on (before the catalog serves a single decision).
    /// </summary>
    public void Publishing(CatalogSnapshot next, long nowTicks)
    {
        ArgumentNullException.ThrowIfNull(next);
        var published = new Published(next, nowTicks);
        _published = published; // before the tables are read: a table made meanwhile catches up from it
        foreach (var table in _tables.Values)
        {
            Tell(table, published);
        }

        Prune(nowTicks);
    }

    /// <summary>
    /// Drops the records of experiments that left the catalog more than <see cref="RemovedRetention"/> ago: a rollback
    /// within that time brings an experiment back with its users in their arms and its results; after it, nothing of
    /// it is kept (memory stays bounded by the experiments the catalog holds).
    /// </summary>
    public void Prune(long nowTicks)
    {
        foreach (var (id, table) in _tables)
        {
            if (table.TryRetire(nowTicks - RemovedRetention.Ticks))
            {
                _tables.TryRemove(KeyValuePair.Create(id, table)); // this table only: never one published since
            }
        }
    }

    /// <summary>
    /// Records that <paramref name="subjectId"/> was served <paramref name="arm"/> at <paramref name="ticks"/> (keeping
    /// an arm already recorded), and exposes them if <paramref name="expose"/> and not exposed yet.
    /// </summary>
    /// <remarks><paramref name="segmentId"/> is the segment that won the decision (for breakdowns of an experiment of the whole catalog).</remarks>
    public void Record(ExperimentArm arm, string subjectId, long ticks, bool expose, string? segmentId = null)
    {
        ArgumentNullException.ThrowIfNull(arm);
        ArgumentNullException.ThrowIfNull(subjectId);
        var profile = profiles?.Get(subjectId);
        var subject = profile?.UserId ?? subjectId;
        if (!_tables.TryGetValue(arm.ExperimentId, out var table))
        {
            var made = new ExposureTable(arm.ExperimentId, arm.Experiment);
            table = _tables.GetOrAdd(arm.ExperimentId, made);
            if (ReferenceEquals(table, made) && _published is { } published && !ReferenceEquals(published.ExperimentOf(arm.ExperimentId), arm.Experiment))
            {
                // The decision was made under a catalog published over since (weights changed before the experiment had
                // a record): the table learns what that publish would have told it, so its records are read from now on.
                Tell(table, published);
            }
        }

        if (arm.Experiment?.Exposure == ExposureTrigger.Impression)
        {
            table.ExposesOnImpression = true;
        }

        table.Record(subject, arm.Id, ticks, expose ? profile : null, expose, segmentId);
    }

    // Tells a table what a publish means for its experiment: the experiment as it serves now, or its removal.
    private static void Tell(ExposureTable table, Published published)
    {
        if (published.ExperimentOf(table.ExperimentId) is { } serving)
        {
            table.Serving(serving, published.Ticks);
        }
        else
        {
            table.Removed(published.Ticks);
        }
    }

    private sealed record Published(CatalogSnapshot Catalog, long Ticks)
    {
        public Experiment? ExperimentOf(string id) => Catalog.Experiments.FirstOrDefault(e => e.Id == id);
    }

    /// <summary>
    /// Counts an outcome of <paramref name="subjectId"/> in every experiment they were exposed to before it. In one they
    /// are assigned to and not exposed yet (it exposes on the first impression), the outcome is held until the
    /// impression arrives, and counted then if it came after it.
    /// </summary>
    public void Credit(string subjectId, OutcomeType type, double value, long ticks)
    {
        if (_tables.IsEmpty)
        {
            return;
        }

        var subject = profiles?.Get(subjectId)?.UserId ?? subjectId;
        foreach (var (_, table) in _tables) // enumerated without locks (Values would take every lock and copy, per outcome)
        {
            table.Credit(subject, type, value, ticks - ClockSkew);
        }
    }

    /// <summary>Moves <paramref name="anonymousId"/>'s records to <paramref name="userId"/> (identification), where the user has none of their own.</summary>
    public void Link(string anonymousId, string userId)
    {
        foreach (var table in _tables.Values)
        {
            table.Link(anonymousId, userId);
        }
    }

    /// <summary>Forgets <paramref name="userIds"/> (erasure): their arms and outcomes leave every experiment.</summary>
    public void Forget(IReadOnlySet<string> userIds)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        foreach (var table in _tables.Values)
        {
            table.Forget(userIds);
        }
    }

    /// <summary>
    /// The experiment's per-arm sums, one scan of its records (null when nobody was assigned yet); with
    /// <paramref name="currentSplit"/>, of the users assigned since its split last changed only
    /// (<see cref="ExposureSummary.AssignedSinceTicks"/>).
    /// </summary>
    public ExposureSummary? Summarize(string experimentId, bool currentSplit = false) =>
        _tables.TryGetValue(experimentId, out var table) ? table.Summarize(currentSplit) : null;

    /// <summary>Every record of every experiment, for a checkpoint.</summary>
    internal IEnumerable<(string ExperimentId, string ArmId, string SegmentId, ExposureRecord Record)> Records() =>
        _tables.Values.SelectMany(t => t.Records().Select(r => (t.ExperimentId, r.ArmId, r.SegmentId, r.Record)));

    /// <summary>What each experiment's table knows beside its records, for a checkpoint.</summary>
    internal IEnumerable<ExposureTableState> Tables() => [.. _tables.Values.Select(t => t.State())];

    /// <summary>Every outcome held for a user not exposed yet, for a checkpoint.</summary>
    internal IEnumerable<(string ExperimentId, string Subject, HeldOutcome Outcome)> Held() =>
        _tables.Values.SelectMany(t => t.Held().Select(h => (t.ExperimentId, h.Subject, h.Outcome)));

    /// <summary>
    /// Restores a checkpoint's records and tables (into empty tables, before decisions are served), then brings them up
    /// to <paramref name="current"/>, the catalog serving now (published while the server was down, it may have
    /// changed weights, stopped or removed an experiment).
    /// </summary>
    internal void Restore(
        IEnumerable<(string ExperimentId, string ArmId, string SegmentId, ExposureRecord Record)> records,
        IEnumerable<ExposureTableState> tables,
        CatalogSnapshot? current,
        long nowTicks,
        IEnumerable<(string ExperimentId, string Subject, HeldOutcome Outcome)>? held = null)
    {
        foreach (var state in tables)
        {
            _tables.GetOrAdd(state.ExperimentId, static id => new ExposureTable(id, null)).Restore(state);
        }

        foreach (var (experimentId, armId, segmentId, record) in records)
        {
            _tables.GetOrAdd(experimentId, static id => new ExposureTable(id, null)).Restore(armId, segmentId, record);
        }

        foreach (var (experimentId, subject, outcome) in held ?? [])
        {
            if (_tables.TryGetValue(experimentId, out var table))
            {
                table.Hold(subject, outcome);
            }
        }

        if (current is not null)
        {
            Publishing(current, nowTicks);
        }

        // Identifications replayed from the change log after the checkpoint was taken: records under an id that now
        // resolves to another profile move to it, as they would have when the identification happened.
        if (profiles is not null)
        {
            var moved = _tables.Values.SelectMany(t => t.Records()).Select(r => r.Record.Subject!).Distinct(StringComparer.Ordinal)
                .Select(s => (From: s, To: profiles.Get(s)?.UserId)).Where(p => p.To is not null && p.To != p.From).ToList();
            foreach (var (from, to) in moved)
            {
                Link(from, to!);
            }
        }
    }

    // The pre-exposure window's values, read from the profile's own history.
    private static void ReadHistory(ref ExposureRecord record, Profile profile, long exposedTicks)
    {
        var window = PrePeriod.Ticks;
        exposedTicks--; // strictly before exposure: an outcome at the very instant of exposure is the metric, not its covariate
        var purchases = profile.Series(EventTypes.Purchase);
        var conversions = profile.Series(EventTypes.Conversion);
        record.PreRevenue = purchases.SumInWindow(exposedTicks, window, out _) + conversions.SumInWindow(exposedTicks, window, out _);
        record.PreConversions = purchases.CountInWindow(exposedTicks, window, out _) + conversions.CountInWindow(exposedTicks, window, out _);
        record.PreClicks = profile.Series(EventTypes.Click).CountInWindow(exposedTicks, window, out _) + profile.Series(EventTypes.EmailClick).CountInWindow(exposedTicks, window, out _);
    }

    // The index maps a user to their record's position and arm, packed: position << 16 | arm.
    private sealed class ExposureTable(string experimentId, Experiment? assignedUnder)
    {
        private const int ChunkBits = 12;
        private const int ChunkSize = 1 << ChunkBits;

        private readonly object _gate = new();
        private readonly ConcurrentDictionary<string, long> _index = new(StringComparer.Ordinal);
        private ExposureRecord[][] _chunks = [];
        private string[] _armIds = [];
        private readonly List<string> _segmentIds = [];
        private int _count;
        // What places a user in an arm besides their id: the arms in order with their weights (null: not known — a
        // bandit's split moves, or a file did not keep them), and the salt.
        private (string ArmId, double Weight)[]? _weights = assignedUnder is null || assignedUnder.IsBandit ? null : [.. assignedUnder.Arms.Select(a => (a.Id, a.Weight))];
        private string? _salt = assignedUnder?.Salt;
        private volatile bool _readsRecords = assignedUnder is null || assignedUnder.IsBandit; // restored (weights not known) or a bandit (weights move)
        private bool _bandit = assignedUnder?.IsBandit == true; // a bandit allocated its users until the last publish (its weights are null then)
        private long _endTicks = assignedUnder?.StopTicks ?? long.MaxValue;

        // Outcomes of users assigned and not exposed yet, or dated before the impression they are exposed at, by record
        // position (an experiment exposing on the first impression: a click or a conversion can reach the service before
        // the impression it followed, and impressions can arrive out of order). Counted at the exposure when they came
        // after it; bounded per user and per experiment (beyond, they are not held).
        private Dictionary<int, List<HeldOutcome>>? _held;
        private int _heldCount;
        private long _oldestHeld = long.MaxValue; // at or before the oldest held outcome's time: a scan for older ones is skipped below it

        public string ExperimentId { get; } = experimentId;

        /// <summary>True once the hash may disagree with a record (weights changed, a record moved, or restored).</summary>
        public bool ReadsRecords => _readsRecords;

        /// <summary>When the weights last changed (UTC ticks of the publish), or 0: the sample ratio is checked over users assigned since.</summary>
        public long WeightsChangedTicks { get; private set; }

        /// <summary>When the experiment was removed from the catalog (UTC ticks of the publish), or 0 while it is in it.</summary>
        public long RemovedTicks { get; private set; }

        public void Serving(Experiment experiment, long now)
        {
            lock (_gate)
            {
                RemovedTicks = 0;

                // Outcomes count until the experiment ends: its stop, or the moment its arm was promoted (after either,
                // its users are served something else, so what they do no longer measures the arms).
                _endTicks = experiment.Promoted is null ? experiment.StopTicks
                    : Math.Min(experiment.StopTicks, _endTicks < now ? _endTicks : now);

                if (experiment.IsBandit)
                {
                    _readsRecords = true; // weights move on purpose
                    _weights = null; // not the split users were placed by: fixed weights after it start a new split
                    _bandit = true;
                    _salt = experiment.Salt;
                    return;
                }

                // Arms reordered or a new salt move users between arms as new weights do: from then on the records
                // decide for users already assigned, so each stays in the arm their outcomes are credited to, and the
                // split changed: results (and the sample ratio) count the users assigned from now on. (A salt not known,
                // from a file written before it was kept, is taken as it is.) A bandit's weights until now count as
                // changed; weights not known (a file that did not keep them) do not — a restart is no change of split, and
                // taking it for one would leave every earlier user out of the results — but records are read from then on.
                var placement = experiment.Arms.Select(a => (a.Id, a.Weight)).ToArray();
                var sameSalt = _salt is null || _salt == experiment.Salt;
                if (_weights is not null && placement.SequenceEqual(_weights) && sameSalt)
                {
                    _salt = experiment.Salt;
                    return;
                }

                if ((_weights is null && !_bandit) || (_weights is not null && sameSalt && SamePlacement(placement, _weights)))
                {
                    // Not known, or the same split spelt otherwise (1:1 as 50:50, an arm of weight 0 added): no change.
                    _readsRecords = true;
                    (_weights, _salt) = (placement, experiment.Salt);
                    return;
                }

                _readsRecords = true;
                _bandit = false;
                WeightsChangedTicks = now;
                (_weights, _salt) = (placement, experiment.Salt);
            }
        }

        // Whether two weightings place every user in the same arm: the same arms with the same shares, in order (arms of
        // weight 0 take nobody, wherever they stand).
        private static bool SamePlacement((string ArmId, double Weight)[] a, (string ArmId, double Weight)[] b)
        {
            static (string ArmId, double Share)[] Shares((string ArmId, double Weight)[] arms)
            {
                var total = arms.Sum(x => Math.Max(0, x.Weight));
                return total <= 0 ? [] : [.. arms.Where(x => x.Weight > 0).Select(x => (x.ArmId, x.Weight / total))];
            }

            var (x, y) = (Shares(a), Shares(b));
            return x.Length > 0 && x.Length == y.Length
                && x.Zip(y).All(p => p.First.ArmId == p.Second.ArmId && Math.Abs(p.First.Share - p.Second.Share) < 1e-12);
        }

        /// <summary>True when it left the catalog at or before <paramref name="removedBy"/> (checked under its lock, so a publish that brings it back either comes first or finds it retired).</summary>
        public bool TryRetire(long removedBy)
        {
            lock (_gate)
            {
                return RemovedTicks != 0 && RemovedTicks <= removedBy;
            }
        }

        public void Removed(long now)
        {
            lock (_gate)
            {
                if (RemovedTicks == 0)
                {
                    RemovedTicks = now;
                    _endTicks = Math.Min(_endTicks, now);
                }
            }
        }

        public ExposureTableState State()
        {
            lock (_gate)
            {
                return new ExposureTableState(ExperimentId, WeightsChangedTicks, _endTicks, RemovedTicks, _readsRecords, _weights, _salt, _bandit);
            }
        }

        public void Restore(ExposureTableState state)
        {
            lock (_gate)
            {
                WeightsChangedTicks = state.WeightsChangedTicks;
                _endTicks = state.EndTicks;
                RemovedTicks = state.RemovedTicks;
                _weights = state.Weights?.ToArray();
                _salt = state.Salt;
                _bandit = state.Bandit;
                _readsRecords = state.ReadsRecords || _weights is null;
            }
        }

        /// <summary>
        /// Whether the experiment exposes on the first impression, as its arms recorded say (a table restored from a
        /// checkpoint learns it from its next record): only then can an impression reported late move an exposure
        /// earlier, and only then is an outcome before the exposure held for it.
        /// </summary>
        public volatile bool ExposesOnImpression;

        // Lock-free: a record is written before its index entry is published.
        public bool Holds(string subject) => _index.ContainsKey(subject);

        public string? ArmOf(string subject)
        {
            if (!_index.TryGetValue(subject, out var packed))
            {
                return null;
            }

            var arm = (int)(packed & 0xFFFF);
            var arms = Volatile.Read(ref _armIds);
            return arm < arms.Length ? arms[arm] : null;
        }

        public void Record(string subject, string armId, long ticks, Profile? profile, bool expose, string? segmentId)
        {
            lock (_gate)
            {
                int i;
                if (_index.TryGetValue(subject, out var packed))
                {
                    i = (int)(packed >> 16);
                }
                else
                {
                    var arm = ArmIndex(armId);
                    i = Add(new ExposureRecord { Subject = subject, Arm = arm, AssignedTicks = ticks, Segment = -1 });
                    _index[subject] = Pack(i, arm);
                }

                // An exposure at or after the end exposes nobody (an impression of a decision made before a stop, reported
                // after it): no outcome of theirs would count any more, so they would only dilute the arm.
                ref var record = ref At(i);
                if (expose && ticks < _endTicks && (record.ExposedTicks == 0 || Math.Max(1, ticks) < record.ExposedTicks))
                {
                    // Exposure is the first impression, whichever reaches the service first: one reported late (an email
                    // platform's send) moves it earlier, with the history before it, and the outcomes held as before the
                    // later one count if they are not before this one.
                    record.ExposedTicks = Math.Max(1, ticks);
                    record.Segment = segmentId is null ? -1 : SegmentIndex(segmentId);
                    if (profile is not null)
                    {
                        ReadHistory(ref record, profile, ticks);
                    }

                    foreach (var held in Release(i))
                    {
                        if (held.Earliest >= _endTicks)
                        {
                            continue; // the end may have moved since it was held
                        }

                        if (!IsBeforeExposure(in record, held.Earliest))
                        {
                            Count(ref record, held.Type, held.Value);
                        }
                        else if (MayPrecedeAnEarlierImpression(in record, held.Earliest))
                        {
                            HoldAt(i, held); // an impression earlier still may come
                        }
                    }
                }
            }
        }

        // An outcome at earliest (its time less the clock skew) happened before the user's exposure.
        private static bool IsBeforeExposure(in ExposureRecord record, long earliest) => record.ExposedTicks > earliest + (2 * ClockSkew);

        // Whether an outcome before the user's exposure is held in case an impression earlier than the exposure is still
        // to be reported: on an experiment exposing on impressions, within a day before the exposure (as long as an
        // outcome is held for a user not exposed when the experiment's bound is reached).
        private bool MayPrecedeAnEarlierImpression(in ExposureRecord record, long earliest) =>
            ExposesOnImpression && earliest >= record.ExposedTicks - HoldFor;

        private static void Count(ref ExposureRecord record, OutcomeType type, double value)
        {
            switch (type)
            {
                case OutcomeType.Impression or OutcomeType.EmailSend:
                    record.Impressions++;
                    break;
                case OutcomeType.Click or OutcomeType.EmailClick:
                    record.Clicks++;
                    break;
                case OutcomeType.Conversion:
                    record.Conversions++;
                    record.Revenue += value;
                    break;
                case OutcomeType.EmailUnsubscribe:
                    record.Unsubscribes++;
                    break;
            }
        }

        /// <summary>Most outcomes held for one user not exposed yet: the newest are kept.</summary>
        internal const int MaxHeldPerUser = 16;

        /// <summary>Most outcomes held in one experiment (about 15 MB at most, with one per user).</summary>
        internal const int MaxHeldPerExperiment = 100_000;

        /// <summary>
        /// How long an outcome is held when the experiment's bound is reached: one older than this before the outcome
        /// being held is let go (an impression that late is not waited for), making room for newer ones.
        /// </summary>
        internal static readonly long HoldFor = TimeSpan.FromDays(1).Ticks;

        // Under the gate: holds an outcome of the user at position until their exposure, within the bounds.
        private void HoldAt(int position, HeldOutcome outcome)
        {
            if (_held is not null && _held.TryGetValue(position, out var list) && list.Count == MaxHeldPerUser)
            {
                var oldest = 0;
                for (var k = 1; k < list.Count; k++)
                {
                    oldest = list[k].Earliest < list[oldest].Earliest ? k : oldest;
                }

                if (outcome.Earliest > list[oldest].Earliest)
                {
                    list[oldest] = outcome; // the newest are the ones an impression still to come can precede
                }

                return;
            }

            if (_heldCount >= MaxHeldPerExperiment && LetGoOlderThan(outcome.Earliest - HoldFor) == 0)
            {
                return; // a full day's worth of outcomes of users not shown the variant: this one is not held
            }

            _held ??= [];
            if (!_held.TryGetValue(position, out list))
            {
                _held[position] = list = new List<HeldOutcome>(2);
            }

            list.Add(outcome);
            _heldCount++;
            _oldestHeld = Math.Min(_oldestHeld, outcome.Earliest);
        }

        // Under the gate: lets go of every held outcome before cutoff; returns how many. Walks them all only when one may
        // be that old, and learns the oldest left, so a full experiment refusing outcomes does not walk them each time.
        private int LetGoOlderThan(long cutoff)
        {
            if (_held is null || cutoff <= _oldestHeld)
            {
                return 0;
            }

            var (gone, oldest) = (0, long.MaxValue);
            foreach (var (position, list) in _held)
            {
                gone += list.RemoveAll(h => h.Earliest < cutoff);
                if (list.Count == 0)
                {
                    _held.Remove(position);
                    continue;
                }

                foreach (var h in list)
                {
                    oldest = Math.Min(oldest, h.Earliest);
                }
            }

            _heldCount -= gone;
            _oldestHeld = oldest;
            return gone;
        }

        // Under the gate: the outcomes held for the user at position, no longer held.
        private List<HeldOutcome> Release(int position)
        {
            if (_held is null || !_held.Remove(position, out var list))
            {
                return [];
            }

            _heldCount -= list.Count;
            return list;
        }

        /// <summary>Holds an outcome restored from a checkpoint for <paramref name="subject"/>, if they are recorded and not exposed.</summary>
        public void Hold(string subject, HeldOutcome outcome)
        {
            lock (_gate)
            {
                if (_index.TryGetValue(subject, out var packed) && At((int)(packed >> 16)) is { Subject: not null })
                {
                    HoldAt((int)(packed >> 16), outcome);
                }
            }
        }

        public List<(string Subject, HeldOutcome Outcome)> Held()
        {
            lock (_gate)
            {
                return _held is null ? [] : [.. _held.SelectMany(h => h.Value.Select(o => (At(h.Key).Subject!, o)))];
            }
        }

        public void Credit(string subject, OutcomeType type, double value, long earliest)
        {
            if (!_index.TryGetValue(subject, out var packed))
            {
                return;
            }

            lock (_gate)
            {
                var position = (int)(packed >> 16);
                ref var record = ref At(position);
                if (!string.Equals(record.Subject, subject, StringComparison.Ordinal) || earliest >= _endTicks)
                {
                    return; // moved or erased meanwhile; or after the experiment ended: the user was no longer served the arm
                }

                if (!record.Exposed)
                {
                    HoldAt(position, new HeldOutcome(type, value, earliest)); // its impression may not have reached the service yet
                    return;
                }

                if (!IsBeforeExposure(in record, earliest))
                {
                    Count(ref record, type, value);
                }
                else if (MayPrecedeAnEarlierImpression(in record, earliest))
                {
                    HoldAt(position, new HeldOutcome(type, value, earliest)); // an earlier impression may not have reached the service yet
                }
            }
        }

        public void Link(string anonymousId, string userId)
        {
            lock (_gate)
            {
                if (!_index.TryRemove(anonymousId, out var packed))
                {
                    return;
                }

                ref var record = ref At((int)(packed >> 16));
                if (_index.ContainsKey(userId))
                {
                    record.Subject = null; // the user has their own arm: the anonymous record leaves the results
                    Release((int)(packed >> 16));
                    return;
                }

                record.Subject = userId;
                _readsRecords = true; // the user's own hash may give another arm than the one they keep
                _index[userId] = packed;
            }
        }

        public void Forget(IReadOnlySet<string> userIds)
        {
            lock (_gate)
            {
                foreach (var id in userIds)
                {
                    if (_index.TryRemove(id, out var packed))
                    {
                        ref var record = ref At((int)(packed >> 16));
                        record = default;
                        record.Arm = -1;
                        Release((int)(packed >> 16));
                    }
                }
            }
        }

        public ExposureSummary Summarize(bool currentSplit)
        {
            lock (_gate)
            {
                var since = currentSplit ? WeightsChangedTicks : 0;
                var exposedEver = 0L;
                var arms = new ArmSums[_armIds.Length];
                for (var a = 0; a < arms.Length; a++)
                {
                    arms[a] = new ArmSums(_armIds[a]);
                }

                var bySegment = new ArmSums[_segmentIds.Count][];
                for (var s = 0; s < bySegment.Length; s++)
                {
                    bySegment[s] = [.. _armIds.Select(id => new ArmSums(id))];
                }

                for (var c = 0; c < _chunks.Length; c++)
                {
                    var chunk = _chunks[c];
                    var end = Math.Min(ChunkSize, _count - (c << ChunkBits));
                    for (var k = 0; k < end; k++)
                    {
                        ref readonly var r = ref chunk[k];
                        if (r.Subject is null || r.Arm < 0)
                        {
                            continue;
                        }

                        exposedEver += r.ExposedTicks != 0 ? 1 : 0;
                        if (r.AssignedTicks < since)
                        {
                            continue;
                        }

                        var sums = arms[r.Arm];
                        sums.Assigned++;
                        if (r.ExposedTicks != 0)
                        {
                            sums.Add(in r);
                            if (r.AssignedTicks >= WeightsChangedTicks)
                            {
                                sums.ExposedUnderCurrentWeights++;
                            }

                            if (r.Segment >= 0)
                            {
                                bySegment[r.Segment][r.Arm].Add(in r);
                            }
                        }
                    }
                }

                return new ExposureSummary(ExperimentId, arms, [.. _segmentIds.Select((id, s) => (id, (IReadOnlyList<ArmSums>)bySegment[s]))]) { AssignedSinceTicks = since, ExposedEver = exposedEver };
            }
        }

        public List<(string ArmId, string SegmentId, ExposureRecord Record)> Records()
        {
            List<(string, string, ExposureRecord)> copy;
            lock (_gate)
            {
                copy = new List<(string, string, ExposureRecord)>(_count);
                for (var i = 0; i < _count; i++)
                {
                    var r = At(i);
                    if (r.Subject is not null && r.Arm >= 0)
                    {
                        copy.Add((_armIds[r.Arm], r.Segment >= 0 ? _segmentIds[r.Segment] : "", r));
                    }
                }
            }

            return copy;
        }

        public void Restore(string armId, string segmentId, ExposureRecord record)
        {
            lock (_gate)
            {
                if (record.Subject is null || _index.ContainsKey(record.Subject))
                {
                    return;
                }

                record.Segment = segmentId.Length == 0 ? -1 : SegmentIndex(segmentId);
                record.Arm = ArmIndex(armId);
                _index[record.Subject] = Pack(Add(record), record.Arm);
            }
        }

        private static long Pack(int position, int arm) => ((long)position << 16) | (uint)arm;

        private ref ExposureRecord At(int i) => ref _chunks[i >> ChunkBits][i & (ChunkSize - 1)];

        private int Add(ExposureRecord record)
        {
            var i = _count;
            if ((i >> ChunkBits) == _chunks.Length)
            {
                var grown = new ExposureRecord[_chunks.Length + 1][];
                _chunks.CopyTo(grown, 0);
                grown[^1] = new ExposureRecord[ChunkSize];
                Volatile.Write(ref _chunks, grown);
            }

            At(i) = record;
            _count = i + 1;
            return i;
        }

        private int SegmentIndex(string segmentId)
        {
            var i = _segmentIds.IndexOf(segmentId);
            if (i < 0)
            {
                _segmentIds.Add(segmentId);
                i = _segmentIds.Count - 1;
            }

            return i;
        }

        private int ArmIndex(string armId)
        {
            var i = Array.IndexOf(_armIds, armId);
            if (i >= 0)
            {
                return i;
            }

            Volatile.Write(ref _armIds, [.. _armIds, armId]);
            return _armIds.Length - 1;
        }
    }
}

/// <summary>What an experiment's table of records knows beside the records (kept by the measurement checkpoint).</summary>
/// <param name="ExperimentId">The experiment.</param>
/// <param name="WeightsChangedTicks">When its weights last changed (0: never); the sample ratio is checked over users assigned since.</param>
/// <param name="EndTicks">When it ended (its stop, promotion or removal), or <see cref="long.MaxValue"/>; later outcomes do not count.</param>
/// <param name="RemovedTicks">When it left the catalog, or 0.</param>
/// <param name="ReadsRecords">True once the hash may disagree with a user's recorded arm.</param>
/// <param name="Weights">The arms in order with the weights its users were assigned under, or null when not known.</param>
/// <param name="Salt">The salt they were assigned with, or null when not known.</param>
/// <param name="Bandit">True when a bandit allocated its users until the last publish (<paramref name="Weights"/> is null then): fixed weights published after it are a change of split.</param>
internal readonly record struct ExposureTableState(string ExperimentId, long WeightsChangedTicks, long EndTicks, long RemovedTicks, bool ReadsRecords, IReadOnlyList<(string ArmId, double Weight)>? Weights, string? Salt = null, bool Bandit = false);

/// <summary>An experiment's per-arm sums, as of one scan.</summary>
/// <param name="ExperimentId">The experiment.</param>
/// <param name="Arms">One entry per arm that was ever recorded.</param>
/// <param name="Segments">The same per segment that won the users' exposing decisions (one segment for an experiment of a segment).</param>
public sealed record ExposureSummary(string ExperimentId, IReadOnlyList<ArmSums> Arms, IReadOnlyList<(string SegmentId, IReadOnlyList<ArmSums> Arms)> Segments)
{
    /// <summary>The users summed were assigned at or after this instant (UTC ticks; 0: every user).</summary>
    public long AssignedSinceTicks { get; init; }

    /// <summary>Every user exposed, assigned since <see cref="AssignedSinceTicks"/> or before.</summary>
    public long ExposedEver { get; init; }

    /// <summary>The sums of <paramref name="armId"/>, or empty ones.</summary>
    public ArmSums Arm(string armId) => Arms.FirstOrDefault(a => a.ArmId == armId) ?? new ArmSums(armId);
}

/// <summary>One arm's users and, per metric, the sufficient statistics of the per-user value and its pre-exposure covariate.</summary>
/// <param name="ArmId">The arm.</param>
public sealed class ArmSums(string ArmId)
{
    /// <summary>The arm.</summary>
    public string ArmId { get; } = ArmId;

    /// <summary>Users recorded in the arm (exposed or not).</summary>
    public long Assigned { get; internal set; }

    /// <summary>Users exposed.</summary>
    public long Exposed { get; private set; }

    /// <summary>Users exposed who were assigned under the current weights (all of them unless the weights changed): what the sample ratio is checked over.</summary>
    public long ExposedUnderCurrentWeights { get; internal set; }

    private MetricSums _clicked;
    private MetricSums _converted;
    private MetricSums _revenue;
    private MetricSums _unsubscribed;

    /// <summary>Share of exposed users who clicked at least once, with clicked-before as the covariate.</summary>
    public MetricSums Clicked => _clicked;

    /// <summary>Share who converted at least once, with converted-before as the covariate.</summary>
    public MetricSums Converted => _converted;

    /// <summary>Conversion value per user, with the pre-exposure purchase value as the covariate.</summary>
    public MetricSums Revenue => _revenue;

    /// <summary>Share who unsubscribed (no covariate).</summary>
    public MetricSums Unsubscribed => _unsubscribed;

    /// <summary>Impressions after exposure, summed.</summary>
    public long Impressions { get; private set; }

    /// <summary>The sums of <paramref name="metric"/> (a name of <see cref="ExperimentMetrics.Names"/>).</summary>
    public MetricSums Of(string metric) => metric switch
    {
        "ctr" => Clicked,
        "conversion_rate" => Converted,
        "revenue_per_user" => Revenue,
        "unsubscribe_rate" => Unsubscribed,
        _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown metric"),
    };

    internal void Add(in ExposureRecord r)
    {
        Exposed++;
        Impressions += r.Impressions;
        _clicked.Add(r.Clicks > 0 ? 1 : 0, r.PreClicks > 0 ? 1 : 0);
        _converted.Add(r.Conversions > 0 ? 1 : 0, r.PreConversions > 0 ? 1 : 0);
        _revenue.Add(r.Revenue, r.PreRevenue);
        _unsubscribed.Add(r.Unsubscribes > 0 ? 1 : 0, 0);
    }
}
