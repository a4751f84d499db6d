using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Limits;

public sealed class InputLimitsTests
{
    [Theory]
    [InlineData("short", 10, "short")]
    [InlineData("exactly10!", 10, "exactly10!")]
    [InlineData("eleven char", 10, "eleven ch…")]
    [InlineData("ab", 1, "…")]
    public void Bounded_text_is_at_most_the_bound_and_says_when_it_was_cut(string text, int max, string expected)
    {
        var bounded = InputLimits.Bounded(text, max);
        Assert.Equal(expected, bounded);
        Assert.True(bounded.Length <= max);
    }
}
