using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Events;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// The one way data gets into profiles, one handler per command: events (<see cref="EventRecorder"/>),
/// traits (<see cref="TraitWriter"/>), identity stitching (<see cref="IdentityStitcher"/>), consent
/// (<see cref="ConsentRecorder"/>), erasure (<see cref="ProfileEraser"/>), retention
/// (<see cref="RetentionSweeper"/>), start-up restore (<see cref="ChangeReplayer"/>) and the refresh of
/// what is derived from many profiles (<see cref="ProfileRefresher"/>). Every handler validates its input,
/// applies it under the user's lock, logs it to the <see cref="IChangeLog"/> before memory changes
/// (write-ahead), and derives before the call returns: aggregates, derived traits in the derived layer
/// (lifecycle, engagement, intent, lead score, RFM segment), the winning segment with its cause, and
/// memberships (without personalization consent, evaluated on the request context only and never
/// emitted). This class builds the handlers over one store and offers their commands in one place; it is
/// used by the gRPC services and the demo import alike.
/// </summary>
public sealed class ProfileIngestion : ISnapshotStateSource, IDisposable
{
    private readonly ProfileWriter _writer;
    private readonly Lazy<EventBatcher> _batcher;
    private bool _disposed;

    /// <summary>Builds the handlers over <paramref name="store"/>.</summary>
    public ProfileIngestion(
        IProfileStore store,
        CatalogProvider catalogs,
        RfmModelProvider rfm,
        MembershipIndex memberships,
        TimeProvider time,
        IChangeLog? changeLog = null,
        ConsentPolicy? consent = null,
        RetentionPolicy? retention = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(catalogs);
        ArgumentNullException.ThrowIfNull(rfm);
        ArgumentNullException.ThrowIfNull(memberships);
        ArgumentNullException.ThrowIfNull(time);
        _writer = new ProfileWriter(store, catalogs, rfm, memberships, time, changeLog ?? NoChangeLog.Instance, consent ?? ConsentPolicy.Default, retention ?? RetentionPolicy.KeepForever);
        Events = new EventRecorder(_writer);
        Traits = new TraitWriter(_writer);
        Identity = new IdentityStitcher(_writer, Events);
        Consents = new ConsentRecorder(_writer);
        Eraser = new ProfileEraser(_writer);
        Sweeper = new RetentionSweeper(_writer);
        Refresher = new ProfileRefresher(_writer);
        Replayer = new ChangeReplayer(_writer, Events, Traits, Identity, Consents, Eraser, Sweeper, Refresher);
        _batcher = new Lazy<EventBatcher>(() => new EventBatcher(Events), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>
    /// <see cref="Track"/> for a caller that can wait without holding a thread: with durability on, the event is recorded
    /// together with those other callers sent meanwhile, sharing their change-log commit (<see cref="EventBatcher"/>).
    /// </summary>
    /// <exception cref="ObjectDisposedException">With durability on, after <see cref="Dispose"/>.</exception>
    public Task<TrackResult> TrackAsync(BehaviourEvent e, string prefix = "event") =>
        BatchesWrites ? Batcher().TrackAsync(e, prefix) : Task.FromResult(Track(e, prefix));

    /// <summary>
    /// <see cref="TrackAll"/> for a caller that can wait without holding a thread: with durability on, the items are
    /// recorded in one batch with the events other callers sent meanwhile, sharing their change-log commit
    /// (<see cref="EventBatcher.TrackAllAsync"/>); without it, this completes at once.
    /// </summary>
    /// <exception cref="ObjectDisposedException">With durability on, after <see cref="Dispose"/>: nothing is recorded.</exception>
    public Task<EventResult[]> TrackAllAsync(IReadOnlyList<EventRecorder.BatchItem> items, Exception?[] refusals) =>
        BatchesWrites ? Batcher().TrackAllAsync(items, refusals) : Task.FromResult(TrackAll(items, refusals));

    // The batcher, made on first use; refused once disposed.
    private EventBatcher Batcher()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        var batcher = _batcher.Value;
        if (Volatile.Read(ref _disposed))
        {
            batcher.Dispose(); // Dispose ran while it was made, and may have found none to stop
            throw new ObjectDisposedException(nameof(ProfileIngestion));
        }

        return batcher;
    }

    /// <summary>
    /// Stops taking events to record together and records those waiting (see <see cref="EventBatcher.Dispose"/>: when the
    /// change log closed first, they are refused, not applied).
    /// </summary>
    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        if (_batcher.IsValueCreated)
        {
            _batcher.Value.Dispose();
        }
    }

    /// <summary>Records behavioural events.</summary>
    public EventRecorder Events { get; }

    /// <summary>Writes declared and observed traits.</summary>
    public TraitWriter Traits { get; }

    /// <summary>Stitches anonymous ids to users.</summary>
    public IdentityStitcher Identity { get; }

    /// <summary>Records consent grants and withdrawals.</summary>
    public ConsentRecorder Consents { get; }

    /// <summary>Erases users.</summary>
    public ProfileEraser Eraser { get; }

    /// <summary>Removes events past their retention.</summary>
    public RetentionSweeper Sweeper { get; }

