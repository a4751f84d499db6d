using Segmentation.Core.Application.Membership;

namespace Segmentation.Core.Tests.Application.Membership;

/// <summary>A segment's members listed page by page: every member once, in ordinal id order, whatever the page size.</summary>
public sealed class MemberPagingTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(1, false)]
    [InlineData(7, false)]
    [InlineData(1000, false)]
    [InlineData(5000, false)] // larger than the segment: one page
    [InlineData(1, true)]
    [InlineData(7, true)]
    [InlineData(1000, true)]
    [InlineData(5000, true)]
    public async Task Pages_concatenate_to_every_member_in_ordinal_order(int pageSize, bool fromListing)
    {
        var index = Index(fromListing);
        var random = new Random(11);
        var expected = new List<string>();
        for (var i = 0; i < 3000; i++)
        {
            // Ids whose ordinal order differs from culture order and from insertion order.
            var id = (i % 4) switch { 0 => $"U{random.Next():x}", 1 => $"u{random.Next():x}", 2 => $"é{i}", _ => $"u-{i:D5}" };
            index.Set(id, i % 10 == 0 ? ["audience", "other"] : ["audience"], 1, long.MaxValue, Now, "event", publish: false);
            expected.Add(id);
        }

        index.Set("outsider", ["other"], 1, long.MaxValue, Now, "event", publish: false);
        expected.Sort(StringComparer.Ordinal);
        if (fromListing)
        {
            await index.PrepareListing("audience");
            Assert.True(index.IsListed("audience"));
        }

        Assert.Equal(expected, ListAll(index, pageSize));
    }

    [Fact]
    public async Task A_listed_segment_pages_the_members_after_each_change()
    {
        var index = new MembershipIndex();
        var members = new SortedSet<string>(StringComparer.Ordinal);
        var random = new Random(5);
        for (var i = 0; i < 500; i++)
        {
            Join(index, members, $"u{i:D4}");
        }

        await index.PrepareListing("audience");
        for (var step = 0; step < 300; step++)
        {
            var id = $"u{random.Next(700):D4}";
            if (members.Contains(id))
            {
                Leave(index, members, id);
            }
            else
            {
                Join(index, members, id);
            }

            Assert.Equal(members.Count, index.Count("audience"));
            if (step % 30 == 0)
            {
                Assert.Equal(members, ListAll(index, 37));
            }
        }

        Assert.True(index.IsListed("audience"));
        Assert.Equal(members, ListAll(index, 37));
    }

    [Fact]
    public async Task Changes_made_while_the_listing_is_built_are_in_it()
    {
        // Two writers (each owning its users, as each user's writes are serialized) join and leave while the listing
        // of a large segment is built; once it is ready and they stop, pages list exactly the members.
        var changes = new int[2];
        var waited = 0;
        var index = new MembershipIndex
        {
            Listings = new()
            {
                MinLogBeforeAbandoning = int.MaxValue, // this test is about the replay of what changed, not about giving up
                // After the build copied the members: both writers make a thousand more changes that only its log can carry
                // (a wait for their progress, not for time, so a loaded machine cannot make the build miss them).
                AfterCopy = () =>
                {
                    var (first, second) = (Volatile.Read(ref changes[0]), Volatile.Read(ref changes[1]));
                    SpinWait.SpinUntil(() => Volatile.Read(ref changes[0]) >= first + 1000 && Volatile.Read(ref changes[1]) >= second + 1000);
                    Interlocked.Increment(ref waited);
                },
            },
        };
        for (var i = 0; i < 100_000; i++)
        {
            index.Set($"base{i:D6}", ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        }

        var finals = new SortedSet<string>[2];
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => Task.Factory.StartNew(() =>
        {
            var mine = new SortedSet<string>(StringComparer.Ordinal);
            var random = new Random(w);
            while (!stop.IsCancellationRequested)
            {
                // New users, and the first thousand base users leaving and coming back.
                var id = random.Next(3) == 0 ? $"base{random.Next(1000) * 2 + w:D6}" : $"w{w}-{random.Next(20_000):D5}";
                var isMember = id.StartsWith("base", StringComparison.Ordinal) ? !mine.Contains("-" + id) : mine.Contains(id);
                index.Set(id, isMember ? [] : ["audience"], 1, long.MaxValue, Now, "event", publish: false);
                Track(mine, id, joined: !isMember);
                Interlocked.Increment(ref changes[w]);
            }

            finals[w] = mine;
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray(); // their own threads: the build runs on the pool

        while (Volatile.Read(ref changes[0]) < 1000 || Volatile.Read(ref changes[1]) < 1000)
        {
            await Task.Delay(1); // both writers under way
        }

        await index.PrepareListing("audience");
        await Task.Delay(50);
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        var expected = new SortedSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 100_000; i++)
        {
            expected.Add($"base{i:D6}");
        }

        foreach (var mine in finals)
        {
            foreach (var entry in mine)
            {
                if (entry.StartsWith('-'))
                {
                    expected.Remove(entry[1..]); // a base user whose last change was leaving
                }
                else
                {
                    expected.Add(entry);
                }
            }
        }

        Assert.Equal(1, waited); // changes were made after the copy, while the listing was built
        Assert.True(index.IsListed("audience"));
        Assert.Equal(expected.Count, index.Count("audience"));
        Assert.Equal(expected, ListAll(index, 1000));
    }

    [Fact]
    public async Task A_listing_not_paged_within_the_idle_timeout_is_dropped_at_the_next_change_and_built_again()
    {
        var index = new MembershipIndex { Listings = new() { IdleTimeout = TimeSpan.Zero } };
        var members = new SortedSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 50; i++)
        {
            Join(index, members, $"u{i:D2}");
        }

        await index.PrepareListing("audience");
        Assert.True(index.IsListed("audience"));
        await Task.Delay(30); // past the timeout on a coarse clock

        Join(index, members, "u99");
        Assert.False(index.IsListed("audience"));
        Assert.Equal(members, ListAll(index, 7)); // by a pass over the members, and the listing is being built again

        await index.PrepareListing("audience");
        Assert.True(index.IsListed("audience"));
        Assert.Equal(members, ListAll(index, 7));
    }

    [Fact]
    public async Task The_sweep_drops_a_listing_not_paged_within_the_idle_timeout_though_its_segment_no_longer_changes()
    {
        var idle = new MembershipIndex { Listings = new() { IdleTimeout = TimeSpan.Zero } };
        var kept = new MembershipIndex();
        var members = new SortedSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 50; i++)
        {
            Join(idle, members, $"u{i:D2}");
            kept.Set($"u{i:D2}", ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        }

        await idle.PrepareListing("audience");
        await kept.PrepareListing("audience");
        await Task.Delay(30); // past the zero timeout on a coarse clock

        Assert.Equal(1, idle.DropIdleListings());
        Assert.False(idle.IsListed("audience"));
        Assert.Equal(0, idle.DropIdleListings()); // nothing left to drop
        Assert.Equal(members, ListAll(idle, 7)); // by a pass over the members, and the listing is being built again

        Assert.Equal(0, kept.DropIdleListings()); // paged within ten minutes: kept
        Assert.True(kept.IsListed("audience"));
    }

    // Pages from the ordered listing once it is built, or always by a pass over the members.
    private static MembershipIndex Index(bool fromListing) => new() { Listings = new() { Enabled = fromListing } };

    private static List<string> ListAll(MembershipIndex index, int pageSize)
    {
        var listed = new List<string>();
        var after = "";
        while (true)
        {
            var page = index.Members("audience", after, pageSize);
            Assert.True(page.Count <= pageSize);
            listed.AddRange(page);
            if (page.Count < pageSize)
            {
                return listed;
            }

            after = page[^1];
        }
    }

    private static void Join(MembershipIndex index, SortedSet<string> members, string id)
    {
        index.Set(id, ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        members.Add(id);
    }

    private static void Leave(MembershipIndex index, SortedSet<string> members, string id)
    {
        index.Set(id, [], 1, long.MaxValue, Now, "event", publish: false);
        members.Remove(id);
    }

    // A writer's own record of its users: members by id; a base user who left as "-" + id.
    private static void Track(SortedSet<string> mine, string id, bool joined)
    {
        if (!id.StartsWith("base", StringComparison.Ordinal))
        {
            if (joined)
            {
                mine.Add(id);
            }
            else
            {
                mine.Remove(id);
            }
        }
        else if (joined)
        {
            mine.Remove("-" + id);
        }
        else
        {
            mine.Add("-" + id);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_token_of_a_member_who_left_continues_after_it_and_an_unknown_segment_or_empty_page_is_empty(bool fromListing)
    {
        var index = Index(fromListing);
        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            index.Set(id, ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        }

        if (fromListing)
        {
            await index.PrepareListing("audience");
        }

        var first = index.Members("audience", "", 2);
        index.Set("b", [], 1, long.MaxValue, Now, "event", publish: false); // the page's last member leaves

        Assert.Equal(["a", "b"], first);
        Assert.Equal(["c", "d"], index.Members("audience", "b", 2));
        Assert.Equal(["e"], index.Members("audience", "d", 2));
        Assert.Empty(index.Members("audience", "e", 2));
        Assert.Empty(index.Members("nobody", "", 2));
        Assert.Empty(index.Members("audience", "", 0));
        Assert.Equal(fromListing, index.IsListed("audience"));
    }

    [Fact]
    public async Task Joins_and_leaves_made_between_the_copy_and_the_replay_are_in_the_listing()
    {
        MembershipIndex index = null!;
        index = new MembershipIndex
        {
            Listings = new()
            {
                // Runs inside the build, after it copied the members: these changes are only in its log.
                AfterCopy = () =>
                {
                    index.Set("joined", ["audience"], 1, long.MaxValue, Now, "event", publish: false);
                    index.Set("u03", [], 1, long.MaxValue, Now, "event", publish: false);
                    index.Set("u05", [], 1, long.MaxValue, Now, "event", publish: false);
                    index.Set("u05", ["audience"], 1, long.MaxValue, Now, "event", publish: false); // left and came back
                },
            },
        };
        for (var i = 0; i < 8; i++)
        {
            index.Set($"u{i:D2}", ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        }

        await index.PrepareListing("audience");

        Assert.True(index.IsListed("audience"));
        Assert.Equal(["joined", "u00", "u01", "u02", "u04", "u05", "u06", "u07"], ListAll(index, 3));
    }

    [Fact]
    public async Task A_build_whose_log_outgrows_the_segment_is_abandoned_and_tried_again_only_after_a_while()
    {
        var retry = TimeSpan.FromHours(1);
        MembershipIndex index = null!;
        index = new MembershipIndex
        {
            Listings = new()
            {
                MinLogBeforeAbandoning = 0,
                RetryAfterFailure = retry,
                AfterCopy = () =>
                {
                    for (var i = 0; i < 6; i++)
                    {
                        // Twelve changes waiting for a build of a segment of four or five members.
                        index.Set($"late{i}", ["audience"], 1, long.MaxValue, Now, "event", publish: false);
                        index.Set($"late{i}", [], 1, long.MaxValue, Now, "event", publish: false);
                    }
                },
            },
        };
        for (var i = 0; i < 4; i++)
        {
            index.Set($"u{i}", ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        }

        await index.PrepareListing("audience");
        Assert.False(index.IsListed("audience"));
        Assert.Equal(["u0", "u1", "u2", "u3"], ListAll(index, 3)); // by the pass

        await index.PrepareListing("audience"); // within the retry delay: no new build
        Assert.False(index.IsListed("audience"));
    }
}
