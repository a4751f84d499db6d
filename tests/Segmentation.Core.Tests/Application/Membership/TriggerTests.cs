using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.ChangeStream;
using Segmentation.Core.Application.Measurement;
using Segmentation.Core.Catalog;
using Segmentation.Core.Events;
using Segmentation.Core.Tests.Support;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Application.Membership;

/// <summary>Scheduled triggers on segment entry: validated in the catalog, fired on time through the change stream with a fake clock, cancelled when their condition no longer holds, and kept across a restart.</summary>
public sealed class TriggerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-triggers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const string Triggers = """
        triggers:
          - id: reminder
            segment: high
            delay: 3d
            unless: [purchase]
            description: Remind three days after entering, if no purchase since
          - id: anyway
            segment: high
            delay: 1d
            still_member: false
        """;

    private static InMemoryCatalogSource Catalog(string triggers = Triggers) => new(
    [
        new CatalogFile("catalog.yaml", TestCatalogs.Schema),
        new CatalogFile("fallback.yaml", TestCatalogs.Fallback),
        new CatalogFile("segments.yaml", "segments:\n" + TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }")),
        new CatalogFile("triggers.yaml", triggers),
    ]);

    private static TestWorld World(Core.Profiles.InMemoryProfileStore? store = null, IChangeFeedJournal? journal = null, DateTimeOffset? now = null) =>
        new(Catalog(), store: store, journal: journal, now: now);

    private static List<FeedEntry> Fired(TestWorld w, long after) => [.. w.FeedAfter(after).Where(e => e.Kind == ChangeKind.Triggered)];

    // u1 enters "high" and the scheduler reads the entry: the scheduler, the stream's last offset before, and the entry.
    private static (TriggerScheduler Scheduler, long Start, FeedEntry Entered) EnterHigh(TestWorld w)
    {
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        var entered = Assert.Single(w.FeedAfter(start), e => e.Kind == ChangeKind.Entered);
        scheduler.Tick(w.Clock.Now);
        return (scheduler, start, entered);
    }

    [Fact]
    public void A_trigger_fires_once_when_due_and_not_a_minute_before_naming_the_entry_it_came_from()
    {
        using var w = World();
        var (scheduler, start, entered) = EnterHigh(w);

        w.Clock.Now = entered.At.AddDays(3).AddMinutes(-1);
        scheduler.Tick(w.Clock.Now);
        Assert.Equal(["anyway"], Fired(w, start).Select(e => e.Trigger));

        w.Clock.Now = entered.At.AddDays(3);
        scheduler.Tick(w.Clock.Now);
        scheduler.Tick(w.Clock.Now.AddDays(10));

        var reminder = Assert.Single(Fired(w, start), e => e.Trigger == "reminder");
        Assert.Equal(("u1", "high", $"entered:{entered.Offset}", entered.At.AddDays(3)), (reminder.UserId, reminder.SegmentId, reminder.Cause, reminder.At));
        Assert.Equal(0, scheduler.Pending);
    }

    [Fact]
    public void Giving_personalization_consent_back_neither_postpones_a_pending_trigger_nor_fires_one_again()
    {
        // Regression: the grant announces every segment the user is in as entered (nothing was announced while consent
        // was withdrawn); each such entry armed the segment's triggers again, as a new entry does: a pending reminder
        // moved two days later, and a trigger that had fired fired again.
        using var w = World();
        var (scheduler, start, entered) = EnterHigh(w);
        w.Clock.Now = entered.At.AddDays(2);
        scheduler.Tick(w.Clock.Now); // "anyway" (a day after the entry) fires
        Assert.Equal(["anyway"], Fired(w, start).Select(e => e.Trigger));

        w.Ingestion.RecordConsent("u1", Core.Profiles.ConsentPurpose.Personalization, granted: false, "preference-center", null);
        w.Ingestion.RecordConsent("u1", Core.Profiles.ConsentPurpose.Personalization, granted: true, "preference-center", null);
        Assert.Contains(w.FeedAfter(entered.Offset), e => e.Kind == ChangeKind.Entered && e.SegmentId == "high" && e.Cause == "consent:personalization:granted:again" && e.Again);
        scheduler.Tick(w.Clock.Now);

        w.Clock.Now = entered.At.AddDays(3);
        scheduler.Tick(w.Clock.Now);
        scheduler.Tick(w.Clock.Now.AddDays(10));
        Assert.Equal([("anyway", $"entered:{entered.Offset}"), ("reminder", $"entered:{entered.Offset}")], Fired(w, start).Select(e => (e.Trigger!, e.Cause)).Order());
        Assert.Equal(entered.At.AddDays(3), Assert.Single(Fired(w, start), e => e.Trigger == "reminder").At);
    }

    [Fact]
    public void A_merge_that_gives_personalization_consent_back_neither_fires_a_trigger_again_nor_postpones_one()
    {
        // Regression (own review of a change reverted in the same stop): the re-announcement a merge makes when the
        // anonymous id's later grant gives the user their consent back has the merge's cause with the suffix
        // ("identify:...:again"), not the consent grant's; telling re-announcements by the consent cause alone armed the
        // segment's triggers again there: one that had fired fired twice, and a pending one moved to the merge.
        using var w = World();
        var (scheduler, start, entered) = EnterHigh(w);
        w.Clock.Now = entered.At.AddDays(2);
        scheduler.Tick(w.Clock.Now); // "anyway" (a day after the entry) fires

        w.Ingestion.RecordConsent("u1", Core.Profiles.ConsentPurpose.Personalization, granted: false, "preference-center", null);
        w.Clock.Now = w.Clock.Now.AddMinutes(1);
        w.Ingestion.RecordConsent("a1", Core.Profiles.ConsentPurpose.Personalization, granted: true, "banner", null);
        w.Ingestion.Identify("a1", "u1");
        Assert.Contains(w.FeedAfter(entered.Offset), e => e.Kind == ChangeKind.Entered && e.UserId == "u1" && e.SegmentId == "high" && e.Cause.EndsWith(MembershipIndex.AgainSuffix, StringComparison.Ordinal));
        scheduler.Tick(w.Clock.Now);

        w.Clock.Now = entered.At.AddDays(3);
        scheduler.Tick(w.Clock.Now);
        scheduler.Tick(w.Clock.Now.AddDays(10));
        Assert.Equal([("anyway", $"entered:{entered.Offset}"), ("reminder", $"entered:{entered.Offset}")], Fired(w, start).Select(e => (e.Trigger!, e.Cause)).Order());
        Assert.Equal(entered.At.AddDays(3), Assert.Single(Fired(w, start), e => e.Trigger == "reminder").At);
    }

    [Fact]
    public void A_callers_text_ending_in_again_arms_triggers_as_any_entry_does()
    {
        // Regression: an entry announced again at a consent grant was told by its cause's text ending in ":again", so a
        // trait source (or event id, or anonymous id) ending so armed no trigger: anyone allowed to ingest could
        // suppress a user's triggers. The entry now says so itself.
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 80.0 }, "crm:again", Core.Profiles.AttributeLayer.ZeroParty, null);
        var entered = Assert.Single(w.FeedAfter(start), e => e.Kind == ChangeKind.Entered);
        Assert.Equal(("traits:crm:again", false), (entered.Cause, entered.Again));
        scheduler.Tick(w.Clock.Now);

        scheduler.Tick(w.Clock.Now.AddDays(4));
        Assert.Equal(["anyway", "reminder"], Fired(w, start).Select(e => e.Trigger!).Order());
    }

    [Fact]
    public void A_first_opt_in_arms_the_triggers_of_the_segments_it_announces()
    {
        // Regression (of the fix above): every entry a grant announced armed nothing, so with explicit consent required
        // a user's segments at their first opt-in (or entered while consent was withdrawn) never armed a trigger.
        using var w = new TestWorld(Catalog(), consent: new Core.Privacy.ConsentPolicy(RequireExplicitConsent: true));
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        Assert.Empty(w.FeedAfter(start)); // nothing announced without consent
        w.Ingestion.RecordConsent("u1", Core.Profiles.ConsentPurpose.Personalization, granted: true, "banner", null);
        var entered = Assert.Single(w.FeedAfter(start), e => e.Kind == ChangeKind.Entered);
        Assert.Equal("consent:personalization:granted", entered.Cause);
        scheduler.Tick(w.Clock.Now);

        scheduler.Tick(w.Clock.Now.AddDays(4));
        Assert.Equal(["anyway", "reminder"], Fired(w, start).Select(e => e.Trigger!).Order());
    }

    [Fact]
    public void A_trigger_due_before_a_new_catalog_reached_the_users_memberships_waits_for_them()
    {
        // Regression: whether the user was still in the segment was read from memberships evaluated with the old
        // catalog: a publish narrowing the segment (score 50 → 90) did not stop the reminder of a user no longer in it,
        // when it came due before the background refresh reached them.
        using var w = World();
        var (scheduler, start, entered) = EnterHigh(w);
        var narrowed = Catalog().ReadFiles().Select(f => f.Name == "segments.yaml" ? new CatalogFile(f.Name, "segments:\n" + TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 90 }")) : f).ToList();
        w.Catalogs.Load(new InMemoryCatalogSource(narrowed));

        w.Clock.Now = entered.At.AddDays(3);
        scheduler.Tick(w.Clock.Now);
        Assert.DoesNotContain(Fired(w, start), e => e.Trigger == "reminder"); // waits for the refresh

        w.Ingestion.RefreshMemberships(); // the refresh reaches u1: left
        Assert.Contains(w.FeedAfter(start), e => e.Kind == ChangeKind.Left && e.UserId == "u1");
        scheduler.Tick(w.Clock.Now.AddSeconds(1));
        scheduler.Tick(w.Clock.Now.AddDays(1));
        Assert.DoesNotContain(Fired(w, start), e => e.Trigger == "reminder");
        Assert.Equal(0, scheduler.Pending);
    }

    [Fact]
    public void A_trigger_whose_users_memberships_are_current_fires_on_time_after_a_publish()
    {
        using var w = World();
        var (scheduler, start, entered) = EnterHigh(w);
        w.Catalogs.Load(Catalog()); // the same segments under a new version
        w.Ingestion.RefreshMemberships();

        w.Clock.Now = entered.At.AddDays(3);
        scheduler.Tick(w.Clock.Now);
        Assert.Equal(entered.At.AddDays(3), Assert.Single(Fired(w, start), e => e.Trigger == "reminder").At);
    }

    [Fact]
    public async Task Erasing_a_user_drops_their_pending_triggers_so_none_fires_for_a_new_profile_under_the_same_id_or_is_saved_again()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        scheduler.Tick(w.Clock.Now);
        Assert.Equal(2, scheduler.Pending);

        await w.Rights.ForgetAsync("u1");
        Assert.Equal(0, scheduler.Pending);
        Assert.DoesNotContain(scheduler.Capture(long.MaxValue)?.Pending ?? [], p => p.UserId == "u1");

        w.Track("u1", EventTypes.PageView); // someone new under the same id, in no segment
        scheduler.Tick(w.Clock.Now.AddDays(4));
        Assert.Empty(Fired(w, start)); // "anyway" (no membership needed) came from the erased user's entry
    }

    [Fact]
    public void A_trigger_armed_for_an_anonymous_id_does_not_fire_once_it_is_merged_into_a_user_whose_own_entry_fires_it_once()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "visitor", 80);
        scheduler.Tick(w.Clock.Now);

        w.Ingestion.Identify("visitor", "u1");
        scheduler.Tick(w.Clock.Now);
        scheduler.Tick(w.Clock.Now.AddDays(4));

        // "anyway" does not need membership: the visitor's own arming would fire it with the user's profile too.
        Assert.Equal([("u1", "anyway"), ("u1", "reminder")], Fired(w, start).Select(e => (e.UserId, e.Trigger!)).Order());
    }

    [Fact]
    public void While_memberships_are_rebuilt_after_a_restart_nothing_fires_and_nothing_due_is_dropped()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        scheduler.Tick(w.Clock.Now);

        w.Memberships.BeginRebuild(1); // "still a member" cannot be told yet
        scheduler.Tick(w.Clock.Now.AddDays(4));
        Assert.Empty(Fired(w, start));
        Assert.Equal(2, scheduler.Pending);

        w.Memberships.EndRebuild(TimeSpan.Zero);
        scheduler.Tick(w.Clock.Now.AddDays(4));
        Assert.Equal(["anyway", "reminder"], Fired(w, start).Select(e => e.Trigger).Order());
    }

    [Fact]
    public void An_unless_event_after_the_entry_cancels_it()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        scheduler.Tick(w.Clock.Now);
        w.Clock.Now = w.Clock.Now.AddDays(1);
        w.Track("u1", EventTypes.Purchase, value: 20, orderId: "o-1", quantity: 1);

        scheduler.Tick(w.Clock.Now.AddDays(5));

        Assert.Equal(["anyway"], Fired(w, start).Select(e => e.Trigger)); // the purchase cancels the reminder only
    }

    [Fact]
    public void Leaving_the_segment_cancels_it_and_entering_again_schedules_from_the_new_entry()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        var t0 = w.Clock.Now;
        ChangeStreamTests.SetScore(w, "u1", 80);
        scheduler.Tick(w.Clock.Now);
        w.Clock.Now = t0.AddDays(1);
        ChangeStreamTests.SetScore(w, "u1", 10); // left
        scheduler.Tick(w.Clock.Now); // "anyway" of the first entry fires although the user left
        w.Clock.Now = t0.AddDays(2);
        ChangeStreamTests.SetScore(w, "u1", 90); // entered again
        scheduler.Tick(w.Clock.Now);

        scheduler.Tick(t0.AddDays(4)); // 3 days after the first entry: cancelled by the leave
        Assert.DoesNotContain(Fired(w, start), e => e.Trigger == "reminder");

        scheduler.Tick(t0.AddDays(5)); // 3 days after the second entry
        var reminder = Assert.Single(Fired(w, start), e => e.Trigger == "reminder");
        var reentry = w.FeedAfter(start).Last(e => e.Kind == ChangeKind.Entered);
        Assert.Equal($"entered:{reentry.Offset}", reminder.Cause);
        Assert.Equal(2, Fired(w, start).Count(e => e.Trigger == "anyway")); // still_member false: each entry fires
    }

    [Fact]
    public async Task A_user_erased_before_it_is_due_gets_nothing()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        scheduler.Tick(w.Clock.Now);
        await w.Rights.ForgetAsync("u1");

        scheduler.Tick(w.Clock.Now.AddDays(4));

        Assert.Empty(Fired(w, start));
    }

    [Fact]
    public async Task A_user_erased_while_a_due_trigger_is_checked_is_never_named_by_it_in_the_stream()
    {
        using var w = World();
        var (scheduler, start, entered) = EnterHigh(w);
        Task? erasure = null;
        scheduler.BeforeFiring = user =>
        {
            if (user != "u1" || erasure is not null)
            {
                return;
            }

            // The erasure runs on another thread between the check and the firing. Before the fix it removed the profile and
            // blanked the stream right then, and the trigger's entry, appended after, named the erased user; now it waits
            // for the user's lock, and blanks the entry once the check is over.
            erasure = Task.Run(() => w.Rights.ForgetAsync("u1"));
            SpinWait.SpinUntil(() => w.Store.Get("u1") is null, TimeSpan.FromSeconds(1)); // before the fix at once; now it waits
        };

        // The first due trigger held when checked, and fired. The second ("reminder", due too) fires as well when the
        // tick takes u1's lock again before the waiting erasure does, and not when the erasure goes first: both are right,
        // and in both the stream never names u1 (this count was asserted to be 1 and failed about one run in six).
        Assert.InRange(scheduler.Tick(entered.At.AddDays(4)), 1, 2);
        Assert.NotNull(erasure);
        await erasure;

        Assert.DoesNotContain(w.FeedAfter(start), e => e.UserId == "u1");
        Assert.Contains(w.FeedAfter(start), e => e.Kind == ChangeKind.Triggered && e.UserId == "" && e.Cause == "erased"); // fired, then blanked
        Assert.Null(w.Store.Get("u1"));
    }

    [Fact]
    public void A_user_who_withdrew_personalization_consent_gets_no_trigger_and_an_erased_user_is_blanked_in_the_stream()
    {
        using var w = World();
        var scheduler = w.Get<TriggerScheduler>();
        var start = w.Memberships.Feed.Last;
        ChangeStreamTests.SetScore(w, "u1", 80);
        ChangeStreamTests.SetScore(w, "u2", 80);
        scheduler.Tick(w.Clock.Now);
        w.Ingestion.RecordConsent("u1", Core.Profiles.ConsentPurpose.Personalization, false, "web-banner", null);

        scheduler.Tick(w.Clock.Now.AddDays(1)); // "anyway" needs no membership, but consent still gates it
        Assert.Equal(["u2"], Fired(w, start).Select(e => e.UserId));

        w.Memberships.Forget("u2");
        Assert.DoesNotContain(w.FeedAfter(start), e => e.UserId == "u2");
        Assert.Contains(w.FeedAfter(start), e => e.UserId == "" && e.Cause == "erased");
    }

    [Fact]
    public void Across_a_restart_pending_triggers_and_entries_after_the_checkpoint_fire_once_and_offsets_continue()
    {
        var store = new Core.Profiles.InMemoryProfileStore();
        long lastBefore;
        DateTimeOffset t0;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = World(store, journal);
            t0 = w.Clock.Now;
            var scheduler = w.Get<TriggerScheduler>();
            var service = new ChangeStreamService(w.Memberships.Feed, scheduler, journal, w.Clock);
            ChangeStreamTests.SetScore(w, "u1", 80);
            service.Flush(); // with a journal, readers (the scheduler too) see entries once written
            scheduler.Tick(w.Clock.Now);
            w.Clock.Now = t0.AddDays(1);
            scheduler.Tick(w.Clock.Now); // u1's "anyway" fires before the restart
            service.Flush(); // stream and checkpoint on disk
            ChangeStreamTests.SetScore(w, "u2", 80); // scheduled after the checkpoint: only the stream has it
            var tail = w.Memberships.Feed.Unwritten(100);
            journal.Append(tail);
            lastBefore = tail[^1].Offset;
        }

        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = World(store, journal, now: t0.AddDays(1));
            var scheduler = w.Get<TriggerScheduler>();
            w.Ingestion.EvaluateNewMemberships(); // the restart's membership rebuild: restored members are not new entries
            Assert.Equal(lastBefore, w.Memberships.Feed.Last);
            Assert.Equal(lastBefore + 1, w.Memberships.Feed.Append("x", "high", ChangeKind.Left, w.Clock.Now, 1, "test").Offset);

            var service = new ChangeStreamService(w.Memberships.Feed, scheduler, journal, w.Clock);
            scheduler.Tick(t0.AddDays(10));
            service.Flush();

            var fired = Fired(w, lastBefore + 1);
            Assert.Equal([("u1", "reminder"), ("u2", "anyway"), ("u2", "reminder")], fired.Select(e => (e.UserId, e.Trigger!)).Order());
            Assert.Equal(1, Fired(w, 0).Count(e => e.UserId == "u1" && e.Trigger == "anyway")); // fired once, before the restart
        }
    }

    [Fact]
    public void The_default_catalog_ships_the_cart_reminder_and_the_re_engagement_trigger()
    {
        var catalog = CatalogLoader.Load(new EmbeddedCatalogSource());

        var cart = catalog.TriggersById["cart_reminder"];
        Assert.Equal(("cart_abandoner", TimeSpan.FromDays(3), true), (cart.Segment, cart.Delay, cart.StillMember));
        Assert.Equal([EventTypes.Purchase, EventTypes.CheckoutStart], cart.Unless);
        Assert.Equal(("email_inactive", TimeSpan.Zero), (catalog.TriggersById["re_engagement"].Segment, catalog.TriggersById["re_engagement"].Delay));
    }

    [Fact]
    public void A_user_erased_while_memberships_are_saved_is_not_written_back()
    {
        // Regression: the memberships were read before the erasure rewrote the file without the user, and written after
        // it with the user: the file named the erased user until the next save.
        using var journal = new ChangeStreamJournal(_dir);
        using var w = World(journal: journal);
        var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock, reconciler: w.Get<ChangeStreamReconciler>(), memberships: w.Memberships);
        ChangeStreamTests.SetScore(w, "u1", 80);
        ChangeStreamTests.SetScore(w, "u2", 80);
        service.Flush();

        w.Get<ChangeStreamReconciler>().Save(() =>
        {
            w.Rights.ForgetAsync("u1").GetAwaiter().GetResult();
            service.Flush();
        });

        Assert.Equal(["u2"], journal.LoadMemberships()!.Users.Select(u => u.UserId));
    }

    [Fact]
    public void The_saved_memberships_never_account_for_entries_the_stream_has_not_written()
    {
        // Regression: the checkpoint took the stream's last offset while entries after the last flush were in memory
        // only; after a crash the restored stream ended before it, and the restart announced nothing at all.
        long saved, written;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = World(journal: journal);
            var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock, reconciler: w.Get<ChangeStreamReconciler>(), memberships: w.Memberships);
            ChangeStreamTests.SetScore(w, "u1", 80); // appended, not yet flushed

            service.SaveMemberships();
            saved = journal.LoadMemberships()!.Offset;
        } // a crash here loses nothing the checkpoint names

        using (var reopened = new ChangeStreamJournal(_dir))
        {
            written = reopened.Load(DateTimeOffset.UnixEpoch, 1000).LastOffset;
        }

        Assert.True(saved >= 1);
        Assert.True(saved <= written, $"checkpoint at {saved}, stream written to {written}");
    }

    [Fact]
    public void After_a_restart_what_changed_while_the_server_was_down_is_announced_once_and_nothing_else()
    {
        var catalog = TestCatalogs.Source(
            TestCatalogs.Segment("recent", "behavioural", "{ field: events.page_view.last_at, within: 1h }"),
            TestCatalogs.Segment("high", "value", "{ field: traits.score, gte: 50 }"));
        var store = new Core.Profiles.InMemoryProfileStore();
        DateTimeOffset t0;
        long lastBefore;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = new TestWorld(catalog, store: store, journal: journal);
            t0 = w.Clock.Now;
            var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock);
            w.Track("u1", EventTypes.PageView); // recent, for an hour
            ChangeStreamTests.SetScore(w, "u2", 80);
            service.Flush();
            w.Get<ChangeStreamReconciler>().Save(); // what consumers have been told
            ChangeStreamTests.SetScore(w, "u3", 80); // told after the save: the stream has it
            service.Flush();
            lastBefore = w.Memberships.Feed.Last;
        }

        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = new TestWorld(catalog, store: store, journal: journal, now: t0.AddHours(2)); // down for two hours
            w.Ingestion.EvaluateNewMemberships();
            var announced = w.Get<ChangeStreamReconciler>().Reconcile();
            new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock).Flush();

            var entries = w.FeedAfter(lastBefore);
            Assert.Equal(1, announced);
            var left = Assert.Single(entries);
            Assert.Equal(("u1", "recent", ChangeKind.Left, ChangeStreamReconciler.Cause), (left.UserId, left.SegmentId, left.Kind, left.Cause));
        }
    }

    [Fact]
    public void A_user_who_lapsed_while_the_server_was_down_counts_as_churn_of_the_segment_left()
    {
        // Regression: the index is rebuilt from nothing at a restart, so a user who aged from 'active' into the churn
        // state overnight never made a move the churn history saw: the churn rate missed every lapse while down.
        var catalog = TestCatalogs.Source(
            TestCatalogs.Segment("active", "behavioural", "{ field: events.page_view.last_at, within: 1h }"),
            TestCatalogs.Segment("churned", "lifecycle", "{ field: events.page_view.last_at, older_than: 1h }"),
            TestCatalogs.Segment("visitor", "behavioural", "{ field: events.page_view.count, gte: 1 }"));
        var store = new Core.Profiles.InMemoryProfileStore();
        DateTimeOffset t0;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = new TestWorld(catalog, store: store, journal: journal);
            t0 = w.Clock.Now;
            w.Track("u1", EventTypes.PageView);
            Assert.Contains("active", w.Memberships.SegmentsOf("u1"));
            new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock).Flush();
            w.Get<ChangeStreamReconciler>().Save();
        }

        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = new TestWorld(catalog, store: store, journal: journal, now: t0.AddHours(2)); // down for two hours
            w.Ingestion.EvaluateNewMemberships();
            w.Get<ChangeStreamReconciler>().Reconcile();

            var churn = w.Get<ChurnHistory>();
            Assert.Equal(1, churn.Churned("active", t0, t0.AddHours(3)));
            Assert.Equal(0, churn.Churned("visitor", t0, t0.AddHours(3))); // still a member: not left for the churn state
        }
    }

    [Fact]
    public void Memberships_never_announced_are_not_saved_as_told()
    {
        // Regression: the saved state took a user without personalization consent as told their segments; had the grant's
        // entries been lost in a crash, the restart found no difference and announced nothing.
        using var journal = new ChangeStreamJournal(_dir);
        using var w = new TestWorld(
            TestCatalogs.Source(TestCatalogs.Segment("never_bought", "transactional", "{ field: orders.count, eq: 0 }")),
            consent: new Core.Privacy.ConsentPolicy(RequireExplicitConsent: true),
            journal: journal);
        w.Track("hidden", EventTypes.PageView);
        w.Track("told", EventTypes.PageView);
        w.Ingestion.RecordConsent("told", Core.Profiles.ConsentPurpose.Personalization, granted: true, "banner", null);
        Assert.Contains("never_bought", w.Memberships.SegmentsOf("hidden"));
        new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock).Flush();

        w.Get<ChangeStreamReconciler>().Save();

        Assert.Equal(["told"], journal.LoadMemberships()!.Users.Select(u => u.UserId));
    }

    [Fact]
    public void A_checkpoint_taken_while_a_move_is_in_the_index_but_not_in_the_stream_does_not_count_it_as_told()
    {
        // Regression (review): the index takes a user's new segments before their entries are appended; a periodic
        // save in between took the move as told, and a crash before the entry was written lost it for good (the
        // restart found the saved memberships equal to the rebuilt ones and announced nothing).
        var catalog = TestCatalogs.Source(TestCatalogs.Segment("recent", "behavioural", "{ field: events.page_view.last_at, within: 1h }"));
        using var journal = new ChangeStreamJournal(_dir);
        using var w = new TestWorld(catalog, journal: journal);
        var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock);
        var reconciler = w.Get<ChangeStreamReconciler>();
        w.Track("u1", EventTypes.ProductView); // a user in no segment
        reconciler.Save(() => service.Flush()); // told nothing yet
        w.Memberships.Moved = (_, _, _) => reconciler.Save(() => service.Flush()); // the periodic save lands inside the move

        w.Track("u1", EventTypes.PageView);

        Assert.Empty(journal.LoadMemberships()!.Users); // not saved as told: a restart compares with the earlier checkpoint and announces the entry
        w.Memberships.Moved = null;
        reconciler.Save(() => service.Flush()); // once the entry is in the stream, the move is saved as told
        Assert.Equal(["u1"], journal.LoadMemberships()!.Users.Select(u => u.UserId));
    }

    [Fact]
    public void A_live_write_during_the_restart_announcement_is_not_contradicted_by_it()
    {
        // The announcement runs once the index is complete, with traffic served: a page view arriving between its
        // comparison and its append put the user back in 'recent' (announced live), then the announcement appended the
        // older comparison's 'left' — consumers kept the user out of a segment the index has them in.
        var catalog = TestCatalogs.Source(TestCatalogs.Segment("recent", "behavioural", "{ field: events.page_view.last_at, within: 1h }"));
        var store = new Core.Profiles.InMemoryProfileStore();
        DateTimeOffset t0;
        long lastBefore;
        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = new TestWorld(catalog, store: store, journal: journal);
            t0 = w.Clock.Now;
            var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock);
            w.Track("u1", EventTypes.PageView);
            service.Flush();
            w.Get<ChangeStreamReconciler>().Save();
            lastBefore = w.Memberships.Feed.Last;
        }

        using (var journal = new ChangeStreamJournal(_dir))
        {
            using var w = new TestWorld(catalog, store: store, journal: journal, now: t0.AddHours(2)); // down for two hours
            w.Ingestion.EvaluateNewMemberships();
            var reconciler = w.Get<ChangeStreamReconciler>();
            w.Track("u0", EventTypes.PageView); // this world's event ids start again: the first one was the first world's
            reconciler.BeforeAnnouncing = user => Assert.False(w.Track(user, EventTypes.PageView).Duplicate); // back on the site as the server comes up

            reconciler.Reconcile();
            new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock).Flush();

            var entries = w.FeedAfter(lastBefore).Where(e => e.UserId == "u1").Select(e => (e.Kind, e.Cause)).ToList();
            Assert.Equal(ChangeKind.Entered, Assert.Single(entries).Kind); // the live entry, and nothing after it
            Assert.Contains("recent", w.Memberships.SegmentsOf("u1"));
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("0d")]
    [InlineData(" 0h ")]
    public void A_delay_of_zero_written_with_or_without_a_unit_is_no_delay(string delay)
    {
        var catalog = CatalogLoader.Load(Catalog($"triggers:\n  - id: t\n    segment: high\n    delay: \"{delay}\"\n"));
        Assert.Equal(TimeSpan.Zero, Assert.Single(catalog.Triggers).Delay);
    }

    [Theory]
    [InlineData("triggers:\n  - id: t\n    segment: nope\n", "unknown segment 'nope'")]
    [InlineData("triggers:\n  - id: t\n    segment: everyone\n", "'everyone' is the fallback segment, which no user is ever a member of")] // regression: accepted, and it never fired
    [InlineData("triggers:\n  - id: t\n    segment: high\n    delay: 100d\n", "'delay' is a duration from 0 to 90d")]
    [InlineData("triggers:\n  - id: t\n    segment: high\n    unless: [bought]\n", "'bought' is not an event type")]
    [InlineData("triggers:\n  - id: t\n    segment: high\n    dealy: 3d\n", "unknown key 'dealy'")]
    [InlineData("triggers:\n  - id: t\n    segment: high\n  - id: t\n    segment: high\n", "duplicate trigger id 't'")]
    [InlineData("triggers:\n  - id: t\n    segment: high\n    still_member: maybe\n", "'still_member' is true or false")]
    public void Mistakes_in_triggers_are_catalog_errors_at_file_and_line(string yaml, string message)
    {
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(Catalog(yaml)));
        var error = Assert.Single(ex.Errors);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal("triggers.yaml", error.File);
        Assert.True(error.Line > 1);
    }

    [Fact]
    public void A_kept_version_with_a_trigger_on_the_fallback_segment_still_loads()
    {
        // Regression (own review): the refusal of a trigger on the fallback segment applied to the version a data directory
        // kept active from before the check too: the upgraded server refused to start, and a rollback to it failed.
        var source = Catalog("triggers:\n  - id: t\n    segment: everyone\n");
        Assert.Throws<CatalogException>(() => CatalogLoader.Load(source));
        Assert.Equal("everyone", Assert.Single(CatalogLoader.LoadKept(source).Triggers).Segment);
    }

    [Fact]
    public async Task A_host_that_never_started_writes_nothing_to_the_journal_when_it_stops_and_one_that_started_flushes()
    {
        // After a failed start the host stops every hosted service, even one whose job never ran; the data directory may
        // be half restored or held by another server, so nothing is written on the way out.
        using var journal = new ChangeStreamJournal(_dir);
        using var w = World(journal: journal);
        w.Memberships.Feed.Append("u1", "high", ChangeKind.Entered, w.Clock.Now, 1, "test");
        var lifetime = new Lifetime();

        await new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock, lifetime: lifetime).StopAsync(CancellationToken.None);
        Assert.Single(w.Memberships.Feed.Unwritten(10));

        lifetime.Started.Cancel();
        await new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock, lifetime: lifetime).StopAsync(CancellationToken.None);
        Assert.Empty(w.Memberships.Feed.Unwritten(10)); // a normal shutdown still writes what is left
    }

    private sealed class Lifetime : Microsoft.Extensions.Hosting.IHostApplicationLifetime
    {
        public CancellationTokenSource Started { get; } = new();

        public CancellationToken ApplicationStarted => Started.Token;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }
}
