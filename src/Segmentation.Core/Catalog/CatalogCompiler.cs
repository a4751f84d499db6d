using System.Globalization;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Compiles a validated <see cref="CatalogDefinition"/> into a <see cref="CatalogSnapshot"/>: rules (with
/// fragment and segment references, cycles reported), scoring settings, templates, the catalog-wide size
/// limit, segments that can never win, and the priority order decisions resolve in.
/// </summary>
public static class CatalogCompiler
{
    /// <summary>Most lead-score signals a catalog may declare, and most fit criteria.</summary>
    public const int MaxLeadSignals = 200;

    /// <summary>Most conditions a whole catalog's rules may stand for with their references expanded.</summary>
    public const int MaxCatalogConditions = 50_000;

    /// <summary>The compiled catalog, or null when any error was added to <paramref name="errors"/> (before or during compilation).</summary>
    public static CatalogSnapshot? Compile(CatalogDefinition definition, List<CatalogError> errors, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(errors);
        return new Compilation(definition, errors, cancellation).Run();
    }

    private sealed class Compilation : IRuleReferences
    {
        private readonly CatalogDefinition _definition;
        private readonly List<CatalogError> _errors;
        private readonly CancellationToken _cancellation;
        private readonly Dictionary<string, RuleNode?> _fragments = new(StringComparer.Ordinal);
        private readonly Dictionary<string, RuleNode?> _segmentRules = new(StringComparer.Ordinal);
        private readonly List<string> _compiling = [];
        private readonly Dictionary<string, TraitDefinition> _traits;
        private readonly HashSet<string> _templateTraits;
        private readonly DerivedFields _derived = new();
        private readonly FieldRegistry _fields;
        private readonly RuleCompiler _compiler;

        public Compilation(CatalogDefinition definition, List<CatalogError> errors, CancellationToken cancellation)
        {
            _definition = definition;
            _errors = errors;
            _cancellation = cancellation;

            // Derived traits (lifecycle_stage, lead_score, ...) exist in every catalog; a schema may declare
            // them too (with the derived type: the validator refuses another, naming its line), so they can be set as
            // declared data, which then wins over the derived value.
            _traits = new Dictionary<string, TraitDefinition>(definition.Traits, StringComparer.Ordinal);
            foreach (var (name, type) in DerivedScores.Traits)
            {
                _traits.TryAdd(name, new TraitDefinition(name, type, Pii: false, "derived by the service; a declared value wins"));
            }

            _fields = new FieldRegistry(_traits, _derived);
            _templateTraits = [.. _traits.Keys, .. ObservedAttributes.All]; // what profile.traits.X may name in a template
            _compiler = new RuleCompiler(_fields) { References = this };
        }

        public CatalogSnapshot? Run()
        {
            var scoring = _definition.Scoring is { } scoringNode ? ReadScoring(scoringNode) : ScoringSettings.Default;
            _derived.Settings = scoring;

            // Every segment's rule and every fragment is compiled, referenced or not, so all errors surface at once.
            foreach (var id in _definition.RulesToCompile)
            {
                _cancellation.ThrowIfCancellationRequested();
                SegmentRule(id);
            }

            foreach (var name in _definition.Fragments.Keys)
            {
                _cancellation.ThrowIfCancellationRequested();
                ((IRuleReferences)this).Fragment(name, out _);
            }

            var templateContext = new HashSet<ContextField>();
            var segments = new List<Segment>();
            foreach (var definition in _definition.Segments)
            {
                _cancellation.ThrowIfCancellationRequested();
                if (Build(definition, templateContext) is { } segment)
                {
                    segments.Add(segment);
                }
            }

            // The lead score's fit criteria count too: every profile write evaluates each of them.
            // (A version kept from before they counted loads as it did.)
            var rules = segments.Select(s => s.Rule).Concat(KeptVersion.Loading ? [] : scoring.Lead.Fit.Select(f => f.Rule));
            var conditions = rules.Aggregate(0L, (sum, rule) => Math.Min(sum + (rule?.Size ?? 0), long.MaxValue / 2));
            if (conditions > MaxCatalogConditions)
            {
                _errors.Add(new CatalogError(_definition.Origin, 0, null, null, $"the catalog's rules (segments and lead-score fit criteria) stand for {conditions:N0} conditions once fragments and references are expanded (at most {MaxCatalogConditions:N0})"));
            }

            CheckReachable(segments);
            var experiments = new List<Experiment>();
            foreach (var definition in _definition.Experiments)
            {
                var segment = definition.SegmentId is null ? null : segments.FirstOrDefault(s => s.Id == definition.SegmentId);
                if ((segment is not null || definition.SegmentId is null) && segments.Count > 0 && BuildExperiment(definition, segment, segments.FirstOrDefault(s => s.IsFallback) ?? segments[^1], templateContext) is { } experiment)
                {
                    experiments.Add(experiment);
                    if (experiment.Promoted is { } promoted)
                    {
                        // The winner standardised: everyone the segment (or, for a catalog experiment, any segment) wins gets its variants.
                        var arm = experiment.ArmById(promoted)!;
                        foreach (var s in segment is null ? segments : [segment])
                        {
                            s.Serve([.. s.Variants.Select((v, k) => arm.OverrideAt(k) ?? v)]);
                        }
                    }
                }
            }

            // A layer's experiments take consecutive shares of its users, in the order written; those without a
            // declared share split what the others leave equally.
            foreach (var layer in experiments.Where(e => e.Layer is not null).GroupBy(e => e.Layer))
            {
                var declared = _definition.Experiments.Where(d => d.Layer == layer.Key && d.Traffic is not null).ToDictionary(d => d.Id, d => d.Traffic!.Value);
                var implicitShare = layer.Count(e => !declared.ContainsKey(e.Id)) is var n and > 0 ? Math.Max(0, 1 - declared.Values.Sum()) / n : 0;
                var from = 0.0;
                foreach (var e in layer)
                {
                    var share = declared.TryGetValue(e.Id, out var t) ? t : implicitShare;
                    (e.LayerFrom, e.LayerTo) = (from, Math.Min(1, from + share));
                    from += share;
                }
            }

            if (_errors.Count > 0)
            {
                return null;
            }

            var ordered = Rank(segments);
            // Contact policies read the request's channel and country: they are part of the decision cache's key then.
            IEnumerable<ContextField> policyContext = _definition.ContactPolicies.Channels.Count > 0 ? [ContextField.Channel, ContextField.Country] : [];
            var contextRead = _compiler.ContextFieldsRead.Concat(templateContext).Concat(policyContext).Distinct().Order().ToList();
            return new CatalogSnapshot(
                _definition.Name, _definition.Origin, ordered, ordered[^1], _traits, _definition.Personas.Values.ToList(), contextRead, scoring, _fields, _compiler.Features, experiments, _definition.Holdout, _definition.ContactPolicies, _definition.Triggers);
        }

        private Segment? Build(SegmentDefinition definition, HashSet<ContextField> templateContext)
        {
            RuleNode? rule = null;
            if (!definition.IsFallback && (!_segmentRules.TryGetValue(definition.Id, out rule) || rule is null))
            {
                return null;
            }

            var variants = new VariantTemplate[definition.Variants.Count];
            var ok = true;
            for (var i = 0; i < variants.Length; i++)
            {
                var v = definition.Variants[i];
                var template = TemplateCompiler.Compile(v.Source, templateContext, out var readsNow, out var templateErrors, _templateTraits);
                if (template is null)
                {
                    var clause = $"personalization.{v.Kind.ToString().ToLowerInvariant()}.template";
                    foreach (var message in templateErrors)
                    {
                        Error(v.Node, definition.Id, clause, "template error: " + message);
                    }

                    ok = false;
                    continue;
                }

                variants[i] = new VariantTemplate(v.Kind, v.Id, v.Source, template, v.Fallback, readsNow);
            }

            var blocks = new List<EmailBlock>(definition.EmailBlocks.Count);
            foreach (var (name, v) in definition.EmailBlocks)
            {
                var template = TemplateCompiler.Compile(v.Source, templateContext, out var readsNow, out var templateErrors, _templateTraits);
                if (template is null)
                {
                    foreach (var message in templateErrors)
                    {
                        Error(v.Node, definition.Id, $"email_blocks.{name}.template", "template error: " + message);
                    }

                    ok = false;
                    continue;
                }

                blocks.Add(new EmailBlock(name, new VariantTemplate(v.Kind, v.Id, v.Source, template, v.Fallback, readsNow)));
            }

            if (!ok)
            {
                return null;
            }

            return new Segment
            {
                EmailBlocks = blocks,
                Id = definition.Id,
                Name = definition.Name,
                Type = definition.Type,
                Priority = definition.Priority,
                Description = definition.Description,
                Rule = rule,
                Overrides = definition.Overrides,
                Exclusions = definition.Exclusions,
                Persona = definition.Persona,
                IsFallback = definition.IsFallback,
                Variants = variants,
                SourceFile = definition.File,
                SourceLine = definition.Node.At.Line,
            };
        }

        // An experiment's arms: each serves its own template where it overrides a variant, the winner's otherwise (its
        // Variants show them over the segment's, or over the fallback's for an experiment of the whole catalog).
        private Experiment? BuildExperiment(ExperimentDefinition definition, Segment? segment, Segment fallback, HashSet<ContextField> templateContext)
        {
            var arms = new List<ExperimentArm>(definition.Arms.Count);
            var ok = true;
            foreach (var arm in definition.Arms)
            {
                var variants = (segment ?? fallback).Variants.ToArray();
                foreach (var v in arm.Variants)
                {
                    var template = TemplateCompiler.Compile(v.Source, templateContext, out var readsNow, out var templateErrors, _templateTraits);
                    if (template is null)
                    {
                        foreach (var message in templateErrors)
                        {
                            Error(v.Node, null, $"experiments.{definition.Id}.arms.{arm.Id}.variants.{v.Kind.ToString().ToLowerInvariant()}.template", "template error: " + message);
                        }

                        ok = false;
                        continue;
                    }

                    variants[(int)v.Kind] = new VariantTemplate(v.Kind, v.Id, v.Source, template, v.Fallback, readsNow);
                }

                arms.Add(new ExperimentArm(arm.Id, arm.Weight, variants, [.. arm.Variants.Select(v => v.Kind)], definition.Id));
            }

            return ok ? new Experiment(definition, segment, arms) : null;
        }

        // A segment whose rule implies the rule of a segment that overrides it, or of a segment it
        // excludes, can never win: it is unreachable.
        private void CheckReachable(List<Segment> segments)
        {
            var byId = segments.ToDictionary(s => s.Id, StringComparer.Ordinal);
            var nodes = _definition.Segments.ToDictionary(s => s.Id, s => s.Node, StringComparer.Ordinal);
            foreach (var segment in segments)
            {
                _cancellation.ThrowIfCancellationRequested();
                if (segment.Rule is null)
                {
                    continue;
                }

                var suppressors = segments.Where(o => o.Overrides.Contains(segment.Id)).Select(o => (Segment: o, How: "overrides it"))
                    .Concat(segment.Exclusions.Where(byId.ContainsKey).Select(x => (Segment: byId[x], How: "is excluded from it")));
                foreach (var (other, how) in suppressors)
                {
                    if (other.Rule is not null && Implies(segment.Rule, other))
                    {
                        Error(nodes[segment.Id], segment.Id, "rule", $"unreachable: every member also matches '{other.Id}', which {how}, so this segment can never win");
                    }
                }
            }
        }

        // A sound, structural check that rule b implies segment a's rule: the same rule, or an 'all'
        // that contains a's rule or a reference to segment a.
        private static bool Implies(RuleNode b, Segment a)
        {
            var text = b.TextOnce;
            if (text == a.Rule!.TextOnce || text == $"segment({a.Id})")
            {
                return true;
            }

            return b is GroupNode { Kind: "all" } g && g.Children.Any(c => Implies(c, a));
        }

        // Priority order: priority descending, then declaration order (files by name, then position); the
        // fallback last. Each segment learns its rank and the ranks it overrides, excludes and is overridden by.
        private static List<Segment> Rank(List<Segment> segments)
        {
            var ordered = segments
                .Select((s, i) => (Segment: s, Order: i))
                .OrderBy(s => s.Segment.IsFallback)
                .ThenByDescending(s => s.Segment.Priority)
                .ThenBy(s => s.Order)
                .Select(s => s.Segment)
                .ToList();
            var rank = ordered.Select((s, i) => (s.Id, i)).ToDictionary(x => x.Id, x => x.i, StringComparer.Ordinal);
            for (var i = 0; i < ordered.Count; i++)
            {
                ordered[i].Rank = i;
                ordered[i].OverrideRanks = ordered[i].Overrides.Select(id => rank[id]).ToArray();
                ordered[i].ExclusionRanks = ordered[i].Exclusions.Select(id => rank[id]).ToArray();
            }

            for (var i = 0; i < ordered.Count; i++)
            {
                ordered[i].OverriddenByRanks = Enumerable.Range(0, ordered.Count).Where(j => ordered[j].OverrideRanks.Contains(i)).ToArray();
            }

            return ordered;
        }

        // Compiles a segment's rule once, following references depth first; a reference back into a rule
        // being compiled is a cycle.
        private RuleNode? SegmentRule(string id)
        {
            if (_segmentRules.TryGetValue(id, out var done))
            {
                return done;
            }

            var node = _definition.Rules[id];
            _compiling.Add("segment " + id);
            var rule = _compiler.Compile(node, "rule", (clause, n, message) => Error(n, id, clause, message));
            _compiling.RemoveAt(_compiling.Count - 1);
            _segmentRules[id] = rule;
            return rule;
        }

        RuleNode? IRuleReferences.Segment(string id, out string? error)
        {
            error = null;
            if (!_definition.Rules.ContainsKey(id))
            {
                error = _definition.DeclaredIds.Contains(id)
                    ? $"segment '{id}' has no rule (the fallback cannot be referenced)"
                    : $"unknown segment '{id}'";
                return null;
            }

            if (_compiling.Contains("segment " + id))
            {
                error = $"reference cycle: {string.Join(" -> ", _compiling)} -> segment {id}";
                return null;
            }

            var rule = SegmentRule(id);
            error = rule is null ? $"segment '{id}' has errors" : null;
            return rule;
        }

        RuleNode? IRuleReferences.Fragment(string name, out string? error)
        {
            error = null;
            if (_fragments.TryGetValue(name, out var done))
            {
                error = done is null ? $"fragment '{name}' has errors" : null;
                return done;
            }

            if (!_definition.Fragments.TryGetValue(name, out var source))
            {
                error = $"unknown fragment '{name}'; declare it under 'fragments'";
                return null;
            }

            if (_compiling.Contains("fragment " + name))
            {
                error = $"reference cycle: {string.Join(" -> ", _compiling)} -> fragment {name}";
                return null;
            }

            _compiling.Add("fragment " + name);
            var rule = _compiler.Compile(source, $"fragments.{name}", (clause, n, message) => Error(n, null, clause, message));
            _compiling.RemoveAt(_compiling.Count - 1);
            _fragments[name] = rule;
            error = rule is null ? $"fragment '{name}' has errors" : null;
            return rule;
        }

        private ScoringSettings ReadScoring(SyntaxMap node)
        {
            var settings = ScoringSettings.Default;
            foreach (var (k, v) in node.Entries)
            {
                switch (k.Text)
                {
                    case "cart_abandonment_after":
                        settings = settings with { CartAbandonmentAfter = DurationOf(v, "scoring.cart_abandonment_after") };
                        break;
                    case "affinity_half_life":
                        settings = settings with { AffinityHalfLife = DurationOf(v, "scoring.affinity_half_life") };
                        break;
                    case "lead" when v is SyntaxMap lead:
                        settings = settings with { Lead = ReadLead(lead) };
                        break;
                    default:
                        Error(k, null, "scoring", $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, ["cart_abandonment_after", "affinity_half_life", "lead"])}; expected cart_abandonment_after, affinity_half_life or lead");
                        break;
                }
            }

            return settings;
        }

        private LeadScoring ReadLead(SyntaxMap node)
        {
            var lead = LeadScoring.Default;
            foreach (var (k, v) in node.Entries)
            {
                var clause = $"scoring.lead.{k.Text}";
                switch (k.Text)
                {
                    case "inactive_after":
                        lead = lead with { InactiveAfter = DurationOf(v, clause) };
                        break;
                    case "inactive_points":
                        lead = lead with { InactivePoints = IntOf(v, clause) };
                        break;
                    case "thresholds" when v is SyntaxMap t:
                        lead = lead with
                        {
                            Warm = t.Get("warm") is { } w ? IntOf(w, clause + ".warm") : lead.Warm,
                            Hot = t.Get("hot") is { } h ? IntOf(h, clause + ".hot") : lead.Hot,
                            SalesReady = t.Get("sales_ready") is { } r ? IntOf(r, clause + ".sales_ready") : lead.SalesReady,
                        };
                        if (!(0 < lead.Warm && lead.Warm < lead.Hot && lead.Hot < lead.SalesReady && lead.SalesReady <= 100))
                        {
                            Error(v, null, clause, "thresholds must satisfy 0 < warm < hot < sales_ready <= 100");
                        }

                        break;
                    case "signals" when v is SyntaxList signals:
                        lead = lead with { Signals = ReadSignals(signals, clause) };
                        break;
                    case "fit" when v is SyntaxList fits:
                        lead = lead with { Fit = ReadFit(fits, clause) };
                        break;
                    default:
                        Error(k, null, clause, $"unknown or malformed key '{k.Text}'; expected thresholds, signals, fit, inactive_after or inactive_points");
                        break;
                }
            }

            return lead;
        }

        private List<LeadSignal> ReadSignals(SyntaxList signals, string clause)
        {
            var list = new List<LeadSignal>();
            if (signals.Items.Count > MaxLeadSignals)
            {
                // Every profile write counts each signal in space on the thread's stack.
                Error(signals.Items[MaxLeadSignals], null, clause, $"{signals.Items.Count:N0} signals (at most {MaxLeadSignals:N0})");
                return list;
            }

            for (var i = 0; i < signals.Items.Count; i++)
            {
                var at = $"{clause}[{i}]";
                if (signals.Items[i] is not SyntaxMap m)
                {
                    Error(signals.Items[i], null, at, "a signal is a mapping with name, event, points and cap");
                    continue;
                }

                var type = m.Get("event")?.Text ?? "";
                if (!Events.EventTypes.IsKnown(type))
                {
                    Error(m, null, at, $"unknown event type '{type}'");
                    continue;
                }

                var points = m.Get("points") is { } p ? IntOf(p, at + ".points") : 0;
                var capped = m.Get("cap") is { } cap ? IntOf(cap, at + ".cap") : points;
                if (capped != 0 && points != 0 && (capped > 0) != (points > 0))
                {
                    // The cap bounds the points the signal's events add up to: of the other sign it would be given to every
                    // profile, even one without such events (points -10, cap 5: +5 for everyone).
                    Error(m.Get("cap")!, null, at + ".cap", $"the cap ({capped}) bounds what the signal's points ({points}) add up to: it has their sign");
                }

                var signal = new LeadSignal(
                    m.Get("name")?.Text ?? type,
                    type,
                    m.Get("page_type")?.Text,
                    m.Get("category")?.Text,
                    points,
                    capped,
                    m.Get("window") is { } sw ? DurationOf(sw, at + ".window") : null);
                list.Add(Group(m, at) is { } group ? signal with { Group = group } : signal);
            }

            return list;
        }

        private List<LeadFit> ReadFit(SyntaxList fits, string clause)
        {
            var list = new List<LeadFit>();
            if (fits.Items.Count > MaxLeadSignals && !KeptVersion.Loading)
            {
                // Every profile write evaluates each criterion.
                Error(fits.Items[MaxLeadSignals], null, clause, $"{fits.Items.Count:N0} fit criteria (at most {MaxLeadSignals:N0})");
                return list;
            }

            for (var i = 0; i < fits.Items.Count; i++)
            {
                var at = $"{clause}[{i}]";
                if (fits.Items[i] is not SyntaxMap m || m.Get("rule") is not { } ruleNode)
                {
                    Error(fits.Items[i], null, at, "a fit criterion is a mapping with name, points and rule");
                    continue;
                }

                var rule = _compiler.Compile(ruleNode, at + ".rule", (c, n, message) => Error(n, null, c, message));
                if (rule?.FieldsRead().FirstOrDefault(f => f is "traits.lead_score" or "traits.lead_grade") is { } circular)
                {
                    // The score would be computed to evaluate its own fit criterion, without end (the process's stack).
                    Error(ruleNode, null, at + ".rule", $"a fit criterion adds to the lead score, so it cannot read '{circular}' (directly or through a segment or fragment it references)");
                    continue;
                }

                if (rule is { ReadsContext: true } && !KeptVersion.Loading)
                {
                    // The score is stored with the profile and computed at every write, where there is no request: a
                    // criterion on the request would make a segment on the score mean one thing here and another there.
                    Error(ruleNode, null, at + ".rule", $"a fit criterion cannot read the request context ('{rule.FieldsRead().First(f => f.StartsWith("context.", StringComparison.Ordinal))}', directly or through a segment or fragment it references): the lead score is computed when the profile is written, without a request");
                    continue;
                }

                if (rule is not null)
                {
                    var fit = new LeadFit(m.Get("name")?.Text ?? at, rule, m.Get("points") is { } p ? IntOf(p, at + ".points") : 0);
                    list.Add(Group(m, at) is { } group ? fit with { Group = group } : fit);
                }
            }

            return list;
        }

        // The scoring category a signal or fit criterion names with 'group', or null for its default.
        private string? Group(SyntaxMap m, string at)
        {
            if (m.Get("group") is not { } node)
            {
                return null;
            }

            if (node.Text is { } group && LeadGroups.All.Contains(group))
            {
                return group;
            }

            Error(node, null, at + ".group", $"unknown scoring category '{node.Text}'{Validation.Suggestions.DidYouMean(node.Text, LeadGroups.All)}; one of {string.Join(", ", LeadGroups.All)}");
            return null;
        }

        private TimeSpan DurationOf(SyntaxNode node, string clause)
        {
            if (Duration.TryParse(node.Text, out var d))
            {
                return d;
            }

            Error(node, null, clause, $"expected a duration such as 30m, 24h, 90d or 2w (got '{node.Text}')");
            return TimeSpan.FromHours(1);
        }

        private int IntOf(SyntaxNode node, string clause)
        {
            if (int.TryParse(node.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) && n is >= -100 and <= 100)
            {
                return n;
            }

            Error(node, null, clause, $"expected a whole number between -100 and 100 (got '{node.Text}')");
            return 0;
        }

        private void Error(SyntaxNode node, string? segment, string? clause, string message) =>
            _errors.Add(new CatalogError(node.At.File, node.At.Line, segment, clause, message) { Column = node.At.Column });
    }
}
