using Segmentation.Core.Catalog;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Rendering;

/// <summary>Template mistakes are catalog errors at load, with their place and a suggestion — never an empty string sent to customers.</summary>
public sealed class TemplateChecksTests
{
    private static readonly string[] Traits = ["first_name", "vip", "country"];

    private static IReadOnlyList<string> Errors(string template)
    {
        Assert.Null(TemplateCompiler.Compile(template, [], out _, out var errors, Traits));
        return errors;
    }

    [Theory]
    [InlineData("Hi {{ profile.traits.first_nam }}", "template line 1, column 22: unknown trait 'first_nam'; did you mean 'first_name'?")]
    [InlineData("Hi {{ profile.frist_name }}", "profile has no 'frist_name'; did you mean 'profile.traits.first_name'?")]
    [InlineData("{{ profile.ordrs }} orders", "profile has no 'ordrs'; did you mean 'orders'?")]
    [InlineData("Hello\n  {{ segment.nmae }}", "template line 2, column 14: segment has no 'nmae'; did you mean 'name'?")]
    [InlineData("{{ profile.rfm.recncy }}", "profile.rfm has no 'recncy'; did you mean 'recency'?")]
    [InlineData("{{ profle.orders }}", "template reads unknown variable 'profle'; did you mean 'profile'?")]
    [InlineData("Hi {{ profile.traits[\"frist_name\"] }}", "unknown trait 'frist_name'; did you mean 'first_name'?")]
    public void A_mistyped_name_is_an_error_with_its_place_and_a_suggestion(string template, string expected)
    {
        Assert.Contains(Errors(template), e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{{ math.stash = profile.traits.first_name }}", "assigns to a member of the built-in object 'math'")] // read by the thread's next render: another user's
    [InlineData("{{ date.format = '%d/%m' }}{{ now }}", "assigns to a member of the built-in object 'date'")] // changed every later render's dates on the thread
    [InlineData("{{ string['x'] = 1 }}", "assigns to a member of the built-in object 'string'")]
    [InlineData("{{ persona.tone | object.eval_template }}", "object.eval_template evaluates text at render time")] // reads unknown at load: a cached decision served to another context
    [InlineData("{{ object.eval 'context.country' }}", "object.eval evaluates text at render time")]
    [InlineData("{{ date.now.year }}", "date.now is the server's clock; use 'now'")] // a batch's frozen time or a preview's timestamp ignored
    [InlineData("{{ date.utc_now.year }}", "date.utc_now is the server's clock; use 'now'")] // the same clock in UTC (review)
    public void What_a_template_may_not_do_is_an_error_at_load(string template, string expected)
    {
        Assert.Contains(Errors(template), e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void The_model_read_through_this_counts_as_reading_the_time_and_every_context_field()
    {
        var reads = new HashSet<ContextField>();
        Assert.NotNull(TemplateCompiler.Compile("{{ this.now }} {{ this.context.country }}", reads, out var readsNow, out var errors, Traits));

        Assert.Empty(errors);
        Assert.True(readsNow); // a decision showing it is not cached (it showed a stale time)
        Assert.Contains(ContextField.Country, reads);
    }

    [Fact]
    public void Liquid_tags_are_rejected_with_an_error_that_says_so()
    {
        var error = Assert.Single(Errors("Hello{% if profile.traits.vip %} VIP{% endif %}"));
        Assert.Contains("template line 1, column 6: Liquid tags", error, StringComparison.Ordinal);
        Assert.Contains("{{ if x }}", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{%{ not a tag }%} text", null)] // Scriban's escape block
    [InlineData("a {% tag %}", 2)]
    [InlineData("{%}%} {% x %}", 0)] // an end after a brace is no end: the first start still has one later
    [InlineData("{% never closed", null)]
    [InlineData("{%%}", 0)]
    [InlineData("x {%{ y }%} then {% z %}", 17)] // the first start that is no escape block
    public void A_liquid_tag_is_found_as_the_pattern_found_it(string source, int? expected)
    {
        Assert.Equal(expected, TemplateCompiler.LiquidTag(source));
        Assert.Equal(expected, System.Text.RegularExpressions.Regex.Match(source, @"\{%(?!\{).*?(?<!\})%\}", System.Text.RegularExpressions.RegexOptions.Singleline) is { Success: true } m ? m.Index : null);
    }

    [Fact]
    public void A_template_of_many_unclosed_liquid_starts_is_checked_without_a_timeout()
    {
        // Regression (review): the lazy pattern scanned to the end from every '{%': 65,536 characters of '{%a' took past
        // its 1 s timeout, and the RegexMatchTimeoutException escaped the catalog's compile (a publish answered INTERNAL).
        var source = string.Concat(Enumerable.Repeat("{%a", 65_536 / 3));

        Assert.Null(TemplateCompiler.LiquidTag(source));
        TemplateCompiler.Compile(source, new HashSet<ContextField>(), out _, out _, Traits); // compiles or refuses, never throws
    }

    [Fact]
    public void Correct_names_local_variables_and_loops_pass()
    {
        foreach (var template in new[]
        {
            "Hi {{ profile.traits.first_name }}, {{ profile.orders }} orders, RFM {{ profile.rfm.recency }}",
            "{{ for p in profile.top_products }}{{ p.name }} {{ end }}{{ segment.name }} {{ persona.tone }}",
            "{{ x = profile.last_purchase }}{{ x.days_ago }} days",
            "{{ context.device }} at {{ now }}",
        })
        {
            Assert.NotNull(TemplateCompiler.Compile(template, new HashSet<ContextField>(), out _, out var errors, Traits));
            Assert.Empty(errors);
        }
    }

    [Fact]
    public void In_a_catalog_the_error_names_file_line_segment_and_clause()
    {
        var segment = TestCatalogs.Segment("s", "value", "{ field: orders.count, gte: 1 }").Replace("\"content for s\"", "\"Hi {{ profile.traits.first_nam }}\"", StringComparison.Ordinal);
        var error = Assert.Single(Assert.Throws<CatalogException>(() => CatalogLoader.Load(TestCatalogs.Source(segment))).Errors);
        Assert.Equal(("segments.yaml", "s", "personalization.content.template"), (error.File, error.Segment, error.Clause));
        Assert.True(error.Line > 1);
        Assert.Contains("did you mean 'first_name'?", error.Message, StringComparison.Ordinal);
    }
}
