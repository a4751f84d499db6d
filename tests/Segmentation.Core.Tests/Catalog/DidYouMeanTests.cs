using Segmentation.Core.Catalog;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Catalog;

/// <summary>Mistyped keys, fields, traits, operators and event types are errors that suggest the likely intent.</summary>
public sealed class DidYouMeanTests
{
    private static string Error(string segment) =>
        Assert.Single(Assert.Throws<CatalogException>(() => CatalogLoader.Load(TestCatalogs.Source(segment))).Errors).Message;

    [Theory]
    [InlineData("{ field: orders.cuont, gte: 1 }", "unknown field 'orders.cuont'; did you mean 'orders.count'?")]
    [InlineData("{ field: orders.count, gtee: 1 }", "unknown key 'gtee'; did you mean 'gte'?")]
    [InlineData("{ field: traits.first_nam, eq: Ada }", "unknown trait 'first_nam'; did you mean 'first_name'?")]
    [InlineData("{ field: context.devise, eq: mobile }", "unknown context field 'devise'; did you mean 'device'?")]
    [InlineData("{ field: events.prodct_view.count, gte: 1 }", "unknown event type 'prodct_view'; did you mean 'product_view'?")]
    public void A_mistyped_name_in_a_rule_suggests_the_closest_known_one(string rule, string expected)
    {
        Assert.Contains(expected, Error(TestCatalogs.Segment("s", "value", rule)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_mistyped_segment_key_suggests_the_key_and_still_lists_them_all()
    {
        var message = Error(TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }", extra: "    prority: 5"));
        Assert.Contains("unknown key 'prority'; did you mean 'priority'?", message, StringComparison.Ordinal);
        Assert.Contains("a segment has:", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nothing_is_suggested_when_nothing_is_close()
    {
        Assert.DoesNotContain("did you mean", Error(TestCatalogs.Segment("s", "value", "{ field: zzzzzzzz, gte: 1 }")), StringComparison.Ordinal);
        Assert.Null(Suggestions.Closest("colour", ["count", "revenue"]));
        Assert.Equal("first_name", Suggestions.Closest("first_nam", ["first_name", "last_name"]));
        Assert.Null(Suggestions.Closest("gte", ["gte", "gt"])); // an exact name is not a typo
    }
}
