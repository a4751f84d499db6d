using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Scriban;
using Scriban.Runtime;
using Scriban.Syntax;

namespace Segmentation.Core.Rendering;

/// <summary>Sandbox limits applied to every render.</summary>
public sealed record RenderLimits
{
    /// <summary>Maximum loop iterations per render (cumulative).</summary>
    public int LoopLimit { get; init; } = 1000;

    /// <summary>Maximum function recursion depth.</summary>
    public int RecursiveLimit { get; init; } = 16;

    /// <summary>Maximum rendered characters per variant.</summary>
    public int OutputLimit { get; init; } = 8192;

    /// <summary>Maximum wall-clock time of one variant's render; past it the render is abandoned.</summary>
    public TimeSpan TimeLimit { get; init; } = TimeSpan.FromMilliseconds(20);
}

/// <summary>
/// Renders variant templates in a sandbox: the model holds only plain script objects (no .NET
/// objects, so no member access beyond the model), there is no template loader (no file access), and
/// loops, recursion, output size and render time are capped. A failing render yields the variant's fallback text;
/// the failure is logged and counted (<c>segmentation.render.failures</c>), and the decision succeeds.
/// </summary>
public sealed class TemplateRenderer
{
    /// <summary>Meter name for rendering metrics.</summary>
    public const string MeterName = "Segmentation.Core.Rendering";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Failures = Meter.CreateCounter<long>("segmentation.render.failures", description: "Variant renders that failed and returned the fallback text");

    // One sandboxed context per thread, reset before each render: creating a TemplateContext (with its
    // builtins) costs tens of kilobytes of allocation, far more than the render itself.
    [ThreadStatic]
    private static (TemplateRenderer Owner, SandboxContext Context)? t_context;

    private readonly RenderLimits _limits;
    private readonly long _timeLimitTicks;
    private readonly ILogger _logger;
    private long _failureCount;

    /// <summary>Creates a renderer.</summary>
    public TemplateRenderer(RenderLimits? limits = null, ILogger<TemplateRenderer>? logger = null)
    {
        _limits = limits ?? new RenderLimits();
        _timeLimitTicks = (long)(_limits.TimeLimit.TotalSeconds * Stopwatch.Frequency);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Render failures since start (also exported as a metric).</summary>
    public long FailureCount => Interlocked.Read(ref _failureCount);

    /// <summary>Renders one variant against <paramref name="model"/>.</summary>
    public RenderedVariant Render(VariantTemplate variant, ScriptObject model)
    {
        if (variant.Static is { } plain)
        {
            return plain; // plain text: nothing to evaluate
        }

        var context = RentContext();
        context.StartClock(_timeLimitTicks);
        var globals = context.GlobalCount;
        context.PushGlobal(model);
        try
        {
            var text = variant.Template.Render(context);
            if (text.Length > _limits.OutputLimit)
            {
                throw new InvalidOperationException($"output of {text.Length} characters exceeds the limit of {_limits.OutputLimit}");
            }

            return new RenderedVariant(variant.Id, text.Trim(), FallbackUsed: false);
        }
        catch (Exception ex)
        {
            Interlocked.Increment(ref _failureCount);
            Failures.Add(1, new KeyValuePair<string, object?>("variant", variant.Id));
            // The exception text is not logged: it may quote values of the render model, which include PII traits.
            _logger.LogWarning("Template {VariantId} failed to render ({ErrorType}); serving its fallback text", variant.Id, ex.GetType().Name);
            return new RenderedVariant(variant.Id, variant.Fallback, FallbackUsed: true);
        }
        finally
        {
            while (context.GlobalCount > globals)
            {
                context.PopGlobal();
            }

            context.Reset();
        }
    }

    private SandboxContext RentContext()
    {
        if (t_context is { } cached && ReferenceEquals(cached.Owner, this))
        {
            return cached.Context;
        }

        var context = CreateContext();
        t_context = (this, context);
        return context;
    }

    private SandboxContext CreateContext()
    {
        var context = new SandboxContext
        {
            LoopLimit = _limits.LoopLimit,
            LoopLimitQueryable = _limits.LoopLimit,
            RecursiveLimit = _limits.RecursiveLimit,
            OutputLimit = _limits.OutputLimit,
            LimitToString = _limits.OutputLimit,
            ObjectRecursionLimit = 8,
            RegexTimeOut = TimeSpan.FromMilliseconds(50),
            EnableRelaxedMemberAccess = true,
            StrictVariables = false,
            TemplateLoader = null,
            MemberFilter = static _ => false,
        };
        return context;
    }
}

/// <summary>
/// A template context with a render-time limit: every evaluated node counts, and every 64th checks the
/// clock, so a template that stays inside the loop and recursion limits but is slow per step (large
/// string functions, deep pipelines) is still abandoned once its time is up.
/// </summary>
internal sealed class SandboxContext : TemplateContext
{
    private long _deadline;
    private int _steps;

    /// <summary>Starts the clock of one render.</summary>
    public void StartClock(long limitTicks)
    {
        _deadline = Stopwatch.GetTimestamp() + limitTicks;
        _steps = 0;
    }

    /// <inheritdoc />
    public override object? Evaluate(ScriptNode? scriptNode, bool aliasReturnedFunction)
    {
        if ((++_steps & 63) == 0 && Stopwatch.GetTimestamp() > _deadline)
        {
            throw new TimeoutException("the render exceeded its time limit");
        }

        return base.Evaluate(scriptNode, aliasReturnedFunction);
    }
}
