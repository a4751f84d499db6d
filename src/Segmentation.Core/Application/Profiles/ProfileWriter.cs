using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// How a write is applied: live (now, the current RFM model, the store's next version, logged write-ahead)
/// or replayed from the change log (the record's time, model and version; not logged again).
/// </summary>
internal readonly record struct WriteStamp(DateTimeOffset Now, RfmModel Model, long Version, bool Log)
{
    /// <summary>The logged record with this write's version, time and model.</summary>
    public T Stamp<T>(T record, long version)
        where T : ChangeRecord => record with { Version = version, AppliedTicks = Now.UtcTicks, RfmVersion = Model.Version };

    /// <summary>The logged record of an event with this write's version, time and model (built once: the write path's record).</summary>
    public EventChange Event(string key, StoredEvent e, long version) =>
        new(key, e) { Version = version, AppliedTicks = Now.UtcTicks, RfmVersion = Model.Version };

    /// <summary>
    /// True when a replayed record is already part of the profile: every write to a profile takes a newer
    /// version under its lock, so a profile at the record's version or later holds its change.
    /// </summary>
    public bool AlreadyIn(Profile p) => Version > 0 && p.Version >= Version;
}

/// <summary>
/// What every profile write shares, whichever command it serves: the store, the change log written
/// ahead of memory, the clock, and the derivation that runs before a write returns (derived traits in
/// the derived layer, the winning segment with its cause, and the membership index, gated by consent).
/// </summary>
internal sealed class ProfileWriter(
    IProfileStore store,
    CatalogProvider catalogs,
    RfmModelProvider rfm,
    MembershipIndex memberships,
    TimeProvider time,
    IChangeLog log,
    ConsentPolicy consent,
    RetentionPolicy retention)
{
    /// <summary>Source recorded on derived attributes.</summary>
    public const string DerivedSource = "segmentation-service";

    public IProfileStore Store => store;

    public CatalogProvider Catalogs => catalogs;

    public RfmModelProvider Rfm => rfm;

    public MembershipIndex Memberships => memberships;

    public TimeProvider Time => time;

    public IChangeLog Log => log;

    public ConsentPolicy Consent => consent;

    public RetentionPolicy Retention => retention;

    public WriteStamp Live(DateTimeOffset now) => new(now, rfm.Current, 0, Log: true);

    public WriteStamp Replayed(ChangeRecord record) => new(
        record.AppliedTicks > 0 ? new DateTimeOffset(record.AppliedTicks, TimeSpan.Zero) : time.GetUtcNow(),
        (record.RfmVersion > 0 ? rfm.Find(record.RfmVersion) : null) ?? rfm.Current,
        record.Version,
        Log: false);

    /// <summary>
    /// Derived data on write: derived traits in the derived layer, and the winning segment. The cause of a membership
    /// or segment change is <paramref name="cause"/> followed by <paramref name="causeDetail"/>, joined only when
    /// something changed (most writes change nothing).
    /// </summary>
    /// <param name="profile">The profile as written.</param>
    /// <param name="stamp">The write's time and RFM model.</param>
    /// <param name="cause">The cause of a change.</param>
    /// <param name="causeDetail">Joined to <paramref name="cause"/> when something changed.</param>
    /// <param name="later">
    /// Where the membership update goes, to be applied once the write is published (<see cref="PendingMemberships.Apply"/>);
    /// null applies it here.
    /// </param>
    public Profile Derive(Profile profile, WriteStamp stamp, string cause, string? causeDetail = null, PendingMemberships? later = null)
    {
        var catalog = catalogs.Current;
        var model = stamp.Model;
        var now = stamp.Now;
        var context = EvalContext.Rent(profile, RequestContext.Empty, now.UtcTicks, model, catalog.Features); // pooled: a write allocates no context of its own
        var lead = DerivedScores.LeadScore(context, catalog.Scoring.Lead);
        var (stage, engagement, intent) = (DerivedScores.LifecycleStage(context), DerivedScores.Engagement(context), DerivedScores.Intent(context));
        context.Return();
        SetDerived(ref profile, "lifecycle_stage", stage, now);
        SetDerived(ref profile, "engagement_status", engagement, now);
        SetDerived(ref profile, "intent_level", intent, now);
        SetDerived(ref profile, "lead_score", ProfileAttribute.Number(lead), now);
        SetDerived(ref profile, "lead_grade", DerivedScores.LeadGrade(DerivedScores.GradedLeadScore(profile, lead), catalog.Scoring.Lead), now);
        SetDerived(ref profile, "rfm_segment", DerivedScores.RfmSegment(model.Recency(profile), model.Frequency(profile), model.Monetary(profile)), now);

        // Membership honours consent like Decide: without personalization consent only the (empty) request
        // context is evaluated, and nothing about the user is emitted to watchers.
        var full = consent.Gate(profile) == ConsentGate.FullProfile;
        var matched = Matched(catalog);
        var evaluation = Decider.EvaluateWinner(catalog, full ? profile : null, RequestContext.Empty, now, model, matched);
        if (later is null)
        {
            memberships.Set(profile.UserId, matched, evaluation.ValidUntilTicks, catalog, now, cause, causeDetail, model.Version, publish: full);
        }
        else
        {
            later.Add(new PendingMemberships.Write(profile.UserId, [.. matched], evaluation.ValidUntilTicks, catalog, now, cause, causeDetail, model.Version, full));
        }

        return evaluation.Winner.Id == profile.CurrentSegment ? profile : profile.WithSegment(evaluation.Winner.Id, now, cause + causeDetail);
    }

    /// <summary>Re-evaluates one user's memberships under the user's lock without changing the profile.</summary>
    public void EvaluateMembership(string user, DateTimeOffset now, string? cause) =>
        store.Update(user, (p, _) =>
        {
            if (p.UserId != user)
            {
                // An id stitched to another profile is no member of anything: its user is counted, once. Its past
                // entries in the change stream stay as they were sent (it was merged, not erased).
                memberships.Drop(user);
            }
            else if (p.TotalEvents + p.Attributes.Count > 0)
            {
                var catalog = catalogs.Current;
                var model = rfm.Current;
                var why = cause ?? (memberships.CatalogVersionOf(user) != catalog.Version ? $"catalog:v{catalog.Version}" : "time");
                var full = consent.Gate(p) == ConsentGate.FullProfile;
                var matched = Matched(catalog);
                var evaluation = Decider.EvaluateWinner(catalog, full ? p : null, RequestContext.Empty, now, model, matched);
                memberships.Set(user, matched, evaluation.ValidUntilTicks, catalog, now, why, null, model.Version, publish: full);
            }
            else
            {
                memberships.Forget(user);
            }

            return p;
        });

    [ThreadStatic]
    private static bool[]? t_matched;

    // This thread's flags, one per segment of the catalog: a write's evaluation allocates none (read before the next write on the thread).
    private static bool[] Matched(CatalogSnapshot catalog)
    {
        var n = catalog.Segments.Count;
        return t_matched is { } m && m.Length == n ? m : t_matched = new bool[n];
    }

    /// <summary>Marks the RFM model stale when a write changed a profile's purchases, or the customers (<paramref name="populationChanged"/>).</summary>
    public void PurchasesMayHaveChanged(ProfileUpdate update, bool populationChanged = false)
    {
        if (populationChanged || (update.Changed && ((update.Before?.Orders ?? 0) != update.After.Orders || (update.Before?.Revenue ?? 0) != update.After.Revenue)))
        {
            rfm.MarkDirty();
        }
    }

    // Stores a derived value in the derived layer when it changed; a declared or observed value of the same
    // name is kept (the more reliable layer wins). A value that can no longer be derived (no intent for a week, no
    // purchase left after retention) is removed: the stored copy would show what the profile no longer says.
    private static void SetDerived(ref Profile profile, string name, object? value, DateTimeOffset now)
    {
        if (value is null)
        {
            profile = profile.WithoutAttribute(name, AttributeLayer.Derived, DerivedSource);
        }
        else if (!Equals(profile.Trait(name), value))
        {
            profile.TrySetAttribute(new ProfileAttribute(name, value, AttributeLayer.Derived, DerivedSource, now), profile.Version, out profile);
        }
    }
}

