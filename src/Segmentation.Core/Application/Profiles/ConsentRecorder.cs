using Segmentation.Core.Application.Changes;
using Segmentation.Core.Events;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Profiles;

/// <summary>
/// Records consent grants and withdrawals in the profile's audit trail, with their source and time.
/// Logged write-ahead like every other write; the profile's version changes, so no decision cached under
/// the previous consent is served. Memberships are re-evaluated at once: without personalization consent
/// only the request context counts, and the change is not emitted to watchers.
/// </summary>
public sealed class ConsentRecorder
{
    private readonly ProfileWriter _writer;

    internal ConsentRecorder(ProfileWriter writer) => _writer = writer;

    /// <summary>What unknown consent means.</summary>
    public ConsentPolicy Policy => _writer.Consent;

    /// <summary>Records a grant or withdrawal for <paramref name="purpose"/> at <paramref name="at"/> (null: now).</summary>
    public ConsentResult RecordConsent(string key, ConsentPurpose purpose, bool granted, string source, DateTimeOffset? at)
    {
        var v = new ViolationList();
        v.RequiredId("user_id", key);
        v.Required("source", source, InputLimits.MaxSourceLength);
        if (!Enum.IsDefined(purpose))
        {
            v.Add("purpose", "must be one of personalization, analytics, email_marketing, advertising");
        }

        // An undated record takes the time it was received. A dated one a little in the future (clock skew,
        // within the accepted 5 minutes) is taken as now: a grant "from the future" must never outrank a
        // withdrawal received after it. Records are ordered by time; of two with the same time, the one
        // recorded last counts.
        var now = _writer.Time.GetUtcNow();
        var when = at ?? now;
        if (when > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", "must not be in the future");
        }
        else if (when > now)
        {
            when = now;
        }

        v.ThrowIfAny();
        var update = Apply(key, new ConsentRecord(purpose, granted, source, when), _writer.Live(now));
        return new ConsentResult(update.After, !update.Changed);
    }

    // True when the record withdraws a purpose that was granted before it and is not after it.
    private bool Withdraws(Profile before, Profile after, ConsentRecord record) =>
        !record.Granted && _writer.Consent.Status(before, record.Purpose).Granted && !_writer.Consent.Status(after, record.Purpose).Granted;

    /// <summary>Under the user's lock: skips an entry already in the trail, logs (write-ahead), then applies and derives.</summary>
    internal ProfileUpdate Apply(string key, ConsentRecord record, WriteStamp stamp) =>
        _writer.Store.Update(
            key,
            (p, version) =>
            {
                var next = stamp.AlreadyIn(p) ? p : p.WithConsent(record, version);
                if (ReferenceEquals(next, p))
                {
                    return p;
                }

                // Live writes only: a replay restores what was accepted, whatever the limit is now. Past the limit a
                // withdrawal that takes effect is still recorded (withdrawing must stay possible); nothing else is, so a
                // purpose is withdrawn at most once more and the trail stays bounded.
                if (stamp.Log && p.ConsentTrail.Count >= InputLimits.MaxConsentRecordsPerProfile && !Withdraws(p, next, record))
                {
                    throw new LimitExceededException($"this user's consent trail holds {p.ConsentTrail.Count:N0} records, the most one profile keeps ({InputLimits.MaxConsentRecordsPerProfile:N0}); it is never trimmed, so nothing but the withdrawal of a granted purpose can be recorded until the user is erased");
                }

                if (stamp.Log)
                {
                    _writer.Log.Append(stamp.Stamp(new ConsentChange(key, record), version));
                }

                return _writer.Derive(next, stamp, $"consent:{ConsentPolicy.NameOf(record.Purpose)}:{(record.Granted ? "granted" : "withdrawn")}");
            },
            stamp.Version);
}
