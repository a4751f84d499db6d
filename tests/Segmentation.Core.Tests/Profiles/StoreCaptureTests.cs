using Segmentation.Core.Profiles;

namespace Segmentation.Core.Tests.Profiles;

/// <summary>
/// A capture of the in-memory store (<see cref="InMemoryProfileStore.BeginCapture"/>) is the store as it was when it
/// began, however the writes between its start and its reading interleave with the reading; and the store's count of
/// profiles follows every kind of write.
/// </summary>
public sealed class StoreCaptureTests
{
    private static Profile Write(Profile p, long version) => p with { Version = version }; // a new instance each time

    private static InMemoryProfileStore StoreOf(int users)
    {
        var store = new InMemoryProfileStore();
        for (var i = 0; i < users; i++)
        {
            store.Update($"u{i}", Write);
        }

        return store;
    }

    private static void AssertSameProfiles(List<Profile> expected, Profile[] taken)
    {
        Assert.Equal(taken.Length, taken.Distinct(ReferenceEqualityComparer.Instance).Count()); // each once
        Assert.Equal(expected.Count, taken.Length);
        var set = new HashSet<Profile>(taken, ReferenceEqualityComparer.Instance);
        Assert.All(expected, p => Assert.Contains(p, set));
    }

    [Fact]
    public void Writes_between_the_start_and_the_reading_leave_the_capture_as_the_store_was()
    {
        var store = StoreOf(6);
        var before = store.Snapshot().ToList();
        var capture = store.BeginCapture();

        store.Update("u0", Write);                                      // replaced
        store.Update("u0", Write);                                      // replaced again
        store.Update("new", Write);                                     // created after the start
        store.Merge("u1", "u2", (into, from, v) => into with { Version = v });
        store.Remove("u3");                                             // erased
        store.Merge("u4", "fresh", (into, from, v) => (from ?? into) with { UserId = "fresh", Version = v }); // merged into a new key

        AssertSameProfiles(before, capture.Take());

        // Ended: writes no longer keep anything for it, and the next capture is the store as it is now.
        store.Update("u5", Write);
        var now = store.Snapshot().ToList();
        AssertSameProfiles(now, store.BeginCapture().Take());
        Assert.Throws<InvalidOperationException>(() => capture.Take());
    }

    [Fact]
    public void A_capture_disposed_unread_ends_and_keeps_nothing()
    {
        var store = StoreOf(3);
        var capture = store.BeginCapture();
        capture.Dispose();
        store.Update("u0", Write);

        AssertSameProfiles(store.Snapshot().ToList(), store.BeginCapture().Take()); // a new one may begin: the first ended
        Assert.Throws<InvalidOperationException>(() => capture.Take());
    }

    [Fact]
    public void One_capture_at_a_time_and_a_cancelled_reading_ends_it()
    {
        var store = StoreOf(10_000);
        var capture = store.BeginCapture();
        Assert.Throws<InvalidOperationException>(() => store.BeginCapture());

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => capture.Take(cancelled.Token));

        AssertSameProfiles(store.Snapshot().ToList(), store.BeginCapture().Take());
    }

    [Fact]
    public async Task Writes_racing_the_reading_on_other_threads_never_change_what_it_returns()
    {
        const int Users = 40_000;
        for (var round = 0; round < 3; round++)
        {
            var store = StoreOf(Users);
            var before = store.Snapshot().ToList();
            var capture = store.BeginCapture();
            using var stop = new CancellationTokenSource();
            using var writing = new CountdownEvent(2);
            var writers = Enumerable.Range(0, 2).Select(w => Task.Run(() =>
            {
                var random = new Random((round * 10) + w);
                var n = 0;
                while (!stop.IsCancellationRequested || n < 2_000)
                {
                    if (n == 500)
                    {
                        writing.Signal(); // the reading starts once both writers are under way
                    }

                    var user = $"u{random.Next(Users)}";
                    switch (random.Next(10))
                    {
                        case 0:
                            store.Remove(user);
                            break;
                        case 1:
                            store.Merge(user, $"u{random.Next(Users)}", (into, from, v) => into with { Version = v });
                            break;
                        case 2:
                            store.Update($"late{w}-{n}", Write);
                            break;
                        default:
                            store.Update(user, Write);
                            break;
                    }

                    n++;
                }
            })).ToArray();

            Assert.True(writing.Wait(TimeSpan.FromSeconds(30)));
            var taken = capture.Take();
            stop.Cancel();
            await Task.WhenAll(writers);
            AssertSameProfiles(before, taken);
            Assert.Equal(store.Snapshot().Count(), store.Count);
        }
    }

    [Fact]
    public void The_count_of_profiles_follows_restores_writes_merges_links_and_erasures()
    {
        var store = new InMemoryProfileStore();
        store.Restore(new Profile("a") { Version = 3 });
        store.Restore(new Profile("a") { Version = 5 }); // held twice in a snapshot: one profile
        store.Restore(new Profile("alias") { Version = 2 });
        store.Restore(new Profile("b") { Version = 4 });
        Assert.Equal(3, store.Count);

        store.RestoreLinks("a", ["alias"]); // the copy under the alias is stale: dropped
        Assert.Equal(2, store.Count);

        store.Update("c", Write);
        store.Update("c", Write);
        Assert.Equal(3, store.Count);

        store.Merge("b", "a", (into, from, v) => into with { Version = v });
        Assert.Equal(2, store.Count);

        store.Merge("anonymous", "d", (into, from, v) => into with { Version = v }); // neither exists: the target is created
        Assert.Equal(3, store.Count);

        store.Remove("c");
        store.Remove("nobody");
        Assert.Equal(2, store.Count);
        Assert.Equal(store.Snapshot().Count(), store.Count);
    }
}