    /// <summary>Refreshes the RFM model and stale memberships.</summary>
    public ProfileRefresher Refresher { get; }

    /// <summary>Restores the store from durable storage at start-up.</summary>
    public ChangeReplayer Replayer { get; }

    /// <summary>What unknown consent means.</summary>
    public ConsentPolicy Consent => _writer.Consent;

    /// <summary>How long events are kept.</summary>
    public RetentionPolicy Retention => _writer.Retention;

    /// <summary>Most events one profile holds; an event beyond it is refused (RESOURCE_EXHAUSTED) until retention or erasure makes room.</summary>
    public int EventLimit
    {
        get => Events.EventLimit;
        init => Events.EventLimit = value;
    }

    /// <summary>What a snapshot carries besides profiles: the recent RFM models (writes logged after it may name them) and the highest version handed out.</summary>
    public SnapshotState Capture()
    {
        lock (_writer.Rfm.LogGate) // a model logged but not yet published is waited for (its record is in what the snapshot replaces)
        {
            return new([.. _writer.Rfm.Recent.Where(m => m.Version > 0).Select(RfmModelChange.From)], _writer.Store.Version);
        }
    }

    /// <inheritdoc cref="EventRecorder.Track"/>
    public TrackResult Track(BehaviourEvent e, string prefix = "event") => Events.Track(e, prefix);

    /// <inheritdoc cref="EventRecorder.TrackMany"/>
    public IEnumerable<EventResult> TrackMany(IReadOnlyList<BehaviourEvent> events) => Events.TrackMany(events);

    /// <summary>True when writes go to a change log that keeps them: a batch's events then share one commit (<see cref="TrackAll"/>).</summary>
    public bool BatchesWrites => _writer.Log.KeepsRecords;

    /// <inheritdoc cref="EventRecorder.TrackAll"/>
    public EventResult[] TrackAll(IReadOnlyList<EventRecorder.BatchItem> items, Exception?[]? refusals = null) => Events.TrackAll(items, refusals);

    /// <summary>Starts recording one client's stream of events (<see cref="EventStream"/>).</summary>
    public EventStream OpenStream() => new(Events, BatchesWrites);

    /// <inheritdoc cref="EventRecorder.TrackOne"/>
    public EventResult TrackOne(int index, BehaviourEvent e, string prefix = "event") => Events.TrackOne(index, e, prefix);

    /// <inheritdoc cref="TraitWriter.SetTraits"/>
    public SetTraitsResult SetTraits(string userId, IReadOnlyDictionary<string, object?> traits, string source, AttributeLayer layer, DateTimeOffset? at) =>
        Traits.SetTraits(userId, traits, source, layer, at);

    /// <inheritdoc cref="IdentityStitcher.Identify"/>
    public IdentifyResult Identify(string anonymousId, string userId) => Identity.Identify(anonymousId, userId);

    /// <inheritdoc cref="ConsentRecorder.RecordConsent"/>
    public ConsentResult RecordConsent(string key, ConsentPurpose purpose, bool granted, string source, DateTimeOffset? at) =>
        Consents.RecordConsent(key, purpose, granted, source, at);

    /// <inheritdoc cref="ProfileEraser.Forget"/>
    public ForgetResult Forget(string userId) => Eraser.Forget(userId);

    /// <inheritdoc cref="RetentionSweeper.ApplyRetention"/>
    public RetentionResult ApplyRetention(CancellationToken cancellation = default) => Sweeper.ApplyRetention(cancellation);

    /// <inheritdoc cref="ChangeReplayer.Replay"/>
    public void Replay(ChangeRecord record) => Replayer.Replay(record);

    /// <inheritdoc cref="ChangeReplayer.Restore"/>
    public StoreRestore Restore(IStoreRecovery durable)
    {
        var restored = Replayer.Restore(durable);
        CompactionOwedAtRestore = restored.CompactionOwed;
        return restored;
    }

    /// <summary>
    /// True when the last <see cref="Restore"/> found events removed by retention that the older files may still hold:
    /// removed by its own sweep (they expired while the service was down), or by a sweep before the restart whose
    /// compaction never happened. Durable storage is owed a compaction.
    /// </summary>
    public bool CompactionOwedAtRestore { get; private set; }

    /// <inheritdoc cref="ProfileRefresher.RecomputeRfm"/>
    public RfmModel RecomputeRfm() => Refresher.RecomputeRfm();

    /// <inheritdoc cref="ProfileRefresher.RefreshMemberships"/>
    public int RefreshMemberships(CancellationToken cancellation = default) => Refresher.RefreshMemberships(cancellation);

    /// <inheritdoc cref="ProfileRefresher.EvaluateNewMemberships"/>
    public int EvaluateNewMemberships(CancellationToken cancellation = default) => Refresher.EvaluateNewMemberships(cancellation);

    /// <summary>Returns a profile or throws <see cref="NotFoundException"/>.</summary>
    public Profile Get(string userId)
    {
        var v = new ViolationList();
        v.RequiredId("user_id", userId);
        v.ThrowIfAny();
        return _writer.Store.Get(userId) ?? throw new NotFoundException("no profile for this user_id (never written, or erased)");
    }
}