/// <summary>
/// Membership updates of writes prepared but not yet published (a batch of writes waiting for its change-log commit):
/// applied in order once the writes are, under their users' locks, so the index never shows a change that was refused.
/// </summary>
public sealed class PendingMemberships
{
    private readonly List<Write> _writes = [];

    /// <summary>One write's membership update, as <see cref="MembershipIndex.Set(string, ReadOnlySpan{bool}, long, CatalogSnapshot, DateTimeOffset, string, string?, long, bool)"/> takes it.</summary>
    public readonly record struct Write(string UserId, bool[] Matched, long ValidUntilTicks, CatalogSnapshot Catalog, DateTimeOffset At, string Cause, string? CauseDetail, long PopulationVersion, bool Publish);

    /// <summary>Updates waiting.</summary>
    public int Count => _writes.Count;

    /// <summary>Adds an update to apply later.</summary>
    public void Add(Write write) => _writes.Add(write);

    /// <summary>Applies the updates in the order they were added, then forgets them.</summary>
    public void Apply(MembershipIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        foreach (var w in _writes)
        {
            index.Set(w.UserId, w.Matched, w.ValidUntilTicks, w.Catalog, w.At, w.Cause, w.CauseDetail, w.PopulationVersion, w.Publish);
        }

        _writes.Clear();
    }

    /// <summary>Forgets the updates (their writes were refused).</summary>
    public void Clear() => _writes.Clear();

    /// <summary>Forgets the updates added since there were <paramref name="count"/> (a write that failed after adding its own).</summary>
    public void RemoveFrom(int count) => _writes.RemoveRange(count, _writes.Count - count);
}
