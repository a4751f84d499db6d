using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Decisions;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Application.Decisions;

/// <summary>
/// The population prior of send-time optimisation (<see cref="SendTimePrior"/>), computed from every profile's email
/// engagement at most once an hour (a pass over the store; a batch send never waits for more than the first one).
/// </summary>
public sealed class SendTimePriorProvider(IProfileStore profiles, CatalogProvider catalogs, TimeProvider time, ConsentPolicy consent)
{
    /// <summary>How long a computed prior is used.</summary>
    public static readonly TimeSpan Refresh = TimeSpan.FromHours(1);

    private readonly Lock _gate = new();

    // Published whole, as one reference: a struct of the prior and its time, read without the lock while another
    // thread writes it, could be seen with its time and without its prior.
    private Computed? _current;

    private sealed record Computed(SendTimePrior Prior, long At);

    /// <summary>The prior, recomputed when older than <see cref="Refresh"/>.</summary>
    public SendTimePrior Current
    {
        get
        {
            var now = time.GetUtcNow().UtcTicks;
            if (Volatile.Read(ref _current) is { } c && now - c.At < Refresh.Ticks)
            {
                return c.Prior;
            }

            lock (_gate)
            {
                if (_current is { } again && now - again.At < Refresh.Ticks)
                {
                    return again.Prior;
                }

                var prior = Compute(now);
                Volatile.Write(ref _current, new Computed(prior, now));
                return prior;
            }
        }
    }

    private SendTimePrior Compute(long now)
    {
        var policies = catalogs.Current.ContactPolicies;
        var sums = new double[24];
        var users = 0;
        foreach (var profile in profiles.Snapshot())
        {
            if (consent.Gate(profile) != ConsentGate.FullProfile)
            {
                continue; // behaviour personalization may not use is not used for anyone's timing either
            }

            if (profile.Series(Events.EventTypes.EmailOpen).Count + profile.Series(Events.EventTypes.EmailClick).Count > 0
                && SendTimeEstimator.AddShares(profile, ContactEvaluation.ZoneOf(policies, profile, RequestContext.Empty), now, sums))
            {
                users++;
            }
        }

        return new SendTimePrior(sums, users);
    }
}
