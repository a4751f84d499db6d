using System.Diagnostics.Metrics;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Membership;

/// <summary>What watchers are told around a withdrawal and a grant of personalization consent, and what the membership-change counter counts.</summary>
public sealed class ConsentAnnouncementTests
{
    private static TestWorld World(string segment = "high", ConsentPolicy? consent = null) =>
        new(TestCatalogs.Source(TestCatalogs.Segment(segment, "value", "{ field: traits.score, gte: 50 }")), consent: consent);

    [Fact]
    public void A_segment_left_while_consent_was_withdrawn_is_announced_as_left_when_it_is_given_back()
    {
        // Regression (review): the withdrawal is silent (watchers keep the user's segments), and the grant announced only
        // the segments the user is in: one left meanwhile was never announced as left, and consumers held it for good.
        using var w = World();
        ChangeStreamTests.SetScore(w, "u1", 80);
        var start = w.Memberships.Feed.Last;
        w.Ingestion.RecordConsent("u1", ConsentPurpose.Personalization, granted: false, "preference-center", null);
        ChangeStreamTests.SetScore(w, "u1", 10);
        Assert.Empty(w.FeedAfter(start)); // silent while withdrawn

        w.Ingestion.RecordConsent("u1", ConsentPurpose.Personalization, granted: true, "preference-center", null);

        var left = Assert.Single(w.FeedAfter(start));
        Assert.Equal(("u1", "high", ChangeKind.Left, "consent:personalization:granted"), (left.UserId, left.SegmentId, left.Kind, left.Cause));
    }

    [Fact]
    public void A_segment_still_held_at_the_grant_is_announced_again_and_not_left()
    {
        using var w = World();
        ChangeStreamTests.SetScore(w, "u1", 80);
        var start = w.Memberships.Feed.Last;
        w.Ingestion.RecordConsent("u1", ConsentPurpose.Personalization, granted: false, "preference-center", null);
        ChangeStreamTests.SetScore(w, "u1", 10);
        ChangeStreamTests.SetScore(w, "u1", 90); // left and entered again while withdrawn

        w.Ingestion.RecordConsent("u1", ConsentPurpose.Personalization, granted: true, "preference-center", null);

        var entry = Assert.Single(w.FeedAfter(start));
        Assert.Equal((ChangeKind.Entered, "consent:personalization:granted:again"), (entry.Kind, entry.Cause));
    }

    [Fact]
    public void An_anonymous_id_merged_while_its_consent_is_withdrawn_is_announced_as_leaving_what_it_was_announced_in()
    {
        // Regression (review): the withdrawal is silent, so watchers keep the anonymous id's segments; the merge left them
        // silently too (the id was hidden) and then forgot what had been announced: watchers held the id in them for good.
        using var w = World();
        ChangeStreamTests.SetScore(w, "anon-1", 80);
        var start = w.Memberships.Feed.Last;
        w.Ingestion.RecordConsent("anon-1", ConsentPurpose.Personalization, granted: false, "preference-center", null);

        w.Ingestion.Identify("anon-1", "member-1");

        var left = Assert.Single(w.FeedAfter(start), e => e.UserId == "anon-1");
        Assert.Equal(("high", ChangeKind.Left, "identify:member-1"), (left.SegmentId, left.Kind, left.Cause));
    }

    [Fact]
    public void An_anonymous_id_merged_while_withdrawn_is_not_announced_leaving_what_watchers_never_saw()
    {
        using var w = World();
        w.Ingestion.RecordConsent("anon-1", ConsentPurpose.Personalization, granted: false, "preference-center", null);
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "anon-1", 80); // entered while withdrawn: never announced

        w.Ingestion.Identify("anon-1", "member-1");

        Assert.DoesNotContain(w.FeedAfter(start), e => e.UserId == "anon-1");
    }

    [Fact]
    public void The_membership_change_counter_counts_what_watchers_are_told()
    {
        // Regression (review): the counter, documented as what WatchSegmentChanges streams, counted every move of the
        // index: users without personalization consent, and every member a restart's rebuild evaluated, as entries.
        var segment = "counted_" + Guid.NewGuid().ToString("N")[..8]; // the meter is process-wide: this test's own series
        var counted = new List<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "segmentation.membership.changes")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            var t = tags.ToArray();
            if (t.Any(x => x.Key == "segment" && Equals(x.Value, segment)))
            {
                lock (counted)
                {
                    counted.Add((string)t.Single(x => x.Key == "direction").Value!);
                }
            }
        });
        listener.Start();
        using var w = World(segment);
        ChangeStreamTests.SetScore(w, "u1", 80);
        Assert.Equal(["entered"], counted);

        w.Ingestion.RecordConsent("u1", ConsentPurpose.Personalization, granted: false, "preference-center", null);
        Assert.Equal(["entered"], counted); // the index no longer counts the user a member; watchers are told nothing

        w.Ingestion.RecordConsent("u1", ConsentPurpose.Personalization, granted: true, "preference-center", null);
        ChangeStreamTests.SetScore(w, "u1", 10);

        Assert.Equal(["entered", "entered", "left"], counted); // announced again at the grant, then left
    }
}
