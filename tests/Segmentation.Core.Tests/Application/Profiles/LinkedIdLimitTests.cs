using Segmentation.Core.Application.Changes;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Application.Privacy;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Profiles;

/// <summary>How many anonymous or session ids one user may have stitched to it, and what a stitch past that does.</summary>
public sealed class LinkedIdLimitTests
{
    [Fact]
    public void A_stitch_past_the_limit_is_refused_and_changes_and_logs_nothing_while_a_replay_restores_what_was_acknowledged()
    {
        var log = new ListChangeLog();
        using var w = new TestWorld(changeLog: log);
        for (var i = 0; i < InputLimits.MaxLinkedIdsPerProfile; i++)
        {
            w.Ingestion.Identify($"anon-{i}", "user-1");
        }

        w.Ingestion.Track(TestEvents.Make("late", "", EventTypes.PageView, w.Clock.Now, anonymous: "anon-late"));
        var logged = log.Records.Count;
        var entries = w.Store.Count;

        var refused = Assert.Throws<LimitExceededException>(() => w.Ingestion.Identify("anon-late", "user-1"));
        Assert.Contains("1,000", refused.Message, StringComparison.Ordinal);
        Assert.Throws<LimitExceededException>(() => w.Ingestion.Identify("anon-never-seen", "user-1"));

        Assert.Equal(logged, log.Records.Count); // nothing was written ahead for the refused stitches
        Assert.Equal(InputLimits.MaxLinkedIdsPerProfile, w.Store.LinkedIds("user-1").Count);
        Assert.Equal("anon-late", w.Store.Resolve("anon-late")); // its history stays its own
        Assert.Equal(1, w.Store.Get("anon-late")!.TotalEvents);
        Assert.Equal("anon-never-seen", w.Store.Resolve("anon-never-seen"));
        Assert.Null(w.Store.Get("anon-never-seen"));
        Assert.DoesNotContain("anon-never-seen", w.Store.Keys()); // refused before it got an entry
        Assert.Equal(entries, w.Store.Count);

        // A log holding more links than the limit (written before it, or acknowledged by a larger one) is replayed as it is.
        var template = log.Records.OfType<MergeChange>().Last();
        var past = template with { AnonymousId = "anon-late", Version = log.Records.Max(r => r.Version) + 1 };
        using var restored = new TestWorld();
        foreach (var record in log.Records.Append(past))
        {
            restored.Ingestion.Replay(record);
        }

        Assert.Equal(InputLimits.MaxLinkedIdsPerProfile + 1, restored.Store.LinkedIds("user-1").Count);
        Assert.Equal("user-1", restored.Store.Resolve("anon-late"));
        Assert.Contains(restored.Store.Get("user-1")!.Events, e => e.EventId == "late");
    }

    [Fact]
    public void The_ids_already_stitched_to_the_source_count_towards_the_limit()
    {
        var store = new InMemoryProfileStore();
        static Profile Merge(Profile into, Profile? from, long version) => into with { Version = version };
        store.Merge("a1", "user", Merge, maxLinkedIds: 3);
        store.Merge("b1", "other", Merge, maxLinkedIds: 3);
        store.Merge("b2", "other", Merge, maxLinkedIds: 3);

        // "other" brings itself and its two: 1 + 3 > 3.
        var calls = 0;
        Assert.Throws<LimitExceededException>(() => store.Merge("other", "user", (into, from, v) => { calls++; return Merge(into, from, v); }, maxLinkedIds: 3));
        Assert.Equal(0, calls);
        Assert.Equal(["a1"], store.LinkedIds("user"));
        Assert.Equal(["b1", "b2"], store.LinkedIds("other"));
        Assert.Equal("other", store.Resolve("b1"));

        // Within the limit it merges, and all of them resolve to the target.
        store.Merge("other", "user", Merge, maxLinkedIds: 4);
        Assert.Equal(["a1", "b1", "b2", "other"], store.LinkedIds("user"));
        Assert.Equal("user", store.Resolve("b2"));
    }
}
