using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Rendering;

public class RenderingTests
{
    private static TestWorld WorldWithContent(string template, string extra = "    persona: friendly") =>
        new(TestCatalogs.Source(TestCatalogs.Segment("s", "value", "{ field: traits.score, gte: 0 }", extra)
            .Replace("template: \"content for s\"", $"template: '{template.Replace("'", "''", StringComparison.Ordinal)}'")));

    private static RenderedVariant RenderContent(TestWorld w, RequestContext? context = null)
    {
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 3d, ["first_name"] = "Ada" }, "test", AttributeLayer.ZeroParty, null);
        return w.Decide("u1", context).Variant(VariantKind.Content);
    }

    [Fact]
    public void Templates_see_profile_segment_context_and_persona()
    {
        using var w = WorldWithContent("{{ profile.traits.first_name }}|{{ segment.name }}|{{ segment.type }}|{{ context.device }}|{{ persona.tone }}|{{ profile.orders }}");

        var v = RenderContent(w, new RequestContext(Device: "mobile"));

        Assert.Equal("Ada|s|value|mobile|warm|0", v.Text);
        Assert.False(v.FallbackUsed);
        Assert.Equal("s.content", v.VariantId);
    }

    [Fact]
    public void Context_fields_read_by_templates_are_part_of_the_catalog_reads()
    {
        using var w = WorldWithContent("{{ context.country }}");
        Assert.Contains(ContextField.Country, w.Catalogs.Current.ContextFieldsRead);
        Assert.DoesNotContain(ContextField.Device, w.Catalogs.Current.ContextFieldsRead);
    }

    [Theory]
    [InlineData("{{ while true }}x{{ end }}")] // infinite loop: cut off by the loop limit
    [InlineData("{{ func f; ret f; end; f }}")] // unbounded recursion: cut off by the recursion limit
    [InlineData("{{ for i in 1..100000 }}x{{ end }}")] // huge loop
    [InlineData("{{ 'x' | string.pad_left 100000 }}")] // huge output: over the output limit
    [InlineData("{{ array.size 1 2 3 }}")] // runtime error: wrong arguments
    public void Hostile_or_failing_templates_yield_the_declared_fallback_and_are_counted(string template)
    {
        using var w = WorldWithContent(template);
        var before = w.Renderer.FailureCount;

        var v = RenderContent(w);

        Assert.True(v.FallbackUsed);
        Assert.Equal("fallback content", v.Text);
        Assert.Equal(before + 1, w.Renderer.FailureCount);
    }

    [Theory]
    [InlineData("{{ include '/etc/passwd' }}")] // file system
    [InlineData("{{ import 'System.Environment' }}")] // .NET types
    [InlineData("{{ environment.user }}")] // environment
    public void Templates_reaching_outside_the_model_fail_catalog_validation(string template) =>
        Assert.Throws<Core.Catalog.CatalogException>(() => WorldWithContent(template));

    [Fact]
    public void Templates_cannot_reach_dotnet_types_through_the_model()
    {
        // profile.GetType is refused at load now (the profile has no such name); through a local alias, or one level
        // deeper, the load checks do not look, and the render must still reach nothing of .NET.
        Assert.Null(TemplateCompiler.Compile("{{ profile.GetType }}", [], out _, out var refused));
        Assert.Contains("profile has no 'GetType'", Assert.Single(refused), StringComparison.Ordinal);
        using var w = WorldWithContent("[{{ p = profile; p.GetType }}{{ segment.id.GetType }}{{ profile.traits.first_name.Length }}]");

        var v = RenderContent(w);

        Assert.DoesNotContain("System", v.Text, StringComparison.Ordinal);
        Assert.Equal("[]", v.Text);
    }

    [Fact]
    public void A_render_that_stays_inside_the_loop_limit_but_runs_too_long_is_cut_off_by_the_time_limit()
    {
        // 1,000 iterations (the loop limit) of string work on 8,000-character strings (under the output limit): tens of milliseconds
        // of CPU unbounded, cut off by a 1 ms time limit well before the loop ends.
        const string Slow = "{{ n = 0; for i in 1..1000; s = 'x' | string.pad_left 4000 | string.replace ' ' 'ab'; n = n + (s | string.size); end; n }}";
        var template = TemplateCompiler.Compile(Slow, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors));
        var variant = new VariantTemplate(VariantKind.Content, "slow.content", Slow, template, "fallback", ReadsNow: false);
        var model = new Scriban.Runtime.ScriptObject();

        var unbounded = new TemplateRenderer(new RenderLimits { TimeLimit = TimeSpan.FromMinutes(1) }).Render(variant, model);
        var limited = new TemplateRenderer(new RenderLimits { TimeLimit = TimeSpan.FromMilliseconds(1) });
        var cut = limited.Render(variant, model);

        Assert.False(unbounded.FallbackUsed);
        Assert.Equal("7999000", unbounded.Text);
        Assert.True(cut.FallbackUsed);
        Assert.Equal("fallback", cut.Text);
        Assert.Equal(1, limited.FailureCount);
    }

