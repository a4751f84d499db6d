using Segmentation.Core.Application.Membership;

namespace Segmentation.Core.Tests.Application.Membership;

/// <summary>A segment's members listed page by page: every member once, in ordinal id order, whatever the page size.</summary>
public sealed class MemberPagingTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(1000)]
    [InlineData(5000)] // larger than the segment: one page
    public void Pages_concatenate_to_every_member_in_ordinal_order(int pageSize)
    {
        var index = new MembershipIndex();
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

        var listed = new List<string>();
        var after = "";
        while (true)
        {
            var page = index.Members("audience", after, pageSize);
            Assert.True(page.Count <= pageSize);
            listed.AddRange(page);
            if (page.Count < pageSize)
            {
                break;
            }

            after = page[^1];
        }

        Assert.Equal(expected, listed);
    }

    [Fact]
    public void A_token_of_a_member_who_left_continues_after_it_and_an_unknown_segment_or_empty_page_is_empty()
    {
        var index = new MembershipIndex();
        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            index.Set(id, ["audience"], 1, long.MaxValue, Now, "event", publish: false);
        }

        var first = index.Members("audience", "", 2);
        index.Set("b", [], 1, long.MaxValue, Now, "event", publish: false); // the page's last member leaves

        Assert.Equal(["a", "b"], first);
        Assert.Equal(["c", "d"], index.Members("audience", "b", 2));
        Assert.Equal(["e"], index.Members("audience", "d", 2));
        Assert.Empty(index.Members("audience", "e", 2));
        Assert.Empty(index.Members("nobody", "", 2));
        Assert.Empty(index.Members("audience", "", 0));
    }
}
