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
        using var w = WorldWithContent("[{{ profile.GetType }}{{ segment.id.GetType }}{{ profile.traits.first_name.Length }}]");

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

    [Theory]
    [InlineData("{{ profile.traits.first_name }}, {{ context.device }}", ModelParts.Profile | ModelParts.Context)]
    [InlineData("{{ segment.name }} for {{ persona.tone }}", ModelParts.Segment | ModelParts.Persona)]
    [InlineData("{{ x = profile; x.orders }}", ModelParts.Profile)]
    [InlineData("{{ now }}", ModelParts.Now)]
    [InlineData("{{ 1 + 1 }}", ModelParts.None)]
    [InlineData("{{ this.profile.orders }}", ModelParts.All)]
    public void The_compiler_tells_which_parts_of_the_model_a_template_reads(string source, ModelParts expected)
    {
        Assert.NotNull(TemplateCompiler.Compile(source, [], out _, out var parts, out var errors));
        Assert.Empty(errors);
        Assert.Equal(expected, parts);
    }

    [Fact]
    public void A_model_built_with_some_parts_renders_those_templates_as_the_whole_model_does()
    {
        using var w = WorldWithContent("{{ profile.traits.first_name }} ({{ profile.orders }}) on {{ context.device }}");
        w.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["score"] = 3d, ["first_name"] = "Ada" }, "test", AttributeLayer.ZeroParty, null);
        var context = new Core.Rules.EvalContext(w.Store.Get("u1"), new RequestContext(Device: "tablet"), w.Clock.Now.UtcTicks, w.Rfm.Current);
        var segment = w.Catalogs.Current.ById["s"];
        var variant = segment.Variants[(int)VariantKind.Content];

        var partial = w.Renderer.Render(variant, RenderModel.Build(context, segment.Subject, variant.Parts));
        var whole = w.Renderer.Render(variant, RenderModel.Build(context, segment.Subject));

        Assert.Equal(ModelParts.Profile | ModelParts.Context, variant.Parts);
        Assert.Equal(variant.Parts, segment.TemplateParts); // the other four variants are plain text
        Assert.Equal("Ada (0) on tablet", partial.Text);
        Assert.Equal(whole, partial);
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
