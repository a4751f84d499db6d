using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Decisions;

public class DecisionCacheTests
{
    private static TestWorld World() => new(TestCatalogs.Source(
        TestCatalogs.Segment("recent_viewer", "behavioural", "{ field: events.page_view.last_at, within: 1h }"),
        TestCatalogs.Segment("mobile", "contextual", "{ field: context.device, eq: mobile }")));

    [Fact]
    public void A_context_is_cached_on_its_second_request_and_served_from_the_cache_with_a_new_decision_id()
    {
        using var w = World();
        w.Track("u1", "page_view");

        var first = w.Decide("u1");
        var second = w.Decide("u1");
        var third = w.Decide("u1");

        Assert.False(first.FromCache);
        Assert.False(second.FromCache); // the first request only remembered the context
        Assert.True(third.FromCache);
        Assert.Equal(first.Winner.Id, third.Winner.Id);
        Assert.NotEqual(second.DecisionId, third.DecisionId);
    }

    [Fact]
    public void An_event_dated_a_little_ahead_of_the_server_bounds_the_decision_until_its_time_comes()
    {
        // Read once its time comes (a day count of "now minus a future time" is no count): the decision cached before
        // must not outlive that moment.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("seen_this_week", "behavioural", "{ field: profile.days_since_last_seen, lte: 7 }")));
        var ahead = w.Clock.Now.AddSeconds(30);
        w.Track("u1", "page_view", at: ahead); // a storefront whose clock is 30 s fast

        var first = w.Decide("u1");
        w.Decide("u1");
        Assert.Equal(("everyone", ahead.UtcTicks), (first.Winner.Id, first.ValidUntilTicks));

        w.Clock.Now = ahead.AddSeconds(1);
        var later = w.Decide("u1");
        Assert.False(later.FromCache);
        Assert.Equal("seen_this_week", later.Winner.Id);
    }

    [Fact]
    public void Last_seen_is_the_users_own_latest_event_not_an_email_the_service_sent_or_an_impression()
    {
        // Regression: profile.last_seen and days_since_last_seen counted the service's own sends and impressions, so a
        // user emailed every week never lapsed, although they had not come back for 40 days.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("lapsed", "behavioural", "{ field: profile.days_since_last_seen, gte: 30 }")));
        var visited = w.Clock.Now.AddDays(-40);
        w.Track("u1", "page_view", at: visited);
        w.Track("u1", "email_send", at: w.Clock.Now.AddDays(-1), campaign: "weekly");
        w.Track("u1", "impression", at: w.Clock.Now.AddHours(-1));

        var decision = w.Decide("u1");
        Assert.Equal("lapsed", decision.Winner.Id);

        w.Track("u1", "page_view", at: w.Clock.Now.AddMinutes(-1)); // back
        Assert.Equal("everyone", w.Decide("u1").Winner.Id);
    }

    [Fact]
    public void A_context_seen_once_leaves_no_decision_in_the_cache()
    {
        using var cache = new DecisionCache();
        using var w = World();
        var catalog = w.Catalogs.Current;
        var versions = new DecisionVersions(0, catalog.Version, 0);
        var decision = w.Decide("u1");
        var now = decision.EvaluatedAt.UtcTicks;
        var landing = new RequestContext(Device: "one-off");
        var home = new RequestContext(Device: "desktop");

        cache.Set("u1", versions, catalog.ContextFieldsRead, landing, decision);
        cache.Set("u1", versions, catalog.ContextFieldsRead, home, decision);

        Assert.Null(cache.Find("u1", versions, catalog.ContextFieldsRead, landing, now)?.Decision);
        Assert.Null(cache.Find("u1", versions, catalog.ContextFieldsRead, home, now)?.Decision);

        cache.Set("u1", versions, catalog.ContextFieldsRead, home, decision); // asked again: admitted
        Assert.Same(decision, cache.Find("u1", versions, catalog.ContextFieldsRead, home, now)?.Decision);
        Assert.Null(cache.Find("u1", versions, catalog.ContextFieldsRead, landing, now)?.Decision);
    }

    [Fact]
    public void A_remembered_context_is_admitted_after_a_profile_change()
    {
        // The storefront pattern: a page view is tracked between two renders of the same page.
        using var w = World();
        w.Decide("u1");
        w.Track("u1", "page_view");

        var afterChange = w.Decide("u1");
        var again = w.Decide("u1");

        Assert.False(afterChange.FromCache);
        Assert.True(again.FromCache);
        Assert.Equal("recent_viewer", again.Winner.Id);
    }

