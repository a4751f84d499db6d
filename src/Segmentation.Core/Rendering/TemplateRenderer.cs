using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Scriban;
using Scriban.Runtime;
using Scriban.Parsing;
using Scriban.Syntax;

namespace Segmentation.Core.Rendering;

/// <summary>Sandbox limits applied to every render.</summary>
public sealed record RenderLimits
{
    /// <summary>Maximum iterations of each loop of a render (Scriban counts per loop; the time limit bounds a render's loops together).</summary>
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
    /// <summary>Where templates' <c>profile.related</c> comes from (the service's product relations); none: an empty list.</summary>
    public IRelatedProducts? Products { get; set; }

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
    private readonly Validation.RepeatedLogLimit _failureLog = new(perMinute: 5); // per variant: a template failing on every call is logged five times a minute
    private long _failureCount;

    /// <summary>Creates a renderer.</summary>
    public TemplateRenderer(RenderLimits? limits = null, ILogger<TemplateRenderer>? logger = null)
    {
        _limits = limits ?? new RenderLimits();
        _timeLimitTicks = (long)(_limits.TimeLimit.TotalSeconds * Stopwatch.Frequency);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    // A failed render: counted, logged by the kind of failure only, and answered with the variant's fallback text.
    private RenderedVariant Failed(VariantTemplate variant, string errorType, bool timedOut = false)
    {
        Interlocked.Increment(ref _failureCount);
        Failures.Add(1, new KeyValuePair<string, object?>("variant", variant.Id));
        if (_failureLog.ShouldLog(typeof(RenderedVariant), variant.Id, out var suppressed))
        {
            _logger.LogWarning("Template {VariantId} failed to render ({ErrorType}); serving its fallback text ({Suppressed} more failures of it in the last minute not logged)", variant.Id, errorType, suppressed);
        }

        return new RenderedVariant(variant.Id, variant.Fallback, FallbackUsed: true) { TimedOut = timedOut };
    }

    /// <summary>
    /// A plain-text variant's answer without a render model (null for a template): its text, or past the output limit
    /// its fallback like a rendered text.
    /// </summary>
    public RenderedVariant? Plain(VariantTemplate variant)
    {
        ArgumentNullException.ThrowIfNull(variant);
        return variant.Static is not { } plain ? null
            : plain.Text.Length <= _limits.OutputLimit ? plain
            : Failed(variant, nameof(RenderLimits.OutputLimit));
    }

    /// <summary>Render failures since start (also exported as a metric).</summary>
    public long FailureCount => Interlocked.Read(ref _failureCount);

    /// <summary>
    /// Renders one variant against <paramref name="model"/>. The model's names are read-only to the template;
    /// what the template assigns lives in a scope of its own that ends with the render, so nothing one variant
    /// sets is seen by the next.
    /// </summary>
    public RenderedVariant Render(VariantTemplate variant, IScriptObject model)
    {
        if (Plain(variant) is { } plain)
        {
            return plain;
        }

        var context = RentContext();
        context.StartClock(_timeLimitTicks);
        var globals = context.GlobalCount;
        context.Scope.Open(model);
        context.PushGlobal(context.Scope);
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
            // The thread's context is not used again after a failure that can leave state behind a reset does not clear
            // (a recursion limit's call depth, counted before the limit throws, is never given back — 16 such failures
            // and every function call on the thread failed). Not after a timeout, which leaves none: a busy machine
            // would otherwise build a context (tens of kilobytes) for every render it abandons.
            var timedOut = TimedOut(ex);
            if (!timedOut)
            {
                t_context = null;
            }

            // The exception text is not logged: it may quote values of the render model, which include PII traits.
            return Failed(variant, ex.GetType().Name, timedOut);
        }
        finally
        {
            while (context.GlobalCount > globals)
            {
                context.PopGlobal();
            }

            context.Scope.Close();
            context.Reset();
        }
    }