    [Theory]
    [InlineData("Shop now", true)]
    [InlineData("  Free delivery over £50  ", true)]
    [InlineData("Hello {{ 'there' }}", false)]
    [InlineData("{%{ raw }%}", false)]
    public void Plain_text_variants_are_rendered_once_by_scriban_and_served_as_they_are(string source, bool plain)
    {
        var template = TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors));
        var variant = new VariantTemplate(VariantKind.Cta, "v", source, template, "fallback", ReadsNow: false);
        var renderer = new TemplateRenderer();

        var rendered = renderer.Render(variant, new Scriban.Runtime.ScriptObject());

        Assert.Equal(plain, variant.Static is not null);
        Assert.Equal(template.Render().Trim(), rendered.Text);
        Assert.False(rendered.FallbackUsed);
        if (plain)
        {
            Assert.Same(variant.Static, rendered);
        }
    }

    [Fact]
    public void Plain_text_past_the_output_limit_is_served_as_its_fallback_like_a_rendered_one()
    {
        var source = new string('x', 100);
        var template = TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors));
        var variant = new VariantTemplate(VariantKind.Content, "long", source, template, "fallback", ReadsNow: false);

        var rendered = new TemplateRenderer(new RenderLimits { OutputLimit = 50 }).Render(variant, new Scriban.Runtime.ScriptObject());

        Assert.Equal(("fallback", true), (rendered.Text, rendered.FallbackUsed));
    }

    [Fact]
    public void Plain_text_past_the_output_limit_in_a_decision_is_served_as_its_fallback()
    {
        // Regression: decisions answered plain text from the variant directly, so the limit (8,192 characters by
        // default) held only for templates: 65,536 characters went out in every variant and email block.
        using var w = WorldWithContent(new string('x', 9_000));

        var v = RenderContent(w);

        Assert.Equal(("fallback content", true), (v.Text, v.FallbackUsed));
    }

    [Fact]
    public void A_render_stopped_by_the_recursion_limit_leaves_nothing_behind_for_the_next_renders_on_its_thread()
    {
        // Regression: the thread's context was reset and reused after a failure, but the call depth counted before the
        // recursion limit threw was never given back: after 16 such renders every function call on the thread failed.
        var renderer = new TemplateRenderer();
        VariantTemplate Variant(string source) =>
            new(VariantKind.Content, "v", source, TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors)), "fallback", ReadsNow: false);
        var upper = Variant("{{ 'x' | string.upcase }}");
        var recursive = Variant("{{ func f; ret f; end; f }}");
        var model = new Scriban.Runtime.ScriptObject();

        // One thread (this synchronous test's) renders them all: the context is kept per thread.
        Assert.Equal("X", renderer.Render(upper, model).Text);
        for (var i = 0; i < 20; i++)
        {
            Assert.True(renderer.Render(recursive, model).FallbackUsed);
        }

        var rendered = renderer.Render(upper, model);

        Assert.Equal(("X", false), (rendered.Text, rendered.FallbackUsed));
    }

    [Fact]
    public void A_loop_left_early_over_a_filtered_list_leaves_no_count_behind_for_the_next_renders_on_its_thread()
    {
        // Regression (review): a loop over a lazy list (array.reverse, limit, offset, ...) left by 'break' never finished
        // its iterator, and Scriban's shared loop count stayed open on the thread: every later loop of any render there,
        // for any user, added to it until an unrelated render failed the loop limit and served (and cached) its fallback.
        var renderer = new TemplateRenderer();
        VariantTemplate Variant(string source) =>
            new(VariantKind.Content, "v", source, TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors)), "fallback", ReadsNow: false);
        var leftEarly = Variant("{{ for p in ([1, 2, 3] | array.reverse) }}{{ p }}{{ break }}{{ end }}");
        var busy = Variant("{{ for i in 1..600 }}{{ end }}ok");
        var model = new Scriban.Runtime.ScriptObject();

        Assert.Equal("3", renderer.Render(leftEarly, model).Text);
        for (var i = 0; i < 3; i++)
        {
            var rendered = renderer.Render(busy, model);
            Assert.Equal(("ok", false), (rendered.Text, rendered.FallbackUsed));
        }
    }

    [Fact]
    public void Regex_matches_gives_each_match_with_its_groups()
    {
        var source = "{{ for m in (regex.matches 'a1 b22 C3' '([a-z])([0-9]+)' 'i') }}{{ m[0] }}={{ m[1] }}/{{ m[2] }};{{ end }}";
        var variant = new VariantTemplate(VariantKind.Content, "v", source, TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors)), "fallback", ReadsNow: false);

        var rendered = new TemplateRenderer(new RenderLimits { TimeLimit = TimeSpan.FromMinutes(1) }).Render(variant, new Scriban.Runtime.ScriptObject()); // a cold start's compiling is not this test's concern

        Assert.Equal(("a1=a/1;b22=b/22;C3=C/3;", false), (rendered.Text, rendered.FallbackUsed));

        // A letter Scriban ignores is ignored here too (own review: it failed every render of the variant).
        var js = "{{ (regex.matches 'a1 b2' '[a-z][0-9]' 'g').size }}";
        var withG = new VariantTemplate(VariantKind.Content, "g", js, TemplateCompiler.Compile(js, [], out _, out var jsErrors) ?? throw new InvalidOperationException(string.Join("; ", jsErrors)), "fallback", ReadsNow: false);
        Assert.Equal(("2", false), (new TemplateRenderer(new RenderLimits { TimeLimit = TimeSpan.FromMinutes(1) }).Render(withG, new Scriban.Runtime.ScriptObject()) is var g ? (g.Text, g.FallbackUsed) : default));
    }

    [Fact]
    public void Regex_matches_of_many_slow_matches_stops_at_the_renders_time_limit()
    {
        // Regression (review): Scriban's regex.matches collects every match, each with a timeout of its own, inside one
        // step of the render: hundreds of matches that each backtrack for milliseconds ran for seconds past the 20 ms
        // limit, on every Decide (a render abandoned for time is not cached).
        var source = "{{ s = 'aaaaaaaaaaaaaaaaaaaa!' * 390 }}{{ m = regex.matches s '(a|aa)+c|!' }}{{ m.size }}"; // each match backtracks for about 14 ms: 5.5 s in all
        var variant = new VariantTemplate(VariantKind.Content, "v", source, TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors)), "fallback", ReadsNow: false);
        var renderer = new TemplateRenderer(new RenderLimits { TimeLimit = TimeSpan.FromMilliseconds(20) });

        var rendered = renderer.Render(variant, new Scriban.Runtime.ScriptObject());

        // Abandoned for time: unbounded, the whole call ran inside one step of the render, which then ended (fewer than
        // 64 steps) without a look at the clock and served the 390 matches' count.
        Assert.Equal(("fallback", true, true), (rendered.Text, rendered.FallbackUsed, rendered.TimedOut));
    }

    [Fact]
    public void A_decision_whose_render_ran_out_of_time_is_not_cached()
    {
        // Regression: a render abandoned for its time limit (a collector pause, a busy machine) was cached with the
        // decision, and its fallback text served until the profile, catalog or model changed.
        var source = TestCatalogs.Source(TestCatalogs.Segment("s", "value", "{ field: traits.score, gte: 0 }")
            .Replace("template: \"content for s\"", "template: '{{ for i in 1..500 }}{{ i }}{{ end }}'", StringComparison.Ordinal));
        using var w = new TestWorld(source, rendering: new RenderLimits { TimeLimit = TimeSpan.FromTicks(1) });
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 3d }, "test", AttributeLayer.ZeroParty, null);

        var decisions = Enumerable.Range(0, 3).Select(_ => w.Decide("u1")).ToList(); // a repeat is admitted to the cache

        Assert.All(decisions, d => Assert.True(d.Variant(VariantKind.Content).FallbackUsed));
        Assert.All(decisions, d => Assert.False(d.FromCache));
    }

    [Fact]
    public void A_derived_trait_in_a_template_is_as_of_the_decision_like_the_rules_read_it()
    {
        // Regression: templates printed the copy stored at the profile's last write; a one-order buyer 200 days later
        // matched rules as lapsed while the text still called them a first-time buyer.
        using var w = WorldWithContent("{{ profile.traits.lifecycle_stage }}");
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 3d }, "test", AttributeLayer.ZeroParty, null);
        w.Ingestion.Track(TestEvents.Make("buy-1", "u1", EventTypes.Purchase, w.Clock.Now.AddMinutes(-1), 20));
        Assert.Equal("first_time_buyer", w.Decide("u1").Variant(VariantKind.Content).Text);

        w.Clock.Now = w.Clock.Now.AddDays(200);
        var later = w.Decide("u1");

        Assert.Equal("lapsed", later.Variant(VariantKind.Content).Text);
    }

    [Fact]
    public void Built_ins_reached_through_a_local_name_can_neither_be_changed_nor_evaluate_text_nor_read_the_servers_clock()
    {
        // The load refuses math.x = ..., object.eval and date.now where it sees them; through a local alias it cannot,
        // and the render must hold the line (one thread's renders share the built-ins, across users).
        var renderer = new TemplateRenderer();
        VariantTemplate Variant(string source) =>
            new(VariantKind.Content, "v", source, TemplateCompiler.Compile(source, [], out _, out var errors) ?? throw new InvalidOperationException(string.Join("; ", errors)), "fallback", ReadsNow: false);
        var model = new Scriban.Runtime.ScriptObject();

        var write = renderer.Render(Variant("{{ m = math }}{{ m.stash = 'secret' }}ok"), model);
        var read = renderer.Render(Variant("[{{ math.stash }}]"), model);
        var eval = renderer.Render(Variant("[{{ o = object }}{{ o.eval '40 + 2' }}]"), model);
        var clock = renderer.Render(Variant("[{{ d = date }}{{ d.now }}]"), model);
        var utcClock = renderer.Render(Variant("[{{ d = date }}{{ d.utc_now }}]"), model); // regression (review): removed 'now' only

        Assert.True(write.FallbackUsed);
        Assert.Equal("[]", read.Text);
        Assert.DoesNotContain("42", eval.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(DateTime.Now.Year.ToString(System.Globalization.CultureInfo.InvariantCulture), clock.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(DateTime.UtcNow.Year.ToString(System.Globalization.CultureInfo.InvariantCulture), utcClock.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Templates_read_the_model_but_cannot_change_it()
    {
        using var w = WorldWithContent("{{ profile.orders = 5 }}{{ profile.orders }}");

        var v = RenderContent(w);

        Assert.True(v.FallbackUsed); // setting a member of the model fails the render
        Assert.Equal("fallback content", v.Text);
    }

    [Theory]
    [InlineData("{{ profile = 1 }}")]
    [InlineData("{{ now = 0; now }}")]
    public void A_template_that_assigns_to_a_model_name_fails_catalog_validation(string template)
    {
        var error = Assert.Throws<Core.Catalog.CatalogException>(() => WorldWithContent(template));
        Assert.Contains("part of the model", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Variables_a_template_sets_are_not_seen_by_the_next_variant()
    {
        // Before each render got a scope of its own, the five variants shared one model object, so the
        // offer printed the content's "x".
        using var w = new TestWorld(TestCatalogs.Source(TestCatalogs.Segment("s", "value", "{ field: traits.score, gte: 0 }")
            .Replace("template: \"content for s\"", "template: '{{ x = \"set by content\" }}{{ x }}'", StringComparison.Ordinal)
            .Replace("offer: \"offer for s\"", "offer: '[{{ this.x }}]'", StringComparison.Ordinal)));
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 3d }, "test", AttributeLayer.ZeroParty, null);

        var d = w.Decide("u1");

        Assert.Equal("set by content", d.Variant(VariantKind.Content).Text);
        Assert.Equal("[]", d.Variant(VariantKind.Offer).Text);
    }

    [Fact]
    public void Context_fields_read_through_this_are_part_of_the_catalog_reads()
    {
        // A template that reads the request context through "this" depends on every context field, so
        // they all belong in the decision cache's key; before, none did and a cached decision rendered for
        // one device was served to another.
        using var w = WorldWithContent("{{ this.context.device }}");

        Assert.Contains(ContextField.Device, w.Catalogs.Current.ContextFieldsRead);
        Assert.Equal("tablet", RenderContent(w, new RequestContext(Device: "tablet")).Text);
        Assert.Equal("mobile", RenderContent(w, new RequestContext(Device: "mobile")).Text);
    }

    [Fact]
    public void Only_a_template_that_reads_the_day_count_narrows_the_validity_to_the_next_day()
    {
        using var reads = WorldWithContent("{{ profile.days_since_last_order }} days");
        using var ignores = WorldWithContent("{{ profile.traits.first_name }}");
        foreach (var w in new[] { reads, ignores })
        {
            w.Ingestion.Track(new BehaviourEvent
            {
                EventId = "o1",
                Type = EventTypes.Purchase,
                UserId = "u1",
                Timestamp = w.Clock.Now.AddHours(-30),
                Context = new EventContext("web", "desktop", "s1", "checkout"),
                Value = 20,
                Currency = "GBP",
                OrderId = "o1",
                Lines = [new OrderLine("p1", null, null, 1, 20)],
            });
        }

        Assert.Equal("1 days", RenderContent(reads).Text);
        Assert.Equal("Ada", RenderContent(ignores).Text);

        Assert.Equal(reads.Clock.Now.AddHours(-30).AddDays(2).UtcTicks, reads.Decide("u1").ValidUntilTicks);
        Assert.Equal(long.MaxValue, ignores.Decide("u1").ValidUntilTicks);
    }

    [Fact]
    public void Other_variants_still_render_when_one_fails()
    {
        using var w = WorldWithContent("{{ while true }}x{{ end }}");
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 3d }, "test", AttributeLayer.ZeroParty, null);

        var d = w.Decide("u1");

        Assert.True(d.Variant(VariantKind.Content).FallbackUsed);
        Assert.Equal("offer for s", d.Variant(VariantKind.Offer).Text);
        Assert.False(d.Variant(VariantKind.Offer).FallbackUsed);
    }
}