    [Fact]
    public void Without_admission_on_repeat_the_first_decision_is_cached()
    {
        using var cache = new DecisionCache(new DecisionCacheOptions { AdmitOnRepeat = false });
        using var w = World();
        var catalog = w.Catalogs.Current;
        var versions = new DecisionVersions(0, catalog.Version, 0);
        var decision = w.Decide("u1");

        cache.Set("u1", versions, catalog.ContextFieldsRead, RequestContext.Empty, decision);

        Assert.Same(decision, cache.Find("u1", versions, catalog.ContextFieldsRead, RequestContext.Empty, decision.EvaluatedAt.UtcTicks)?.Decision);
    }

    [Fact]
    public void A_profile_change_is_never_served_stale()
    {
        using var w = World();
        var before = w.Decide("u1");
        Assert.Equal("everyone", before.Winner.Id);
        w.Decide("u1");
        Assert.True(w.Decide("u1").FromCache);

        w.Track("u1", "page_view");
        var after = w.Decide("u1");

        Assert.False(after.FromCache);
        Assert.Equal("recent_viewer", after.Winner.Id);
    }

    [Fact]
    public void A_trait_change_is_never_served_stale()
    {
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("vip", "value", "{ field: traits.vip, eq: true }")));
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["vip"] = false }, "crm", AttributeLayer.ZeroParty, null);
        Assert.Equal("everyone", w.Decide("u1").Winner.Id);

        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["vip"] = true }, "crm", AttributeLayer.ZeroParty, null);

        Assert.Equal("vip", w.Decide("u1").Winner.Id);
    }

    [Fact]
    public void A_catalog_change_is_never_served_stale()
    {
        using var w = World();
        w.Track("u1", "page_view");
        Assert.Equal("recent_viewer", w.Decide("u1").Winner.Id);

        w.Catalogs.Load(TestCatalogs.Source(TestCatalogs.Segment("viewer_v2", "intent", "{ field: events.page_view.count, gte: 1 }")));
        var after = w.Decide("u1");

        Assert.False(after.FromCache);
        Assert.Equal("viewer_v2", after.Winner.Id);
        Assert.Equal(2, after.CatalogVersion);
    }

    [Fact]
    public void Only_context_fields_the_catalog_reads_split_the_cache()
    {
        using var w = World();
        Assert.Equal([ContextField.Device], w.Catalogs.Current.ContextFieldsRead);

        w.Decide("u1", new RequestContext(Device: "desktop", Country: "GB"));
        w.Decide("u1", new RequestContext(Device: "desktop", Country: "GB"));
        var otherCountry = w.Decide("u1", new RequestContext(Device: "desktop", Country: "FR"));
        var mobile = w.Decide("u1", new RequestContext(Device: "mobile", Country: "GB"));

        Assert.True(otherCountry.FromCache); // the catalog never reads country
        Assert.False(mobile.FromCache);
        Assert.Equal("mobile", mobile.Winner.Id);
    }

    [Fact]
    public void Each_request_context_of_a_user_keeps_its_own_decision()
    {
        using var w = World();
        var desktop = new RequestContext(Device: "desktop");
        var mobile = new RequestContext(Device: "mobile");

        w.Decide("u1", desktop);
        w.Decide("u1", mobile);
        w.Decide("u1", desktop);
        w.Decide("u1", mobile);
        var desktopAgain = w.Decide("u1", desktop);
        var mobileAgain = w.Decide("u1", mobile);

        Assert.True(desktopAgain.FromCache);
        Assert.Equal("everyone", desktopAgain.Winner.Id);
        Assert.True(mobileAgain.FromCache);
        Assert.Equal("mobile", mobileAgain.Winner.Id);
        Assert.Equal(1, w.Cache.Count); // one entry per user
    }

    [Fact]
    public void A_user_keeps_at_most_the_configured_number_of_contexts_newest_first()
    {
        using var cache = new DecisionCache(new DecisionCacheOptions { ContextsPerUser = 2, AdmitOnRepeat = false });
        using var w = World();
        var catalog = w.Catalogs.Current;
        var versions = new DecisionVersions(0, catalog.Version, 0);
        var decision = w.Decide("u1");
        var contexts = new[] { "a", "b", "c" }.Select(d => new RequestContext(Device: d)).ToArray();

        foreach (var c in contexts)
        {
            cache.Set("u1", versions, catalog.ContextFieldsRead, c, decision);
        }

        var now = decision.EvaluatedAt.UtcTicks;
        Assert.Null(cache.Find("u1", versions, catalog.ContextFieldsRead, contexts[0], now)?.Decision); // the oldest went first
        Assert.Same(decision, cache.Find("u1", versions, catalog.ContextFieldsRead, contexts[1], now)?.Decision);
        Assert.Same(decision, cache.Find("u1", versions, catalog.ContextFieldsRead, contexts[2], now)?.Decision);
        Assert.Null(cache.Find("u1", versions with { Profile = 1 }, catalog.ContextFieldsRead, contexts[2], now)?.Decision);
        Assert.Null(cache.Find("u2", versions, catalog.ContextFieldsRead, contexts[2], now)?.Decision);

        Assert.Equal(1, cache.RemoveUsers(["u1", "u2"]));
        Assert.Null(cache.Find("u1", versions, catalog.ContextFieldsRead, contexts[2], now)?.Decision);
    }

    [Fact]
    public void Decision_ids_are_unique_time_ordered_version_7_uuids()
    {
        var at = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
        var ids = Enumerable.Range(0, 100_000).Select(_ => DecisionIds.Next(at)).ToList();

        Assert.Equal(ids.Count, ids.Distinct(StringComparer.Ordinal).Count());
        foreach (var id in ids.Take(100))
        {
            var guid = Guid.Parse(id);
            Assert.Equal(7, guid.Version);
            Assert.Equal(0b10, guid.Variant >> 2); // RFC 9562 variant
            var bytes = guid.ToByteArray(bigEndian: true);
            var millis = ((long)bytes[0] << 40) | ((long)bytes[1] << 32) | ((long)bytes[2] << 24) | ((long)bytes[3] << 16) | ((long)bytes[4] << 8) | bytes[5];
            Assert.Equal(at.ToUnixTimeMilliseconds(), millis);
        }

        Assert.True(string.CompareOrdinal(ids[0], DecisionIds.Next(at.AddMilliseconds(1))) < 0);
    }

    [Fact]
    public void A_time_based_rule_is_not_served_stale_once_its_window_passes()
    {
        using var w = World();
        var viewedAt = w.Clock.Now;
        w.Track("u1", "page_view", viewedAt);
        Assert.Equal("recent_viewer", w.Decide("u1").Winner.Id);
        w.Decide("u1");

        w.Clock.Now = viewedAt.AddMinutes(59);
        var stillRecent = w.Decide("u1");
        w.Clock.Now = viewedAt.AddMinutes(60);
        var expired = w.Decide("u1");

        Assert.True(stillRecent.FromCache);
        Assert.Equal("recent_viewer", stillRecent.Winner.Id);
        Assert.False(expired.FromCache);
        Assert.Equal("everyone", expired.Winner.Id);
    }

    [Fact]
    public void Explain_is_computed_fresh_and_traces_every_rule()
    {
        using var w = World();
        w.Track("u1", "page_view", w.Clock.Now.AddHours(-2));
        w.Decide("u1");

        var explained = w.Engine.Decide(new DecisionRequest("u1", "", new RequestContext(Device: "desktop"), Explain: true));

        Assert.False(explained.FromCache);
        var e = Assert.IsType<Explanation>(explained.Explanation);
        var viewer = Assert.Single(e.Segments, s => s.Segment.Id == "recent_viewer");
        Assert.False(viewer.Matched);
        Assert.Equal("rule", viewer.FirstFailingClause);
        var clause = Assert.Single(viewer.Clauses);
        Assert.Equal(w.Clock.Now.AddHours(-2).ToString("O", System.Globalization.CultureInfo.InvariantCulture), clause.Actual);
        Assert.Equal("desktop", Assert.Single(e.Segments, s => s.Segment.Id == "mobile").Clauses[0].Actual);
        Assert.Contains("no segment matched", e.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Batch_uses_one_catalog_and_one_frozen_now_and_reports_bad_ids_in_place()
    {
        using var w = World();
        w.Track("a", "page_view");
        var items = w.Engine.DecideBatch(["a", "", "b"], RequestContext.Empty, null, explain: false).ToList();

        Assert.Equal([0, 1, 2], items.Select(i => i.Index));
        Assert.Equal("recent_viewer", items[0].Decision!.Winner.Id);
        Assert.Null(items[1].Decision);
        Assert.Equal("user_ids[1]", items[1].Error!.Field);
        Assert.Equal("everyone", items[2].Decision!.Winner.Id);
        Assert.Equal(items[0].Decision!.EvaluatedAt, items[2].Decision!.EvaluatedAt);
    }

    [Fact]
    public void A_batch_echoes_an_overlong_id_cut_short_not_whole()
    {
        // Regression: the rejected id came back whole in its item: one id of a few megabytes made a result larger than a
        // client's default 4 MB message limit.
        using var w = World();
        var huge = new string('x', 1 << 20);

        var item = Assert.Single(w.Engine.DecideBatch([huge], RequestContext.Empty, null, explain: false));

        Assert.Equal("user_ids[0]", item.Error!.Field);
        Assert.InRange(item.UserId.Length, 1, InputLimits.MaxIdLength + 1);
        Assert.StartsWith("xxxx", item.UserId, StringComparison.Ordinal);
    }

    [Fact]
    public void Batch_decides_each_user_on_its_own_profile_around_bad_and_unknown_ids()
    {
        // Every user gets the decision of its own profile, whatever its position and the invalid or unknown ids around it:
        // each viewer's content is rendered from a trait only its profile holds, so two users swapping profiles fail it.
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("recent_viewer", "behavioural", "{ field: events.page_view.last_at, within: 1h }").Replace("template: \"content for recent_viewer\"", "template: \"content for {{ profile.traits.tier }}\"", StringComparison.Ordinal)));
        var ids = new List<string>();
        var viewers = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 21; i++)
        {
            var id = (i % 5) switch
            {
                0 => $"viewer-{i}",
                1 => $"unknown-{i}",
                2 => i % 2 == 0 ? "" : "  ",
                3 => new string('x', Segmentation.Core.Validation.InputLimits.MaxIdLength + 1),
                _ => $"viewer-{i}",
            };
            if (id.StartsWith("viewer-", StringComparison.Ordinal))
            {
                w.Track(id, "page_view");
                w.Ingestion.SetTraits(id, new Dictionary<string, object?> { ["tier"] = $"tier of {id}" }, "crm", AttributeLayer.ZeroParty, null);
                viewers.Add(id);
            }

            ids.Add(id);
        }

        var items = w.Engine.DecideBatch(ids, RequestContext.Empty, null, explain: false).ToList();

        Assert.Equal(Enumerable.Range(0, 21), items.Select(i => i.Index));
        for (var i = 0; i < ids.Count; i++)
        {
            var item = items[i];
            if (i % 5 is 2 or 3)
            {
                Assert.Null(item.Decision);
                Assert.Equal($"user_ids[{i}]", item.Error!.Field);
                continue;
            }

            Assert.Equal(ids[i], item.Decision!.UserId);
            Assert.Equal(viewers.Contains(ids[i]) ? "recent_viewer" : "everyone", item.Decision.Winner.Id);
            Assert.Equal(viewers.Contains(ids[i]) ? $"content for tier of {ids[i]}" : "Welcome", item.Decision.Variant(VariantKind.Content).Text);
        }
    }

    [Fact]
    public void Batch_keeps_the_catalog_it_started_with()
    {
        using var w = World();
        var items = w.Engine.DecideBatch(["a", "b"], RequestContext.Empty, null, explain: false);
        using var e = items.GetEnumerator();
        Assert.True(e.MoveNext());
        w.Catalogs.Load(TestCatalogs.Source());
        Assert.True(e.MoveNext());

        Assert.Equal(1, e.Current.Decision!.CatalogVersion);
        Assert.Equal(2, w.Catalogs.Current.Version);
    }

    [Fact]
    public void Batch_answers_from_the_cache_but_leaves_nothing_in_it()
    {
        using var w = World();
        w.Track("a", "page_view");
        w.Track("b", "page_view");
        w.Decide("b");
        Assert.False(w.Decide("b").FromCache); // asked twice: the storefront's decision for b is cached

        var items = w.Engine.DecideBatch(["a", "b"], RequestContext.Empty, null, explain: false).ToList();

        Assert.False(items[0].Decision!.FromCache);
        Assert.True(items[1].Decision!.FromCache);
        Assert.False(w.Decide("a").FromCache); // the batch's decision for a was not kept
    }
}