    // Abandoned for time, however Scriban wrapped it (a regular expression's timeout surfaces inside its runtime error).
    private static bool TimedOut(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is TimeoutException or System.Text.RegularExpressions.RegexMatchTimeoutException)
            {
                return true;
            }
        }

        return false;
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
            RegexTimeOut = _limits.TimeLimit > TimeSpan.FromMilliseconds(1) ? _limits.TimeLimit : TimeSpan.FromMilliseconds(1), // no expression outlasts the render
            EnableRelaxedMemberAccess = true,
            StrictVariables = false,
            TemplateLoader = null,
            MemberFilter = static _ => false,
        };

        // The built-in objects live as long as the thread's context, across renders and users: none may be changed (a
        // value set on one would reach the next render, another user's), and none may evaluate text at render time or
        // read the server's clock. The load refuses these where it sees them; this holds wherever it cannot (a built-in
        // reached through a local name, 'with').
        var builtins = context.BuiltinObject;
        foreach (var name in builtins.Keys.ToList())
        {
            if (builtins[name] is ScriptObject functions)
            {
                if (name == "object")
                {
                    functions.Remove("eval");
                    functions.Remove("eval_template");
                }
                else if (name == "date")
                {
                    functions.Remove("now");
                    functions.Remove("utc_now");
                }
                else if (name == "regex")
                {
                    // Scriban's matches collects every match, each with a timeout of its own: hundreds of slow matches ran
                    // for seconds inside one step of the render, past its clock. This one stops at the render's deadline.
                    functions.Remove("matches");
                    functions.Import("matches", (Func<TemplateContext, string, string, string?, ScriptArray>)SandboxContext.Matches);
                }

                functions.IsReadOnly = true;
            }

            builtins.SetReadOnly(name, true);
        }

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

    /// <summary>The scope of one render: the model, read-only, and the template's own variables.</summary>
    public RenderScope Scope { get; } = new();

    /// <summary>Starts the clock of one render, and its loop count from zero.</summary>
    public void StartClock(long limitTicks)
    {
        _deadline = Stopwatch.GetTimestamp() + limitTicks;
        _steps = 0;

        // Scriban counts the steps of a loop and everything nested in it together, and zeroes the count when the
        // outermost loop ends. A loop over a lazy list (array.reverse, limit, offset, ...) left by 'break' or abandoned
        // for time never ends its iterator, and Reset clears neither: the count would run on into the thread's next
        // renders, other users', until one failed the loop limit.
        LoopDepth(this) = 0;
        LoopStep(this) = 0;
    }

    /// <summary>
    /// regex.matches within the render's time: every match of <paramref name="pattern"/> in <paramref name="text"/>,
    /// each as the list of its groups' values; the clock is checked between matches, and a match may take no longer
    /// than the render has left.
    /// </summary>
    public static ScriptArray Matches(TemplateContext context, string text, string pattern, string? options = null)
    {
        var sandbox = (SandboxContext)context;
        var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), sandbox._deadline);
        var regex = new Regex(pattern ?? "", Options(options), left > TimeSpan.FromMilliseconds(1) ? left : TimeSpan.FromMilliseconds(1));
        var matches = new ScriptArray();
        for (var match = regex.Match(text ?? ""); match.Success; match = match.NextMatch())
        {
            sandbox.ThrowIfPastDeadline();
            var groups = new ScriptArray();
            foreach (Group group in match.Groups)
            {
                groups.Add(group.Value);
            }

            matches.Add(groups);
        }

        return matches;
    }

    // Scriban's option letters: i (ignore case), m (multiline), s (single line), x (ignore pattern whitespace); others are
    // ignored, as Scriban's own regex functions ignore them ('g', a habit from JavaScript).
    private static RegexOptions Options(string? letters)
    {
        var options = RegexOptions.None;
        foreach (var c in letters ?? "")
        {
            options |= c switch
            {
                'i' => RegexOptions.IgnoreCase,
                'm' => RegexOptions.Multiline,
                's' => RegexOptions.Singleline,
                'x' => RegexOptions.IgnorePatternWhitespace,
                _ => RegexOptions.None,
            };
        }

        return options;
    }

    private void ThrowIfPastDeadline()
    {
        if (Stopwatch.GetTimestamp() > _deadline)
        {
            throw new TimeoutException("the render exceeded its time limit");
        }
    }

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_loopDepth")]
    private static extern ref int LoopDepth(TemplateContext context);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_loopStep")]
    private static extern ref long LoopStep(TemplateContext context);

    /// <inheritdoc />
    public override object? Evaluate(ScriptNode? scriptNode, bool aliasReturnedFunction)
    {
        if ((++_steps & 63) == 0)
        {
            ThrowIfPastDeadline();
        }

        return base.Evaluate(scriptNode, aliasReturnedFunction);
    }
}

/// <summary>
/// The global scope of one render: reads see the model first, then the template's own variables; writes
/// go to the template's variables and may not replace a model name. Reused by a thread's renders: closing
/// it forgets the model and every variable the template set.
/// </summary>
internal sealed class RenderScope : IScriptObject
{
    private readonly ScriptObject _variables = new();
    private IScriptObject _model = EmptyModel;

    private static readonly ScriptObject EmptyModel = new() { IsReadOnly = true };

    public int Count => _model.Count + _variables.Count;

    public bool IsReadOnly
    {
        get => false;
        set { } // the model is read-only, the variables never are
    }

    public void Open(IScriptObject model) => _model = model;

    public void Close()
    {
        _model = EmptyModel;
        _variables.Clear();
    }

    public IEnumerable<string> GetMembers() => _model.GetMembers().Concat(_variables.GetMembers());

    public bool Contains(string member) => _model.Contains(member) || _variables.Contains(member);

    public bool TryGetValue(TemplateContext? context, SourceSpan span, string member, out object? value) =>
        _model.TryGetValue(context, span, member, out value) || _variables.TryGetValue(context, span, member, out value);

    public bool CanWrite(string member) => !_model.Contains(member) && _variables.CanWrite(member);

    public bool TrySetValue(TemplateContext? context, SourceSpan span, string member, object? value, bool readOnly) =>
        !_model.Contains(member) && _variables.TrySetValue(context, span, member, value, readOnly);

    public bool Remove(string member) => _variables.Remove(member);

    public void SetReadOnly(string member, bool readOnly) => _variables.SetReadOnly(member, readOnly);

    public IScriptObject Clone(bool deep)
    {
        var copy = (ScriptObject)_variables.Clone(deep);
        foreach (var name in _model.GetMembers())
        {
            if (_model.TryGetValue(null, default, name, out var value))
            {
                copy[name] = value;
            }
        }

        return copy;
    }
}
