using System.Globalization;
using System.Text.RegularExpressions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Loads a catalog from YAML files, validates it, and compiles it into a <see cref="CatalogSnapshot"/>.
/// Every error names the file, line, segment and clause; a catalog with any error is rejected whole.
/// </summary>
public static partial class CatalogLoader
{
    private static readonly string[] TopLevelKeys = ["catalog", "schema", "personas", "scoring", "fragments", "segments"];
    private static readonly string[] SegmentKeys = ["id", "name", "type", "description", "priority", "persona", "overrides", "exclusions", "fallback", "rule", "personalization"];
    private static readonly string[] VariantKeys = ["id", "template", "fallback"];
    private static readonly IReadOnlySet<string> Observable = new DerivedFields().ObservableFields;

    /// <summary>Most conditions a whole catalog's rules may stand for with their references expanded.</summary>
    public const int MaxCatalogConditions = 50_000;

    /// <summary>
    /// Loads and compiles the catalog, or throws <see cref="CatalogException"/> with every error. Honours
    /// <paramref name="cancellation"/> throughout (a caller whose deadline passed stops the work).
    /// </summary>
    public static CatalogSnapshot Load(ICatalogSource source, CancellationToken cancellation = default)
    {
        var files = source.ReadFiles();
        var errors = new List<CatalogError>();
        var docs = new List<(string File, YamlMappingNode Root)>();
        foreach (var file in files)
        {
            cancellation.ThrowIfCancellationRequested();
            try
            {
                if (YamlLimits.Check(file.Name, file.Text, cancellation) is { } limit)
                {
                    errors.Add(limit);
                    continue;
                }

                var stream = new YamlStream();
                stream.Load(new StringReader(file.Text));
                foreach (var doc in stream.Documents)
                {
                    if (doc.RootNode is YamlMappingNode map)
                    {
                        docs.Add((file.Name, map));
                    }
                    else if (doc.RootNode is not YamlScalarNode { Value: null or "" })
                    {
                        errors.Add(new CatalogError(file.Name, Line(doc.RootNode), null, null, "a catalog file must be a mapping with any of: " + string.Join(", ", TopLevelKeys)));
                    }
                }
            }
            catch (YamlException ex)
            {
                errors.Add(new CatalogError(file.Name, (int)ex.Start.Line, null, null, "YAML syntax error: " + ex.Message));
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
            {
                // YamlDotNet's scanner and node loader throw these (without a position) on some malformed plain
                // scalars, flow collections and over-long implicit keys instead of a YamlException; it is still
                // the file's syntax at fault.
                errors.Add(new CatalogError(file.Name, 0, null, null, "YAML syntax error: malformed scalar or flow collection (the parser reported no line)"));
            }
        }

        if (files.Count == 0)
        {
            errors.Add(new CatalogError(source.Origin, 0, null, null, "no catalog files (*.yaml) found"));
        }

        var builder = new Builder(errors, cancellation);
        foreach (var (file, root) in docs)
        {
            builder.ReadTopLevel(file, root);
        }

        var snapshot = builder.Build(source.Origin);
        snapshot?.SetFiles(files);
        if (errors.Count > 0 || snapshot is null)
        {
            throw new CatalogException(errors);
        }

        return snapshot;
    }

    private static int Line(YamlNode node) => (int)node.Start.Line;

    private static string? Scalar(YamlNode? node) => (node as YamlScalarNode)?.Value;

    [GeneratedRegex("^[a-z][a-z0-9_]{0,63}$")]
    private static partial Regex IdPattern();

    private sealed class Builder(List<CatalogError> errors, CancellationToken cancellation) : IRuleReferences
    {
        private readonly Dictionary<string, (string File, YamlNode Node)> _fragmentNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, RuleNode?> _fragments = new(StringComparer.Ordinal);
        private readonly Dictionary<string, (string File, YamlNode Node)> _ruleNodes = new(StringComparer.Ordinal);
        private readonly Dictionary<string, RuleNode?> _segmentRules = new(StringComparer.Ordinal);
        private readonly List<string> _compiling = [];
        private RuleCompiler? _compiler;

        private readonly Dictionary<string, TraitDefinition> _traits = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Persona> _personas = new(StringComparer.Ordinal);
        private readonly List<(string File, YamlMappingNode Node)> _segmentNodes = [];
        private readonly List<(string File, YamlMappingNode Node)> _scoringNodes = [];
        private string _name = "default";
        private (string Id, string File, int Line)? _fallbackSetting;

        public void ReadTopLevel(string file, YamlMappingNode root)
        {
            foreach (var (k, v) in root.Children)
            {
                switch (Scalar(k))
                {
                    case "catalog":
                        ReadSettings(file, v);
                        break;
                    case "schema":
                        ReadSchema(file, v);
                        break;
                    case "personas":
                        ReadPersonas(file, v);
                        break;
                    case "fragments":
                        if (v is YamlMappingNode fragments)
                        {
                            foreach (var (fk, fv) in fragments.Children)
                            {
                                var name = Scalar(fk) ?? "";
                                if (!IdPattern().IsMatch(name) || !_fragmentNodes.TryAdd(name, (file, fv)))
                                {
                                    Error(file, fk, null, $"fragments.{name}", "fragment names are unique and lower_snake_case");
                                }
                            }
                        }
                        else
                        {
                            Error(file, v, null, "fragments", "'fragments' must be a mapping of name to rule");
                        }

                        break;
                    case "scoring":
                        if (v is YamlMappingNode scoring)
                        {
                            _scoringNodes.Add((file, scoring));
                        }
                        else
                        {
                            Error(file, v, null, "scoring", "'scoring' must be a mapping");
                        }

                        break;
                    case "segments":
                        if (v is YamlSequenceNode seq)
                        {
                            foreach (var item in seq.Children)
                            {
                                if (item is YamlMappingNode m)
                                {
                                    _segmentNodes.Add((file, m));
                                }
                                else
                                {
                                    Error(file, item, null, null, "each segment must be a mapping");
                                }
                            }
                        }
                        else
                        {
                            Error(file, v, null, null, "'segments' must be a list");
                        }

                        break;
                    default:
                        Error(file, k, null, null, $"unknown top-level key '{Scalar(k)}'; expected any of: {string.Join(", ", TopLevelKeys)}");
                        break;
                }
            }
        }

        public CatalogSnapshot? Build(string origin)
        {
            // Derived traits (lifecycle_stage, lead_score, ...) exist in every catalog; a schema may declare
            // them too, so they can be set as declared data, which then wins over the derived value (F2).
            foreach (var (name, type) in DerivedScores.Traits)
            {
                _traits.TryAdd(name, new TraitDefinition(name, type, Pii: false, "derived by the service; a declared value wins"));
            }

            var derived = new DerivedFields();
            var fields = new FieldRegistry(_traits, derived);
            var compiler = new RuleCompiler(fields) { References = this };
            _compiler = compiler;
            foreach (var (file, node) in _segmentNodes)
            {
                if (Scalar(Get(node, "id")) is { } sid && Get(node, "rule") is { } ruleNode)
                {
                    _ruleNodes.TryAdd(sid, (file, ruleNode));
                }
            }

            var scoring = ScoringSettings.Default;
            if (_scoringNodes.Count > 1)
            {
                Error(_scoringNodes[1].File, _scoringNodes[1].Node, null, "scoring", "'scoring' is defined in more than one file");
            }
            else if (_scoringNodes.Count == 1)
            {
                scoring = ReadScoring(_scoringNodes[0].File, _scoringNodes[0].Node, compiler);
            }

            derived.Settings = scoring;
            var templateContext = new HashSet<ContextField>();
            var segments = new List<(Segment Segment, int Order, string File, YamlMappingNode Node)>();
            var ids = new Dictionary<string, string>(StringComparer.Ordinal);

            // Every id written, even of segments with errors, so references to them are not reported twice.
            var declared = _segmentNodes.Select(n => Scalar(Get(n.Node, "id"))).OfType<string>().ToHashSet(StringComparer.Ordinal);

            foreach (var (file, node) in _segmentNodes)
            {
                cancellation.ThrowIfCancellationRequested();
                var segment = ReadSegment(file, node, compiler, templateContext);
                if (segment is null)
                {
                    continue;
                }

                if (ids.TryGetValue(segment.Id, out var otherFile))
                {
                    Error(file, node, segment.Id, null, $"duplicate segment id (also defined in {otherFile})");
                    continue;
                }

                ids[segment.Id] = file;
                segments.Add((segment, segments.Count, file, node));
            }

            // Every fragment is validated, referenced or not.
            foreach (var name in _fragmentNodes.Keys)
            {
                cancellation.ThrowIfCancellationRequested();
                ((IRuleReferences)this).Fragment(name, out _);
            }

            var conditions = segments.Aggregate(0L, (sum, s) => Math.Min(sum + (s.Segment.Rule?.Size ?? 0), long.MaxValue / 2));
            if (conditions > MaxCatalogConditions)
            {
                errors.Add(new CatalogError(origin, 0, null, null, $"the catalog's rules stand for {conditions:N0} conditions once fragments and references are expanded (at most {MaxCatalogConditions:N0})"));
            }

            // References: overrides, exclusions.
            foreach (var (segment, _, file, node) in segments)
            {
                foreach (var (list, key) in new[] { (segment.Overrides, "overrides"), (segment.Exclusions, "exclusions") })
                {
                    foreach (var id in list)
                    {
                        if (!declared.Contains(id))
                        {
                            Error(file, node, segment.Id, key, $"unknown segment '{id}'");
                        }
                        else if (id == segment.Id)
                        {
                            Error(file, node, segment.Id, key, "a segment cannot reference itself");
                        }
                    }
                }
            }

            var fallbacks = segments.Where(s => s.Segment.IsFallback).ToList();
            if (fallbacks.Count == 0)
            {
                errors.Add(new CatalogError(origin, 0, null, null, "the catalog has no fallback segment: mark exactly one segment with 'fallback: true'"));
            }
            else if (fallbacks.Count > 1)
            {
                foreach (var f in fallbacks.Skip(1))
                {
                    Error(f.File, f.Node, f.Segment.Id, "fallback", $"only one fallback segment is allowed ('{fallbacks[0].Segment.Id}' is already the fallback)");
                }
            }
            else if (_fallbackSetting is { } setting && setting.Id != fallbacks[0].Segment.Id)
            {
                errors.Add(new CatalogError(setting.File, setting.Line, null, "catalog.fallback", $"catalog.fallback is '{setting.Id}' but the segment marked 'fallback: true' is '{fallbacks[0].Segment.Id}'"));
            }

            // A segment whose rule implies the rule of a segment that overrides it, or of a segment it
            // excludes, can never win: it is unreachable.
            var byId = segments.ToDictionary(s => s.Segment.Id, StringComparer.Ordinal);
            foreach (var (segment, _, file, node) in segments)
            {
                cancellation.ThrowIfCancellationRequested();
                if (segment.Rule is null)
                {
                    continue;
                }

                var suppressors = segments.Where(o => o.Segment.Overrides.Contains(segment.Id)).Select(o => (o.Segment, How: "overrides it"))
                    .Concat(segment.Exclusions.Where(byId.ContainsKey).Select(x => (byId[x].Segment, How: "is excluded from it")));
                foreach (var (other, how) in suppressors)
                {
                    if (other.Rule is not null && Implies(segment.Rule, other))
                    {
                        Error(file, node, segment.Id, "rule", $"unreachable: every member also matches '{other.Id}', which {how}, so this segment can never win");
                    }
                }
            }

            if (errors.Count > 0)
            {
                return null;
            }

            // Priority order: priority descending, then declaration order (files by name, then position); fallback last.
            var ordered = segments
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

            var contextRead = compiler.ContextFieldsRead.Concat(templateContext).Distinct().Order().ToList();
            return new CatalogSnapshot(_name, origin, ordered, fallbacks[0].Segment, _traits, _personas.Values.ToList(), contextRead, scoring, fields, compiler.Features);
        }

        private Segment? ReadSegment(string file, YamlMappingNode node, RuleCompiler compiler, HashSet<ContextField> templateContext)
        {
            var values = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (var (k, v) in node.Children)
            {
                var key = Scalar(k) ?? "";
                if (!SegmentKeys.Contains(key))
                {
                    Error(file, k, Scalar(Get(node, "id")), key, $"unknown key '{key}'; a segment has: {string.Join(", ", SegmentKeys)}");
                    continue;
                }

                values[key] = v;
            }

            var id = Scalar(values.GetValueOrDefault("id"));
            var before = errors.Count;
            if (id is null || !IdPattern().IsMatch(id))
            {
                Error(file, node, id, "id", "'id' is required: lower_snake_case, starting with a letter, at most 64 characters");
                return null;
            }

            var name = Scalar(values.GetValueOrDefault("name"));
            if (string.IsNullOrWhiteSpace(name))
            {
                Error(file, node, id, "name", "'name' is required");
            }

            var typeText = Scalar(values.GetValueOrDefault("type"));
            if (!SegmentFamilies.TryParse(typeText, out var type))
            {
                Error(file, values.GetValueOrDefault("type") ?? node, id, "type", $"'type' must be one of: {string.Join(", ", Enum.GetValues<SegmentType>().Select(SegmentFamilies.Name))} (got '{typeText}')");
            }

            var priority = SegmentFamilies.DefaultPriority(type);
            if (values.TryGetValue("priority", out var pNode))
            {
                if (!int.TryParse(Scalar(pNode), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out priority) || priority is < 0 or > 1_000_000)
                {
                    Error(file, pNode, id, "priority", $"'priority' must be a whole number between 0 and 1000000 (got '{Scalar(pNode)}')");
                }
            }

            var isFallback = false;
            if (values.TryGetValue("fallback", out var fbNode) && !bool.TryParse(Scalar(fbNode), out isFallback))
            {
                Error(file, fbNode, id, "fallback", "'fallback' must be true or false");
            }

            RuleNode? rule = null;
            if (values.TryGetValue("rule", out var ruleNode))
            {
                if (isFallback)
                {
                    Error(file, ruleNode, id, "rule", "the fallback segment has no rule: it applies when no other segment does");
                }
                else
                {
                    rule = SegmentRule(id);
                }
            }
            else if (!isFallback)
            {
                Error(file, node, id, "rule", "'rule' is required (only the fallback segment has none)");
            }

            Persona? persona = null;
            if (values.TryGetValue("persona", out var personaNode) && !_personas.TryGetValue(Scalar(personaNode) ?? "", out persona))
            {
                Error(file, personaNode, id, "persona", $"unknown persona '{Scalar(personaNode)}'");
            }

            var variants = ReadVariants(file, node, id, values.GetValueOrDefault("personalization"), templateContext);
            var overrides = ReadIdList(file, id, values.GetValueOrDefault("overrides"), "overrides");
            var exclusions = ReadIdList(file, id, values.GetValueOrDefault("exclusions"), "exclusions");

            if (errors.Count > before || variants is null)
            {
                return null;
            }

            return new Segment
            {
                Id = id,
                Name = name!,
                Type = type,
                Priority = priority,
                Description = Scalar(values.GetValueOrDefault("description")) ?? "",
                Rule = rule,
                Overrides = overrides,
                Exclusions = exclusions,
                Persona = persona,
                IsFallback = isFallback,
                Variants = variants,
                SourceFile = file,
            };
        }

        // A sound, structural check that rule b implies segment a's rule: the same rule, or an 'all'
        // that contains a's rule or a reference to segment a.
        private static bool Implies(RuleNode b, Segment a)
        {
            if (b.Text == a.Rule!.Text || b.Text == $"segment({a.Id})")
            {
                return true;
            }

            return b is GroupNode g && g.Text.StartsWith("all(", StringComparison.Ordinal) && g.Children.Any(c => Implies(c, a));
        }

        // Compiles a segment's rule once, following references depth first; a reference back into a rule
        // being compiled is a cycle.
        private RuleNode? SegmentRule(string id)
        {
            if (_segmentRules.TryGetValue(id, out var done))
            {
                return done;
            }

            var (file, node) = _ruleNodes[id];
            _compiling.Add("segment " + id);
            var rule = _compiler!.Compile(node, "rule", (clause, n, message) => Error(file, n, id, clause, message));
            _compiling.RemoveAt(_compiling.Count - 1);
            _segmentRules[id] = rule;
            return rule;
        }

        RuleNode? IRuleReferences.Segment(string id, out string? error)
        {
            error = null;
            if (!_ruleNodes.ContainsKey(id))
            {
                error = _segmentNodes.Any(s => Scalar(Get(s.Node, "id")) == id)
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

            if (!_fragmentNodes.TryGetValue(name, out var source))
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
            var rule = _compiler!.Compile(source.Node, $"fragments.{name}", (clause, n, message) => Error(source.File, n, null, clause, message));
            _compiling.RemoveAt(_compiling.Count - 1);
            _fragments[name] = rule;
            error = rule is null ? $"fragment '{name}' has errors" : null;
            return rule;
        }

        private VariantTemplate[]? ReadVariants(string file, YamlMappingNode segmentNode, string id, YamlNode? node, HashSet<ContextField> templateContext)
        {
            var kinds = Enum.GetValues<VariantKind>();
            var names = kinds.Select(k => k.ToString().ToLowerInvariant()).ToArray();
            if (node is not YamlMappingNode map)
            {
                Error(file, node ?? segmentNode, id, "personalization", $"'personalization' is required with all five outcomes: {string.Join(", ", names)} (F14: no segment without a personalization outcome)");
                return null;
            }

            var result = new VariantTemplate[kinds.Length];
            var ok = true;
            foreach (var (k, _) in map.Children)
            {
                if (!names.Contains(Scalar(k)))
                {
                    Error(file, k, id, $"personalization.{Scalar(k)}", $"unknown outcome '{Scalar(k)}'; expected {string.Join(", ", names)}");
                    ok = false;
                }
            }

            for (var i = 0; i < kinds.Length; i++)
            {
                var clause = $"personalization.{names[i]}";
                var v = Get(map, names[i]);
                if (v is null)
                {
                    Error(file, map, id, clause, $"missing '{names[i]}' outcome: every segment needs content, offer, cta, journey and messaging (F14)");
                    ok = false;
                    continue;
                }

                string? variantId;
                string? source;
                var fallback = "";
                if (v is YamlScalarNode s)
                {
                    variantId = $"{id}.{names[i]}";
                    source = s.Value;
                }
                else if (v is YamlMappingNode vm)
                {
                    foreach (var (vk, _) in vm.Children)
                    {
                        if (!VariantKeys.Contains(Scalar(vk)))
                        {
                            Error(file, vk, id, clause, $"unknown key '{Scalar(vk)}'; a variant has: {string.Join(", ", VariantKeys)}");
                            ok = false;
                        }
                    }

                    variantId = Scalar(Get(vm, "id")) ?? $"{id}.{names[i]}";
                    source = Scalar(Get(vm, "template"));
                    fallback = Scalar(Get(vm, "fallback")) ?? "";
                }
                else
                {
                    Error(file, v, id, clause, "an outcome is a template string or a mapping with id, template and fallback");
                    ok = false;
                    continue;
                }

                if (string.IsNullOrWhiteSpace(source))
                {
                    Error(file, v, id, clause + ".template", "the template is empty");
                    ok = false;
                    continue;
                }

                var template = TemplateCompiler.Compile(source, templateContext, out var readsNow, out var parts, out var templateErrors);
                if (template is null)
                {
                    foreach (var message in templateErrors)
                    {
                        Error(file, v, id, clause + ".template", "template error: " + message);
                    }

                    ok = false;
                    continue;
                }

                result[i] = new VariantTemplate(kinds[i], variantId, source, template, fallback, readsNow) { Parts = parts };
            }

            return ok ? result : null;
        }

        private string[] ReadIdList(string file, string id, YamlNode? node, string key)
        {
            if (node is null)
            {
                return [];
            }

            if (node is YamlScalarNode s && !string.IsNullOrEmpty(s.Value))
            {
                return [s.Value];
            }

            if (node is YamlSequenceNode seq && seq.Children.All(c => c is YamlScalarNode))
            {
                return seq.Children.Select(c => Scalar(c)!).ToArray();
            }

            Error(file, node, id, key, $"'{key}' must be a list of segment ids");
            return [];
        }

        private ScoringSettings ReadScoring(string file, YamlMappingNode node, RuleCompiler compiler)
        {
            var settings = ScoringSettings.Default;
            foreach (var (k, v) in node.Children)
            {
                var key = Scalar(k);
                switch (key)
                {
                    case "cart_abandonment_after":
                        settings = settings with { CartAbandonmentAfter = DurationOf(file, v, "scoring.cart_abandonment_after") };
                        break;
                    case "affinity_half_life":
                        settings = settings with { AffinityHalfLife = DurationOf(file, v, "scoring.affinity_half_life") };
                        break;
                    case "lead" when v is YamlMappingNode lead:
                        settings = settings with { Lead = ReadLead(file, lead, compiler) };
                        break;
                    default:
                        Error(file, k, null, "scoring", $"unknown key '{key}'; expected cart_abandonment_after, affinity_half_life or lead");
                        break;
                }
            }

            return settings;
        }

        private LeadScoring ReadLead(string file, YamlMappingNode node, RuleCompiler compiler)
        {
            var lead = LeadScoring.Default;
            foreach (var (k, v) in node.Children)
            {
                var key = Scalar(k);
                var clause = $"scoring.lead.{key}";
                switch (key)
                {
                    case "inactive_after":
                        lead = lead with { InactiveAfter = DurationOf(file, v, clause) };
                        break;
                    case "inactive_points":
                        lead = lead with { InactivePoints = IntOf(file, v, clause) };
                        break;
                    case "thresholds" when v is YamlMappingNode t:
                        lead = lead with
                        {
                            Warm = Get(t, "warm") is { } w ? IntOf(file, w, clause + ".warm") : lead.Warm,
                            Hot = Get(t, "hot") is { } h ? IntOf(file, h, clause + ".hot") : lead.Hot,
                            SalesReady = Get(t, "sales_ready") is { } r ? IntOf(file, r, clause + ".sales_ready") : lead.SalesReady,
                        };
                        if (!(0 < lead.Warm && lead.Warm < lead.Hot && lead.Hot < lead.SalesReady && lead.SalesReady <= 100))
                        {
                            Error(file, v, null, clause, "thresholds must satisfy 0 < warm < hot < sales_ready <= 100");
                        }

                        break;
                    case "signals" when v is YamlSequenceNode signals:
                        var list = new List<LeadSignal>();
                        for (var i = 0; i < signals.Children.Count; i++)
                        {
                            if (signals.Children[i] is not YamlMappingNode m)
                            {
                                Error(file, signals.Children[i], null, $"{clause}[{i}]", "a signal is a mapping with name, event, points and cap");
                                continue;
                            }

                            var at = $"{clause}[{i}]";
                            var type = Scalar(Get(m, "event")) ?? "";
                            if (!Events.EventTypes.IsKnown(type))
                            {
                                Error(file, m, null, at, $"unknown event type '{type}'");
                                continue;
                            }

                            var points = Get(m, "points") is { } p ? IntOf(file, p, at + ".points") : 0;
                            list.Add(new LeadSignal(
                                Scalar(Get(m, "name")) ?? type,
                                type,
                                Scalar(Get(m, "page_type")),
                                Scalar(Get(m, "category")),
                                points,
                                Get(m, "cap") is { } cap ? IntOf(file, cap, at + ".cap") : points,
                                Get(m, "window") is { } sw ? DurationOf(file, sw, at + ".window") : null));
                        }

                        lead = lead with { Signals = list };
                        break;
                    case "fit" when v is YamlSequenceNode fits:
                        var fitList = new List<LeadFit>();
                        for (var i = 0; i < fits.Children.Count; i++)
                        {
                            var at = $"{clause}[{i}]";
                            if (fits.Children[i] is not YamlMappingNode m || Get(m, "rule") is not { } ruleNode)
                            {
                                Error(file, fits.Children[i], null, at, "a fit criterion is a mapping with name, points and rule");
                                continue;
                            }

                            var rule = compiler.Compile(ruleNode, at + ".rule", (c, n, message) => Error(file, n, null, c, message));
                            if (rule is not null)
                            {
                                fitList.Add(new LeadFit(Scalar(Get(m, "name")) ?? at, rule, Get(m, "points") is { } p ? IntOf(file, p, at + ".points") : 0));
                            }
                        }

                        lead = lead with { Fit = fitList };
                        break;
                    default:
                        Error(file, k, null, clause, $"unknown or malformed key '{key}'; expected thresholds, signals, fit, inactive_after or inactive_points");
                        break;
                }
            }

            return lead;
        }

        private TimeSpan DurationOf(string file, YamlNode node, string clause)
        {
            if (Duration.TryParse(Scalar(node), out var d))
            {
                return d;
            }

            Error(file, node, null, clause, $"expected a duration such as 30m, 24h, 90d or 2w (got '{Scalar(node)}')");
            return TimeSpan.FromHours(1);
        }

        private int IntOf(string file, YamlNode node, string clause)
        {
            if (int.TryParse(Scalar(node), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) && n is >= -100 and <= 100)
            {
                return n;
            }

            Error(file, node, null, clause, $"expected a whole number between -100 and 100 (got '{Scalar(node)}')");
            return 0;
        }

        private void ReadSettings(string file, YamlNode node)
        {
            if (node is not YamlMappingNode map)
            {
                Error(file, node, null, "catalog", "'catalog' must be a mapping with name and fallback");
                return;
            }

            foreach (var (k, v) in map.Children)
            {
                switch (Scalar(k))
                {
                    case "name":
                        _name = Scalar(v) ?? _name;
                        break;
                    case "fallback":
                        _fallbackSetting = (Scalar(v) ?? "", file, Line(v));
                        break;
                    default:
                        Error(file, k, null, "catalog", $"unknown key '{Scalar(k)}'; expected name or fallback");
                        break;
                }
            }
        }

        private void ReadSchema(string file, YamlNode node)
        {
            if (node is not YamlMappingNode map || Get(map, "traits") is not YamlMappingNode traits)
            {
                Error(file, node, null, "schema", "'schema' must be a mapping with 'traits'");
                return;
            }

            foreach (var (k, v) in traits.Children)
            {
                var name = Scalar(k) ?? "";
                var clause = $"schema.traits.{name}";
                if (!IdPattern().IsMatch(name))
                {
                    Error(file, k, null, clause, "trait names are lower_snake_case");
                    continue;
                }

                if (v is not YamlMappingNode def)
                {
                    Error(file, v, null, clause, "a trait is a mapping with type, and optionally pii and description");
                    continue;
                }

                var typeText = Scalar(Get(def, "type"));
                if (!Enum.TryParse<FieldType>(typeText, ignoreCase: true, out var type) || typeText is null || !typeText.All(char.IsAsciiLetterLower))
                {
                    Error(file, v, null, clause, $"'type' must be one of string, number, bool, timestamp, list (got '{typeText}')");
                    continue;
                }

                var pii = bool.TryParse(Scalar(Get(def, "pii")), out var p) && p;
                if (_traits.ContainsKey(name))
                {
                    Error(file, k, null, clause, "trait declared twice");
                    continue;
                }

                var observedBy = Scalar(Get(def, "observed_by"));
                if (observedBy is not null && !Observable.Contains(observedBy))
                {
                    Error(file, v, null, clause, $"'observed_by' must be one of: {string.Join(", ", Observable)}");
                    continue;
                }

                _traits[name] = new TraitDefinition(name, type, pii, Scalar(Get(def, "description")) ?? "", observedBy);
            }
        }

        private void ReadPersonas(string file, YamlNode node)
        {
            if (node is not YamlSequenceNode seq)
            {
                Error(file, node, null, "personas", "'personas' must be a list");
                return;
            }

            foreach (var item in seq.Children.OfType<YamlMappingNode>())
            {
                var id = Scalar(Get(item, "id"));
                if (id is null || !IdPattern().IsMatch(id))
                {
                    Error(file, item, null, "personas", "a persona needs a lower_snake_case 'id'");
                    continue;
                }

                _personas[id] = new Persona(
                    id,
                    Scalar(Get(item, "name")) ?? id,
                    Scalar(Get(item, "tone")) ?? "",
                    Scalar(Get(item, "messaging")) ?? "",
                    List(Get(item, "triggers")),
                    List(Get(item, "objections")));
            }
        }

        private static List<string> List(YamlNode? node) =>
            node is YamlSequenceNode seq ? seq.Children.Select(c => Scalar(c) ?? "").ToList() : [];

        private static YamlNode? Get(YamlMappingNode map, string key) =>
            map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

        private void Error(string file, YamlNode node, string? segment, string? clause, string message) =>
            errors.Add(new CatalogError(file, Line(node), segment, clause, message));
    }
}
