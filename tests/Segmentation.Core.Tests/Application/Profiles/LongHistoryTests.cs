using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Profiles;

/// <summary>
/// Profiles with histories longer than the event log's hot run (bots, busy accounts): every read gives what
/// a plain list of the same events gives, whether the profile was written one event at a time (crossing the
/// hot limit again and again, with late and duplicate events) or built at once from a snapshot.
/// </summary>
public sealed class LongHistoryTests
{
    private static readonly long T0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks;
    private static readonly string[] Types = [EventTypes.PageView, EventTypes.ProductView, EventTypes.Purchase, EventTypes.Search, EventTypes.AddToCart];

    private static StoredEvent Event(int i, long minute, string? session = null) => new(
        $"e{i}",
        Types[i % Types.Length],
        T0 + (minute * TimeSpan.TicksPerMinute),
        i % 3 == 0 ? 0.1 * (i % 97) : 0,
        1,
        session ?? $"s{minute / 30}",
        "web",
        i % 4 == 0 ? "pricing" : "product",
        i % 2 == 0 ? $"cat{i % 5}" : null,
        $"p{i % 11}",
        null,
        "GB");

    [Fact]
    public void A_profile_written_one_event_at_a_time_past_the_hot_limit_reads_like_the_plain_list_of_its_events()
    {
        var random = new Random(11);
        var profile = new Profile("bot");
        var expected = new List<StoredEvent>();
        var version = 0L;
        for (var i = 0; i < (3 * EventLog.HotLimit) + 500; i++)
        {
            // Mostly in order, sometimes late (inside the hot run or before the archive), sometimes a duplicate, sessions coming back.
            var minute = random.Next(100) switch
            {
                < 3 when expected.Count > 0 => expected[random.Next(expected.Count)].Ticks / TimeSpan.TicksPerMinute - (T0 / TimeSpan.TicksPerMinute),
                < 6 => (i * 2L) - random.Next(1, 60),
                _ => i * 2L,
            };
            var e = Event(i, Math.Max(0, minute), random.Next(10) == 0 ? $"s{random.Next(40)}" : null);
            profile = profile.Apply(e, ++version);
            expected.Insert(expected.FindLastIndex(x => x.Ticks <= e.Ticks) + 1, e);
            if (random.Next(50) == 0)
            {
                Assert.Same(profile, profile.Apply(expected[random.Next(expected.Count)], ++version)); // a duplicate changes nothing
            }
        }

        Assert.True(profile.Events.HasArchive);
        AssertReadsLike(expected, profile);
        AssertReadsLike(expected, new Profile("bot").WithEvents(expected, 1)); // as a snapshot restore builds it
    }

    private static void AssertReadsLike(List<StoredEvent> expected, Profile profile)
    {
        var log = profile.Events;
        Assert.Equal(expected, log.ToArray());
        Assert.Equal(expected.Count, log.Count);
        Assert.Equal(expected[^1].Ticks, log.LastTicks);
        Assert.Equal(expected.Select(e => e.SessionId).Distinct().Count(), log.Sessions);
        for (var i = 0; i < expected.Count; i += 37)
        {
            Assert.Equal(expected[i].Ticks, log.TicksAt(i));
            Assert.Equal(expected[i].Type, log.TypeAt(i));
            Assert.Equal(expected[i].PageType, log.PageTypeAt(i));
            Assert.Equal(expected[i].Category, log.CategoryAt(i));
            Assert.Equal(expected[i].ProductId, log.ProductIdAt(i));
            Assert.True(profile.HasEvent(expected[i].EventId));
        }

        Assert.False(profile.HasEvent("never-sent"));
        Assert.Equal(expected.Count, profile.TotalEvents);
        Assert.Equal(expected.Count(e => e.Type == EventTypes.Purchase), profile.Orders);
        Assert.Equal(expected.Where(e => e.Type == EventTypes.Purchase).Sum(e => e.Value), profile.Revenue, 6);

        var last = expected[^1].Ticks;
        foreach (var now in new[] { T0 - 1, T0 + (TimeSpan.TicksPerDay / 2), last - (3 * TimeSpan.TicksPerDay), last, last + TimeSpan.TicksPerDay })
        {
            foreach (var window in new[] { TimeSpan.FromHours(6).Ticks, TimeSpan.FromDays(1).Ticks, TimeSpan.FromDays(2).Ticks, long.MaxValue })
            {
                bool In(StoredEvent e) => e.Ticks <= now && (window == long.MaxValue || e.Ticks > now - window);
                foreach (var type in Types)
                {
                    var series = profile.Series(type);
                    var of = expected.Where(e => e.Type == type).ToList();
                    Assert.Equal(of.Count, series.Count);
                    Assert.Equal(of.Count(In), series.CountInWindow(now, window, out _));
                    Assert.Equal(of.Where(In).Sum(e => e.Value), series.SumInWindow(now, window, out _), 6);
                    Assert.Equal(of.Where(e => e.Ticks <= now).Select(e => e.Ticks).DefaultIfEmpty(long.MinValue).Max(), series.LastAtOrBefore(now, out _));
                    Assert.Equal(of.Count > 0 && of[0].Ticks <= now ? of[0].Ticks : long.MinValue, series.FirstAtOrBefore(now, out _));
                }

                Assert.Equal(expected.Count(In), profile.AllEvents.CountInWindow(now, window, out _));
            }
        }

        Assert.Equal(expected.Select(e => e.Ticks), profile.AllEvents.Ticks);
        Assert.Equal(Types.Where(t => expected.Any(e => e.Type == t)).Order(StringComparer.Ordinal), profile.Aggregates.Series.Keys);
    }

    [Fact]
    public void A_profile_at_its_event_limit_refuses_more_events_and_a_bulk_write_reports_it_per_event()
    {
        using var w = new TestWorld(eventLimit: 3);
        var ingestion = w.Ingestion;
        BehaviourEvent View(int i) => new()
        {
            EventId = $"v{i}",
            Type = EventTypes.PageView,
            UserId = "busy",
            Timestamp = w.Clock.Now.AddMinutes(-10 + i),
            Context = new EventContext("web", "desktop", "s1", "home"),
        };

        for (var i = 0; i < 3; i++)
        {
            ingestion.Track(View(i));
        }

        var refused = Assert.Throws<Validation.LimitExceededException>(() => ingestion.Track(View(3)));
        Assert.Contains("the most one profile may hold", refused.Message);
        Assert.True(ingestion.Track(View(1)).Duplicate); // a retry of a stored event is still a duplicate, not refused
        var bulk = ingestion.TrackMany([View(4), View(5)]).ToList();
        Assert.All(bulk, r => Assert.Equal(EventStatus.Rejected, r.Status));
        Assert.Equal(3, w.Store.Get("busy")!.TotalEvents);
    }
}
