using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Xunit.Abstractions;

namespace Segmentation.Core.Tests.Decisions;

/// <summary>
/// Send-time optimisation against generated histories whose best hour is known: users in four time zones with 0 to 30
/// email opens over three months, 80 % of them near their hour and the rest at random.
/// </summary>
public sealed class SendTimeTests(ITestOutputHelper output)
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly string[] ZoneIds = ["America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Sydney"];

    private sealed record Generated(string User, int TrueHour, int Opens, TimeZoneInfo Zone);

    // Tracks each user's opens (local times converted to UTC in their zone) into the world; returns the users.
    private static List<Generated> Population(TestWorld w, int users, int seed)
    {
        var random = new Random(seed);
        var generated = new List<Generated>();
        int[] sizes = [0, 1, 3, 10, 30];
        for (var u = 0; u < users; u++)
        {
            var zone = TimeZoneInfo.FindSystemTimeZoneById(ZoneIds[u % ZoneIds.Length]);
            var hour = 7 + random.Next(15); // 07:00 to 21:00
            var opens = sizes[u % sizes.Length];
            var user = $"sto-{u}";
            for (var i = 0; i < opens; i++)
            {
                var localHour = random.NextDouble() < 0.8 ? (hour + (int)Math.Round(Normal(random) * 0.8) + 24) % 24 : random.Next(24);
                var day = Now.AddDays(-1 - random.Next(90));
                var local = new DateTime(day.Year, day.Month, day.Day, localHour, random.Next(60), 0, DateTimeKind.Unspecified);
                if (zone.IsInvalidTime(local))
                {
                    continue;
                }

                w.Track(user, EventTypes.EmailOpen, at: new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, zone), TimeSpan.Zero), campaign: $"c{i}");
            }

            generated.Add(new Generated(user, hour, opens, zone));
        }

        return generated;
    }

    private static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Sin(2 * Math.PI * random.NextDouble());

    private static int Distance(int a, int b) => Math.Min((a - b + 24) % 24, (b - a + 24) % 24);

    private static SendTimePrior PriorOf(TestWorld w, IEnumerable<Generated> users)
    {
        var sums = new double[24];
        var count = users.Count(g => w.Store.Get(g.User) is { } p && SendTimeEstimator.AddShares(p, g.Zone, Now.UtcTicks, sums));
        return new SendTimePrior(sums, count);
    }

    [Fact]
    public void With_a_few_opens_the_known_hour_is_found_far_more_often_than_the_population_hour_would_be()
    {
        using var w = new TestWorld(now: Now);
        var users = Population(w, 1000, seed: 7);
        var prior = PriorOf(w, users);
        var populationHour = Enumerable.Range(0, 24).MaxBy(h => prior.Shares[h]);

        foreach (var size in new[] { 1, 3, 10, 30 })
        {
            var group = users.Where(g => g.Opens == size).ToList();
            var estimates = group.Select(g => SendTimeEstimator.Estimate(w.Store.Get(g.User), g.Zone, prior, Now.UtcTicks, Now.UtcTicks)).ToList();
            var within1 = group.Zip(estimates).Count(x => Distance(x.First.TrueHour, x.Second.LocalHour) <= 1) / (double)group.Count;
            var baseline = group.Count(g => Distance(g.TrueHour, populationHour) <= 1) / (double)group.Count;
            output.WriteLine($"{size,2} opens: best hour within ±1 h for {within1:P0} of {group.Count} users (population hour for everyone: {baseline:P0}); basis 'profile' for {estimates.Count(e => e.Basis == "profile") / (double)group.Count:P0}");

            var expected = size switch { 1 => 0.6, 3 => 0.8, 10 => 0.95, _ => 0.98 };
            Assert.True(within1 >= expected, $"{size} opens: {within1:P0} within one hour, expected at least {expected:P0}");
            Assert.True(within1 >= baseline + 0.4, $"{size} opens: {within1:P0} is not far above the population baseline {baseline:P0}");
        }

        Assert.All(users.Where(g => g.Opens == 30), g => Assert.Equal("profile", SendTimeEstimator.Estimate(w.Store.Get(g.User), g.Zone, prior, Now.UtcTicks, Now.UtcTicks).Basis));
        Assert.All(users.Where(g => g.Opens == 0), g =>
        {
            var advice = SendTimeEstimator.Estimate(w.Store.Get(g.User), g.Zone, prior, Now.UtcTicks, Now.UtcTicks);
            Assert.Equal((populationHour, "population", 0.0), (advice.LocalHour, advice.Basis, advice.Observations));
        });
    }

    [Fact]
    public void A_habit_kept_across_daylight_saving_stays_one_local_hour()
    {
        using var w = new TestWorld(now: Now);
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        for (var m = 0; m < 12; m++)
        {
            // 09:20 local every month of the last year: 08:20 UTC in summer, 09:20 UTC in winter.
            var local = new DateTime(2025, 6, 10, 9, 20, 0).AddMonths(m);
            w.Track("commuter", EventTypes.EmailOpen, at: new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, london), TimeSpan.Zero), campaign: $"m{m}");
        }

        var advice = SendTimeEstimator.Estimate(w.Store.Get("commuter"), london, SendTimePrior.Default, Now.UtcTicks, Now.UtcTicks);

        Assert.Equal(9, advice.LocalHour);
        Assert.Equal("Europe/London", advice.TimeZone);
        Assert.Equal(new DateTimeOffset(2026, 6, 2, 8, 0, 0, TimeSpan.Zero).UtcTicks, advice.SendAtTicks); // 09:00 BST tomorrow
    }

    [Fact]
    public void A_night_owl_is_never_sent_to_inside_quiet_hours()
    {
        using var w = new TestWorld(now: Now);
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        for (var d = 1; d <= 20; d++)
        {
            w.Track("owl", EventTypes.EmailOpen, at: new DateTimeOffset(2026, 5, 31, 22, 10, 0, TimeSpan.Zero).AddDays(-d), campaign: $"n{d}"); // 23:10 BST
        }

        var quiet = new Core.Catalog.QuietHours(21 * 60, 8 * 60);
        var free = SendTimeEstimator.Estimate(w.Store.Get("owl"), london, SendTimePrior.Default, Now.UtcTicks, Now.UtcTicks);
        var polite = SendTimeEstimator.Estimate(w.Store.Get("owl"), london, SendTimePrior.Default, Now.UtcTicks, Now.UtcTicks, quiet);

        Assert.Equal(23, free.LocalHour);
        Assert.False(quiet.Contains(polite.LocalHour * 60), $"{polite.LocalHour}:00 is inside quiet hours");
        Assert.Equal(10, polite.LocalHour); // the habit is all inside quiet hours: the population's best allowed hour
    }

    [Theory]
    [InlineData("2026-03-08T00:00:00Z", "2026-03-08T13:00:00Z")] // 19:00 EST the day before clocks go forward: 09:00 EDT is 13:00 UTC
    [InlineData("2026-03-07T13:00:00Z", "2026-03-07T14:00:00Z")] // 08:00 EST: 09:00 EST the same day
    [InlineData("2026-03-07T14:00:00Z", "2026-03-07T14:00:00Z")] // exactly 09:00 EST: now
    [InlineData("2026-03-07T14:30:00Z", "2026-03-08T13:00:00Z")] // 09:30 EST: tomorrow, after the change
    public void Send_at_is_the_next_start_of_the_best_hour_in_local_time_across_the_clock_change(string earliest, string expected)
    {
        var newYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        var prior = new SendTimePrior([.. Enumerable.Range(0, 24).Select(h => h == 9 ? 1000.0 : 1.0)], 1000);
        var at = DateTimeOffset.Parse(earliest, System.Globalization.CultureInfo.InvariantCulture);

        var advice = SendTimeEstimator.Estimate(null, newYork, prior, at.UtcTicks, at.UtcTicks);

        Assert.Equal(9, advice.LocalHour);
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), new DateTimeOffset(advice.SendAtTicks, TimeSpan.Zero));
    }

    [Fact]
    public void An_email_batch_returns_each_users_send_time_and_a_web_batch_none()
    {
        using var w = new TestWorld(now: Now);
        w.Ingestion.SetTraits("reader", new Dictionary<string, object?> { ["time_zone"] = "Asia/Tokyo" }, "crm", AttributeLayer.ZeroParty, null);
        for (var d = 1; d <= 10; d++)
        {
            w.Track("reader", EventTypes.EmailOpen, at: new DateTimeOffset(2026, 5, 31 - (d * 2), 11, 15, 0, TimeSpan.Zero), campaign: $"c{d}"); // 20:15 in Tokyo
        }

        var email = w.Engine.DecideBatch(["reader", "nobody-known"], new RequestContext(Channel: "email"), Now, explain: false).ToList();
        var web = w.Engine.DecideBatch(["reader"], new RequestContext(), Now, explain: false).ToList();

        var advice = email[0].SendTime;
        Assert.NotNull(advice);
        Assert.Equal((20, "Asia/Tokyo", "profile"), (advice.LocalHour, advice.TimeZone, advice.Basis));
        Assert.Equal(new DateTimeOffset(2026, 6, 2, 11, 0, 0, TimeSpan.Zero).UtcTicks, advice.SendAtTicks); // it is 21:00 in Tokyo: 20:00 there tomorrow
        Assert.Equal("population", email[1].SendTime!.Basis);
        Assert.Null(web[0].SendTime);
    }

    [Fact]
    public void The_population_prior_reads_no_one_who_withdrew_personalization_consent()
    {
        // Regression: the prior read every profile's opens, so 60 users who withdrew consent and open at 03:00 moved the
        // population's best hour — and with it the send time of everyone with little history of their own.
        using var w = new TestWorld(now: Now);
        for (var u = 0; u < 70; u++)
        {
            var (user, hour) = u < 10 ? ($"yes-{u}", 10) : ($"no-{u}", 3);
            for (var day = 1; day <= 5; day++)
            {
                w.Track(user, EventTypes.EmailOpen, at: new DateTimeOffset(Now.Date.AddDays(-day).AddHours(hour), TimeSpan.Zero), campaign: $"c{day}");
            }

            if (u >= 10)
            {
                w.Ingestion.RecordConsent(user, ConsentPurpose.Personalization, granted: false, "banner", null);
            }
        }

        var prior = w.Get<Core.Application.Decisions.SendTimePriorProvider>().Current;

        Assert.Equal(10, prior.Users);
        Assert.Equal(10, prior.Shares.Select((share, hour) => (share, hour)).MaxBy(s => s.share).hour);
    }

    [Fact]
    public void A_best_hour_in_the_repeated_autumn_hour_is_its_second_pass_not_the_next_day()
    {
        // Regression (review): at 01:30 BST on the night the clocks go back, a best hour of 01:00 was sent the next
        // day, although the clock reads 01:00 again (GMT) thirty minutes later.
        var sums = new double[24];
        sums[1] = 1000;
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        var now = new DateTimeOffset(2026, 10, 25, 0, 30, 0, TimeSpan.Zero).UtcTicks;

        var advice = SendTimeEstimator.Estimate(null, london, new SendTimePrior(sums, 1000), now, now);

        Assert.Equal(new DateTimeOffset(2026, 10, 25, 1, 0, 0, TimeSpan.Zero), new DateTimeOffset(advice.SendAtTicks, TimeSpan.Zero));
    }
}
