using System.Globalization;
using System.Text.RegularExpressions;
using Segmentation.Core.Experiments;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Rules;
using Segmentation.Core.Scoring;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Catalog;

/// <summary>
/// Checks the shape of a catalog's syntax trees and reads them into a <see cref="CatalogDefinition"/>:
/// the top-level keys, settings, trait schema, personas, fragments and segments (ids, names, families,
/// priorities, the fallback, references between segments, and that every segment has all five outcomes).
/// Rules, templates and scoring are left as syntax for <see cref="CatalogCompiler"/>. Every problem is
/// added to the error list with its file, line, segment and clause.
/// </summary>
public static partial class CatalogValidator
{
    /// <summary>The keys a catalog file may have at its top level.</summary>
    public static readonly IReadOnlyList<string> TopLevelKeys = ["catalog", "schema", "personas", "scoring", "fragments", "segments", "experiments", "contact_policies", "triggers"];

    private static readonly string[] ExperimentKeys = ["id", "segment", "description", "salt", "start", "stop", "primary_metric", "guardrails", "minimum_detectable_effect", "exposure", "promoted", "scope", "layer", "traffic", "allocation", "floor", "arms"];
    private static readonly string[] ArmKeys = ["id", "weight", "variants"];

    /// <summary>Most arms an experiment may have.</summary>
    public const int MaxArms = 100;

    /// <summary>Largest weight of an arm (weights are relative shares).</summary>
    public const double MaxArmWeight = 1_000_000;

    /// <summary>Most experiments a catalog may define (a decision picks a user's among those of their layer).</summary>
    public const int MaxExperiments = 200;

    /// <summary>Most segments a catalog may define (its audit compares every pair).</summary>
    public const int MaxSegments = 2_000;

    /// <summary>Most characters of one template (a variant's or an email block's).</summary>
    public const int MaxTemplateChars = 65_536;

    /// <summary>
    /// Most characters of every template and fallback of a catalog together, counted with YAML aliases expanded: an
    /// alias is one node however long its text, and each use of it is a template of its own to compile.
    /// </summary>
    public const int MaxCatalogTemplateChars = 4_000_000;

    // The five outcomes as catalogs name them, in VariantKind order.
    private static readonly string[] OutcomeNames = [.. Enum.GetValues<Rendering.VariantKind>().Select(k => k.ToString().ToLowerInvariant())];

    internal static readonly string[] SegmentKeys = ["id", "name", "type", "description", "priority", "persona", "overrides", "exclusions", "fallback", "rule", "personalization", "email_blocks"];
    private static readonly string[] VariantKeys = ["id", "template", "fallback"];
    private static readonly string[] TraitKeys = ["type", "pii", "description", "observed_by"];
    private static readonly string[] PersonaKeys = ["id", "name", "tone", "messaging", "triggers", "objections", "role", "goals", "pain_points", "behaviour", "channels"];
    private static readonly IReadOnlySet<string> Observable = new DerivedFields().ObservableFields;

    /// <summary>Reads the catalog files' root mappings into a definition; problems are added to <paramref name="errors"/>.</summary>
    public static CatalogDefinition Validate(string origin, IEnumerable<SyntaxMap> documents, List<CatalogError> errors, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentNullException.ThrowIfNull(errors);
        var reader = new Reader(errors, cancellation);
        foreach (var root in documents)
        {
            cancellation.ThrowIfCancellationRequested();
            reader.ReadTopLevel(root);
        }

        return reader.Finish(origin);
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,63}$")]
    internal static partial Regex IdPattern();

    private sealed class Reader(List<CatalogError> errors, CancellationToken cancellation)
    {
        private readonly Dictionary<string, SyntaxNode> _fragments = new(StringComparer.Ordinal);
        private readonly Dictionary<string, TraitDefinition> _traits = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Persona> _personas = new(StringComparer.Ordinal);
        private readonly List<SyntaxMap> _segmentNodes = [];
        private readonly List<SyntaxMap> _scoringNodes = [];
        private SyntaxNode? _contactPolicies;
        private readonly List<SyntaxMap> _experimentNodes = [];
        private readonly List<SyntaxMap> _triggerNodes = [];
        private string _name = "default";
        private long _templateChars;
        private SyntaxNode? _fallbackSetting;
        private double _holdout;

        public void ReadTopLevel(SyntaxMap root)
        {
            foreach (var (k, v) in root.Entries)
            {
                switch (k.Text)
                {
                    case "catalog":
                        ReadSettings(v);
                        break;
                    case "schema":
                        ReadSchema(v);
                        break;
                    case "personas":
                        ReadPersonas(v);
                        break;
                    case "fragments":
                        ReadFragments(v);
                        break;
                    case "scoring":
                        if (v is SyntaxMap scoring)
                        {
                            _scoringNodes.Add(scoring);
                        }
                        else
                        {
                            Error(v, null, "scoring", "'scoring' must be a mapping");
                        }

                        break;
                    case "segments":
                        ReadMappings(v, _segmentNodes, null, "segment");
                        break;
                    case "experiments":
                        ReadMappings(v, _experimentNodes, "experiments", "experiment");
                        break;
                    case "triggers":
                        ReadMappings(v, _triggerNodes, "triggers", "trigger");
                        break;
                    case "contact_policies":
                        if (_contactPolicies is not null)
                        {
                            Error(v, null, "contact_policies", $"'contact_policies' is defined in more than one file (also {_contactPolicies.At})");
                        }

                        _contactPolicies = v;
                        break;
                    default:
                        Error(k, null, null, $"unknown top-level key '{k.Text}'; expected any of: {string.Join(", ", TopLevelKeys)}");
                        break;
                }
            }
        }

        // A top-level list whose items are mappings (segments, experiments), each added to target.
        private void ReadMappings(SyntaxNode node, List<SyntaxMap> target, string? clause, string noun)
        {
            if (node is not SyntaxList list)
            {
                Error(node, null, clause, $"'{noun}s' must be a list");
                return;
            }

            foreach (var item in list.Items)
            {
                if (item is SyntaxMap map)
                {
                    target.Add(map);
                }
                else
                {
                    Error(item, null, clause, $"each {noun} must be a mapping");
                }
            }
        }

        public CatalogDefinition Finish(string origin)
        {
            if (_scoringNodes.Count > 1)
            {
                Error(_scoringNodes[1], null, "scoring", "'scoring' is defined in more than one file");
            }

            if (_experimentNodes.Count > MaxExperiments && !KeptVersion.Loading)
            {
                Error(_experimentNodes[MaxExperiments], null, "experiments", $"the catalog defines {_experimentNodes.Count:N0} experiments (at most {MaxExperiments:N0})");
                _experimentNodes.RemoveRange(MaxExperiments, _experimentNodes.Count - MaxExperiments); // the rest is not read
            }

            if (_segmentNodes.Count > MaxSegments)
            {
                Error(_segmentNodes[MaxSegments], null, "segments", $"the catalog defines {_segmentNodes.Count:N0} segments (at most {MaxSegments:N0})");
                _segmentNodes.RemoveRange(MaxSegments, _segmentNodes.Count - MaxSegments); // the rest is not read or compiled
            }

            var rules = new Dictionary<string, SyntaxNode>(StringComparer.Ordinal);
            foreach (var node in _segmentNodes)
            {
                if (node.Get("id")?.Text is { } sid && node.Get("rule") is { } ruleNode)
                {
                    rules.TryAdd(sid, ruleNode);
                }
            }

            var declared = _segmentNodes.Select(n => n.Get("id")?.Text).OfType<string>().ToHashSet(StringComparer.Ordinal);
            var toCompile = new List<string>();
            var segments = new List<SegmentDefinition>();
            var files = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var node in _segmentNodes)
            {
                cancellation.ThrowIfCancellationRequested();
                var segment = ReadSegment(node, toCompile);
                if (segment is null)
                {
                    continue;
                }

                if (files.TryGetValue(segment.Id, out var otherFile))
                {
                    Error(node, segment.Id, null, $"duplicate segment id (also defined in {otherFile})");
                    continue;
                }

                files[segment.Id] = segment.File;
                segments.Add(segment);
            }

            CheckReferences(segments, declared);
            CheckFallback(origin, segments);
            var experiments = ReadExperiments(segments, declared);
            var contact = _contactPolicies is null ? ContactPolicies.None
                : new ContactPolicyReader((node, clause, message) => Error(node, null, clause, message)).Read(_contactPolicies, declared) ?? ContactPolicies.None;
            var triggers = new TriggerReader((node, clause, message) => Error(node, null, clause, message)).Read(_triggerNodes, declared, segments.FirstOrDefault(s => s.IsFallback)?.Id);
            return new CatalogDefinition
            {
                ContactPolicies = contact,
                Triggers = triggers,
                Name = _name,
                Holdout = _holdout,
                Origin = origin,
                Traits = _traits,
                Personas = _personas,
                Fragments = _fragments,
                Rules = rules,
                DeclaredIds = declared,
                RulesToCompile = toCompile,
                Segments = segments,
                Scoring = _scoringNodes.Count == 1 ? _scoringNodes[0] : null,
                Experiments = experiments,
            };
        }

        private void CheckReferences(List<SegmentDefinition> segments, HashSet<string> declared)
        {
            foreach (var segment in segments)
            {
                foreach (var (list, key) in new[] { (segment.Overrides, "overrides"), (segment.Exclusions, "exclusions") })
                {
                    foreach (var id in list)
                    {
                        if (!declared.Contains(id))
                        {
                            Error(segment.Node, segment.Id, key, $"unknown segment '{id}'");
                        }
                        else if (id == segment.Id)
                        {
                            Error(segment.Node, segment.Id, key, "a segment cannot reference itself");
                        }
                    }
                }
            }
        }

        private void CheckFallback(string origin, List<SegmentDefinition> segments)
        {
            var fallbacks = segments.Where(s => s.IsFallback).ToList();
            if (fallbacks.Count == 0)
            {
                errors.Add(new CatalogError(origin, 0, null, null, "the catalog has no fallback segment: mark exactly one segment with 'fallback: true'"));
            }
            else if (fallbacks.Count > 1)
            {
                foreach (var f in fallbacks.Skip(1))
                {
                    Error(f.Node, f.Id, "fallback", $"only one fallback segment is allowed ('{fallbacks[0].Id}' is already the fallback)");
                }
            }
            else if (_fallbackSetting is { } setting && (setting.Text ?? "") != fallbacks[0].Id)
            {
                Error(setting, null, "catalog.fallback", $"catalog.fallback is '{setting.Text}' but the segment marked 'fallback: true' is '{fallbacks[0].Id}'");
            }
        }

        private SegmentDefinition? ReadSegment(SyntaxMap node, List<string> rulesToCompile)
        {
            var values = new Dictionary<string, SyntaxNode>(StringComparer.Ordinal);
            foreach (var (k, v) in node.Entries)
            {
                var key = k.Text ?? "";
                if (!SegmentKeys.Contains(key))
                {
                    // An outcome written at the segment's level is one indentation mistake: say so once (the
                    // personalization block then does not also report it missing).
                    Error(k, node.Get("id")?.Text, key, OutcomeNames.Contains(key) && node.Get("personalization") is SyntaxMap
                        ? $"'{key}' is an outcome, but it is indented as a key of the segment: indent it under 'personalization' like the other outcomes"
                        : $"unknown key '{key}'{Suggestions.DidYouMean(key, SegmentKeys)}; a segment has: {string.Join(", ", SegmentKeys)}");
                    continue;
                }

                values[key] = v;
            }

            // A segment key written inside the personalization block (indented too far) is the same kind of mistake,
            // reported there once; the segment does not also report the key missing.
            var misplaced = values.GetValueOrDefault("personalization") is SyntaxMap block
                ? block.Entries.Select(e => e.Name ?? "").Where(n => SegmentKeys.Contains(n) && !OutcomeNames.Contains(n)).ToHashSet(StringComparer.Ordinal)
                : [];

            var id = values.GetValueOrDefault("id")?.Text;
            var before = errors.Count;
            if (id is null || !IdPattern().IsMatch(id))
            {
                Error(node, id, "id", misplaced.Contains("id") && id is null
                    ? "'id' is indented inside 'personalization': give it the indentation of 'personalization'"
                    : "'id' is required: lower_snake_case, starting with a letter, at most 64 characters");
                return null;
            }

            // A key indented into 'personalization' is reported there, once; not also as missing here.
            var name = values.GetValueOrDefault("name")?.Text;
            if (string.IsNullOrWhiteSpace(name) && !misplaced.Contains("name"))
            {
                Error(node, id, "name", "'name' is required");
            }

            var typeText = values.GetValueOrDefault("type")?.Text;
            if (!SegmentFamilies.TryParse(typeText, out var type) && !(typeText is null && misplaced.Contains("type")))
            {
                Error(values.GetValueOrDefault("type") ?? node, id, "type", $"'type' must be one of: {string.Join(", ", Enum.GetValues<SegmentType>().Select(SegmentFamilies.Name))} (got '{typeText}')");
            }

            var priority = SegmentFamilies.DefaultPriority(type);
            if (values.TryGetValue("priority", out var pNode)
                && (!int.TryParse(pNode.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out priority) || priority is < 0 or > 1_000_000))
            {
                Error(pNode, id, "priority", $"'priority' must be a whole number between 0 and 1000000 (got '{pNode.Text}')");
            }

            var isFallback = false;
            if (values.TryGetValue("fallback", out var fbNode) && !bool.TryParse(fbNode.Text, out isFallback))
            {
                Error(fbNode, id, "fallback", "'fallback' must be true or false");
            }

            if (values.TryGetValue("rule", out var ruleNode))
            {
                if (isFallback)
                {
                    Error(ruleNode, id, "rule", "the fallback segment has no rule: it applies when no other segment does");
                }
                else
                {
                    rulesToCompile.Add(id);
                }
            }
            else if (!isFallback && !misplaced.Contains("rule"))
            {
                Error(node, id, "rule", "'rule' is required (only the fallback segment has none)");
            }

            Persona? persona = null;
            if (values.TryGetValue("persona", out var personaNode) && !_personas.TryGetValue(personaNode.Text ?? "", out persona))
            {
                Error(personaNode, id, "persona", $"unknown persona '{personaNode.Text}'");
            }

            var variants = ReadVariants(node, id, values.GetValueOrDefault("personalization"));
            var blocks = ReadEmailBlocks(id, values.GetValueOrDefault("email_blocks"));
            var overrides = ReadIdList(id, values.GetValueOrDefault("overrides"), "overrides");
            var exclusions = ReadIdList(id, values.GetValueOrDefault("exclusions"), "exclusions");
            if (errors.Count > before || variants is null)
            {
                return null;
            }

            return new SegmentDefinition(
                id, name!, type, priority, values.GetValueOrDefault("description")?.Text ?? "", isFallback, persona, variants, overrides, exclusions, node)
            {
                EmailBlocks = blocks,
            };
        }

        /// <summary>Most named email blocks one segment may declare.</summary>
        private const int MaxEmailBlocks = 20;

        // Named content blocks beyond the five outcomes, for email layouts: name -> template (or id, template, fallback).
        private List<(string Name, VariantDefinition Variant)> ReadEmailBlocks(string id, SyntaxNode? node)
        {
            var blocks = new List<(string, VariantDefinition)>();
            if (node is null)
            {
                return blocks;
            }

            if (node is not SyntaxMap map)
            {
                Error(node, id, "email_blocks", "'email_blocks' maps a block name (such as hero or footer) to a template");
                return blocks;
            }

            if (map.Entries.Count > MaxEmailBlocks)
            {
                Error(node, id, "email_blocks", $"at most {MaxEmailBlocks} email blocks per segment (got {map.Entries.Count})");
                return blocks;
            }

            foreach (var (k, v) in map.Entries)
            {
                var name = k.Text ?? "";
                if (!IdPattern().IsMatch(name))
                {
                    Error(k, id, "email_blocks", $"block name '{name}' must be lower-case letters, digits and underscores (at most 64)");
                }
                else if (ReadVariant(id, $"email_blocks.{name}", VariantKind.Content, $"{id}.block.{name}", v) is { } variant)
                {
                    blocks.Add((name, variant));
                }
            }

            return blocks;
        }

        private List<VariantDefinition>? ReadVariants(SyntaxMap segmentNode, string id, SyntaxNode? node)
        {
            var kinds = Enum.GetValues<VariantKind>();
            var names = OutcomeNames; // by kind, in the same order
            if (node is not SyntaxMap map)
            {
                Error(node ?? segmentNode, id, "personalization", $"'personalization' is required with all five outcomes: {string.Join(", ", names)} (no segment without a personalization outcome)");
                return null;
            }

            var result = new List<VariantDefinition>(kinds.Length);
            var ok = true;
            foreach (var (k, _) in map.Entries)
            {
                if (!names.Contains(k.Text))
                {
                    Error(k, id, $"personalization.{k.Text}", SegmentKeys.Contains(k.Text)
                        ? $"'{k.Text}' is a key of the segment, but it is indented inside 'personalization': give it the indentation of 'personalization'"
                        : $"unknown outcome '{k.Text}'{Suggestions.DidYouMean(k.Text, names)}; expected {string.Join(", ", names)}");
                    ok = false;
                }
            }

            for (var i = 0; i < kinds.Length; i++)
            {
                var clause = $"personalization.{names[i]}";
                var v = map.Get(names[i]);
                if (v is null && segmentNode.Get(names[i]) is not null)
                {
                    ok = false; // written at the segment's level: reported there as an indentation mistake
                    continue;
                }

                if (v is null)
                {
                    Error(map, id, clause, $"missing '{names[i]}' outcome: every segment needs content, offer, cta, journey and messaging");
                    ok = false;
                    continue;
                }

                if (ReadVariant(id, clause, kinds[i], $"{id}.{names[i]}", v) is { } variant)
                {
                    result.Add(variant);
                }
                else
                {
                    ok = false;
                }
            }

            return ok ? result : null;
        }

        // One variant: a template string, or a mapping with id, template and fallback.
        private VariantDefinition? ReadVariant(string owner, string clause, VariantKind kind, string defaultId, SyntaxNode v)
        {
            string? variantId;
            string? source;
            var fallback = "";
            var ok = true;
            if (v is SyntaxScalar s)
            {
                variantId = defaultId;
                source = s.Value;
            }
            else if (v is SyntaxMap vm)
            {
                foreach (var (vk, _) in vm.Entries)
                {
                    if (!VariantKeys.Contains(vk.Text))
                    {
                        Error(vk, owner, clause, $"unknown key '{vk.Text}'{Suggestions.DidYouMean(vk.Text, VariantKeys)}; a variant has: {string.Join(", ", VariantKeys)}");
                        ok = false;
                    }
                }

                variantId = vm.Get("id")?.Text ?? defaultId;
                source = vm.Get("template")?.Text;
                fallback = vm.Get("fallback")?.Text ?? "";
            }
            else
            {
                Error(v, owner, clause, "an outcome is a template string or a mapping with id, template and fallback");
                return null;
            }

            if (string.IsNullOrWhiteSpace(source))
            {
                Error(v, owner, clause + ".template", "the template is empty");
                return null;
            }

            if (source.Length > MaxTemplateChars || fallback.Length > MaxTemplateChars)
            {
                Error(v, owner, clause + (source.Length > MaxTemplateChars ? ".template" : ".fallback"), $"{Math.Max(source.Length, fallback.Length):N0} characters (at most {MaxTemplateChars:N0})");
                return null;
            }

            // Refused before anything is compiled: the total is what compiling would cost.
            var before = _templateChars;
            _templateChars += source.Length + fallback.Length;
            if (_templateChars > MaxCatalogTemplateChars)
            {
                if (before <= MaxCatalogTemplateChars) // reported once, by the template that crossed the limit
                {
                    Error(v, owner, clause, $"the catalog has more than {MaxCatalogTemplateChars:N0} characters of templates once aliases are expanded (at most {MaxCatalogTemplateChars:N0}); write a long text once per segment instead of repeating it through anchors");
                }

                return null;
            }

            return ok ? new VariantDefinition(kind, variantId, source, fallback, v) : null;
        }

        private List<ExperimentDefinition> ReadExperiments(List<SegmentDefinition> segments, HashSet<string> declared)
        {
            var result = new List<ExperimentDefinition>();
            var ids = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var node in _experimentNodes)
            {
                cancellation.ThrowIfCancellationRequested();
                if (ReadExperiment(node, declared) is not { } experiment)
                {
                    continue;
                }

                if (!ids.TryAdd(experiment.Id, experiment.Node.At.File))
                {
                    Error(node, null, $"experiments.{experiment.Id}", $"duplicate experiment id (also defined in {ids[experiment.Id]})");
                    continue;
                }

                // One experiment per segment (or per catalog) at a time, unless a layer splits users between them.
                if (result.FirstOrDefault(e => e.SegmentId == experiment.SegmentId && Overlap(e, experiment) && (e.Layer is null || e.Layer != experiment.Layer)) is { } other)
                {
                    var scope = experiment.SegmentId is { } segment ? $"segment '{segment}'" : "the catalog";
                    Error(node, null, $"experiments.{experiment.Id}.segment", $"{scope} already has experiment '{other.Id}' ({other.Node.At.File}:{other.Node.At.Line}) in an overlapping time window; give them windows that do not overlap, or put both in one layer (layer: NAME) to split users between them");
                    continue;
                }

                if (experiment.SegmentId is not null && segments.All(s => s.Id != experiment.SegmentId))
                {
                    continue; // the segment itself is invalid and reported
                }

                result.Add(experiment);
            }

            // A layer's experiments take consecutive shares of its users: at most all of them.
            foreach (var layer in result.Where(e => e.Layer is not null).GroupBy(e => e.Layer!))
            {
                var shares = layer.Where(e => e.Traffic is not null).Sum(e => e.Traffic!.Value);
                if (shares > 1 + 1e-9 || (shares >= 1 - 1e-9 && layer.Any(e => e.Traffic is null)))
                {
                    var last = layer.Last();
                    Error(last.Node, null, $"experiments.{last.Id}.traffic", $"layer '{layer.Key}' is over-full: its experiments' traffic adds up to {shares:0.###} and each experiment needs a share; the shares of one layer add up to at most 1");
                }
            }

            return result;
        }

        private static bool Overlap(ExperimentDefinition a, ExperimentDefinition b) =>
            (a.Start ?? DateTimeOffset.MinValue) < (b.Stop ?? DateTimeOffset.MaxValue) && (b.Start ?? DateTimeOffset.MinValue) < (a.Stop ?? DateTimeOffset.MaxValue);

        private ExperimentDefinition? ReadExperiment(SyntaxMap node, HashSet<string> declared)
        {
            var id = node.Get("id")?.Text;
            var before = errors.Count;
            if (id is null || !IdPattern().IsMatch(id))
            {
                Error(node, null, "experiments.id", "an experiment's 'id' is required: lower_snake_case, starting with a letter, at most 64 characters");
                return null;
            }

            var clause = $"experiments.{id}";
            foreach (var (k, _) in node.Entries)
            {
                if (!ExperimentKeys.Contains(k.Text))
                {
                    Error(k, null, clause, $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, ExperimentKeys)}; an experiment has: {string.Join(", ", ExperimentKeys)}");
                }
            }

            var segmentId = node.Get("segment")?.Text;
            var scope = node.Get("scope")?.Text;
            if (scope is not null && scope != "segment" && scope != "catalog")
            {
                Error(node.Get("scope")!, null, clause + ".scope", $"'scope' is 'segment' (the default: it splits the users one segment wins) or 'catalog' (it splits every user, whatever segment wins); got '{scope}'");
            }
            else if (scope == "catalog")
            {
                if (segmentId is not null)
                {
                    Error(node.Get("segment")!, null, clause + ".segment", "an experiment of scope 'catalog' splits every user and names no segment");
                }
            }
            else if (segmentId is null)
            {
                Error(node, null, clause + ".segment", "'segment' is required: the segment whose users the experiment splits (or 'scope: catalog' for every user)");
            }
            else if (!declared.Contains(segmentId))
            {
                Error(node.Get("segment")!, null, clause + ".segment", $"unknown segment '{segmentId}'");
            }

            var layer = node.Get("layer")?.Text;
            if (layer is not null && !IdPattern().IsMatch(layer))
            {
                Error(node.Get("layer")!, null, clause + ".layer", "'layer' is a lower_snake_case name shared by experiments that must not share users");
            }

            double? traffic = null;
            if (node.Get("traffic") is { } trafficNode)
            {
                if (layer is null)
                {
                    Error(trafficNode, null, clause + ".traffic", "'traffic' is the experiment's share of its layer's users; it needs a 'layer'");
                }
                else if (double.TryParse(trafficNode.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out var t) && t > 0 && t <= 1)
                {
                    traffic = t;
                }
                else
                {
                    Error(trafficNode, null, clause + ".traffic", $"'traffic' is a share greater than 0 and at most 1, such as 0.5 (got '{trafficNode.Text}')");
                }
            }

            var start = Time(node.Get("start"), clause + ".start");
            var stop = Time(node.Get("stop"), clause + ".stop");
            if (start is { } s && stop is { } e && e <= s)
            {
                Error(node.Get("stop")!, null, clause + ".stop", "'stop' must be after 'start'");
            }

            var primary = node.Get("primary_metric")?.Text ?? ExperimentMetrics.Default;
            if (!ExperimentMetrics.Names.Contains(primary))
            {
                Error(node.Get("primary_metric")!, null, clause + ".primary_metric", $"unknown metric '{primary}'; expected one of: {string.Join(", ", ExperimentMetrics.Names)}");
            }

            var guardrails = Texts(node.Get("guardrails"));
            foreach (var g in guardrails.Where(g => !ExperimentMetrics.Names.Contains(g)))
            {
                Error(node.Get("guardrails")!, null, clause + ".guardrails", $"unknown metric '{g}'; expected any of: {string.Join(", ", ExperimentMetrics.Names)}");
            }

            double? mde = null;
            if (node.Get("minimum_detectable_effect") is { } mdeNode)
            {
                if (double.TryParse(mdeNode.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m > 0 && m < 10)
                {
                    mde = m;
                }
                else
                {
                    Error(mdeNode, null, clause + ".minimum_detectable_effect", $"'minimum_detectable_effect' is a relative change greater than 0 and below 10, such as 0.1 for 10 % (got '{mdeNode.Text}')");
                }
            }

            var exposure = ExposureTrigger.Decision;
            if (node.Get("exposure") is { } exposureNode)
            {
                switch (exposureNode.Text)
                {
                    case "decision":
                        break;
                    case "impression":
                        exposure = ExposureTrigger.Impression;
                        break;
                    default:
                        Error(exposureNode, null, clause + ".exposure", $"'exposure' is 'decision' (a user is exposed when a decision in the experiment is served) or 'impression' (on its first impression outcome); got '{exposureNode.Text}'");
                        break;
                }
            }

            var bandit = false;
            if (node.Get("allocation") is { } allocationNode)
            {
                switch (allocationNode.Text)
                {
                    case "fixed":
                        break;
                    case "bandit":
                        bandit = true;
                        break;
                    default:
                        Error(allocationNode, null, clause + ".allocation", $"'allocation' is 'fixed' (the weights, the default) or 'bandit' (Thompson sampling on the primary metric); got '{allocationNode.Text}'");
                        break;
                }
            }

            var floor = ThompsonSampling.MinimumFloor;
            if (node.Get("floor") is { } floorNode)
            {
                if (!bandit)
                {
                    Error(floorNode, null, clause + ".floor", "'floor' is the least share a bandit keeps per arm; it needs 'allocation: bandit'");
                }
                else if (!double.TryParse(floorNode.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out floor) || !double.IsFinite(floor) || floor < ThompsonSampling.MinimumFloor || floor > 0.5)
                {
                    Error(floorNode, null, clause + ".floor", $"'floor' is a share from {ThompsonSampling.MinimumFloor} to 0.5 (got '{floorNode.Text}')");
                }
            }

            var arms = ReadArms(node, id, clause);
            if (bandit && arms is not null && floor * arms.Count > 1)
            {
                Error(node.Get("floor")!, null, clause + ".floor", $"a floor of {floor} for {arms.Count} arms adds up to more than everyone");
            }

            // The layer places users by (layer name, "layer") and the decisioning holdout by ("holdout", "decisioning"): an
            // experiment hashing by the same pair would split users exactly as they were placed there (within a layer's
            // range every user in one arm). A kept version loads as it was published.
            var salt = node.Get("salt")?.Text ?? id;
            if (!KeptVersion.Loading && ((layer is not null && id == Assignment.LayerId && salt == layer) || (id == Assignment.HoldoutId && salt == Assignment.HoldoutSalt)))
            {
                Error(node.Get("salt") ?? node.Get("id") ?? node, null, clause + ".salt", $"salt '{salt}' with id '{id}' is how the {(id == Assignment.LayerId ? "layer" : "decisioning holdout")} itself places users, so this experiment's arms would follow its ranges instead of splitting them; give the experiment another salt");
            }

            var promoted = node.Get("promoted")?.Text;
            if (promoted is not null && arms is not null && arms.All(a => a.Id != promoted))
            {
                Error(node.Get("promoted")!, null, clause + ".promoted", $"'promoted' names the winning arm; '{promoted}' is not one of: {string.Join(", ", arms.Select(a => a.Id))}");
            }

            if (errors.Count > before || arms is null || (segmentId is null && scope != "catalog"))
            {
                return null;
            }

            return new ExperimentDefinition(id, scope == "catalog" ? null : segmentId, node.Get("description")?.Text ?? "", node.Get("salt")?.Text ?? id, start, stop, primary, guardrails, mde, arms, node, exposure, promoted, layer, traffic, bandit ? floor : null);
        }

        private List<ArmDefinition>? ReadArms(SyntaxMap experiment, string id, string clause)
        {
            if (experiment.Get("arms") is SyntaxList { Items.Count: > MaxArms } many)
            {
                Error(many, null, clause + ".arms", $"at most {MaxArms} arms per experiment (got {many.Items.Count})");
                return null;
            }

            if (experiment.Get("arms") is not SyntaxList list || list.Items.Count < 2)
            {
                Error(experiment.Get("arms") ?? experiment, null, clause + ".arms", "'arms' is required: a list of at least two arms (the first is the control)");
                return null;
            }

            var kinds = Enum.GetValues<VariantKind>();
            var names = OutcomeNames; // by kind, in the same order
            var arms = new List<ArmDefinition>();
            var ok = true;
            foreach (var item in list.Items)
            {
                if (item is not SyntaxMap arm || arm.Get("id")?.Text is not { } armId || !IdPattern().IsMatch(armId))
                {
                    Error(item, null, clause + ".arms", "each arm is a mapping with an 'id' (lower_snake_case), a 'weight' and optional 'variants'");
                    ok = false;
                    continue;
                }

                var armClause = $"{clause}.arms.{armId}";
                foreach (var (k, _) in arm.Entries)
                {
                    if (!ArmKeys.Contains(k.Text))
                    {
                        Error(k, null, armClause, $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, ArmKeys)}; an arm has: {string.Join(", ", ArmKeys)}");
                        ok = false;
                    }
                }

                if (arms.Any(a => a.Id == armId))
                {
                    Error(arm, null, armClause, $"duplicate arm id '{armId}'");
                    ok = false;
                }

                var weight = 1.0;
                // Bounded above so that the arms' sum stays finite (1e308 twice was +Inf: every user got the last arm).
                if (arm.Get("weight") is { } w && (!double.TryParse(w.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out weight) || !double.IsFinite(weight) || weight is < 0 or > MaxArmWeight))
                {
                    Error(w, null, armClause + ".weight", $"'weight' is a number from 0 to {MaxArmWeight:N0} (got '{w.Text}')");
                    ok = false;
                }

                var variants = new List<VariantDefinition>();
                if (arm.Get("variants") is { } vNode)
                {
                    if (vNode is not SyntaxMap vm)
                    {
                        Error(vNode, null, armClause + ".variants", $"'variants' maps outcomes ({string.Join(", ", names)}) to templates");
                        ok = false;
                    }
                    else
                    {
                        foreach (var (k, v) in vm.Entries)
                        {
                            var index = Array.IndexOf(names, k.Text);
                            if (index < 0)
                            {
                                Error(k, null, armClause + ".variants", $"unknown outcome '{k.Text}'; expected {string.Join(", ", names)}");
                                ok = false;
                            }
                            else if (ReadVariant(id, $"{armClause}.variants.{names[index]}", kinds[index], $"{id}.{armId}.{names[index]}", v) is { } variant)
                            {
                                variants.Add(variant);
                            }
                            else
                            {
                                ok = false;
                            }
                        }
                    }
                }

                arms.Add(new ArmDefinition(armId, weight, variants));
            }

            if (ok && arms.Sum(a => a.Weight) <= 0)
            {
                Error(list, null, clause + ".arms", "at least one arm needs a weight above 0");
                ok = false;
            }

            return ok ? arms : null;
        }

        private DateTimeOffset? Time(SyntaxNode? node, string clause)
        {
            if (node is null)
            {
                return null;
            }

            if (DateTimeOffset.TryParse(node.Text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
            {
                return t;
            }

            Error(node, null, clause, $"a time such as 2026-12-01T00:00:00Z (got '{node.Text}')");
            return null;
        }

        private string[] ReadIdList(string id, SyntaxNode? node, string key)
        {
            if (node is null)
            {
                return [];
            }

            if (node is SyntaxScalar s && !string.IsNullOrEmpty(s.Value))
            {
                return [s.Value];
            }

            if (node is SyntaxList seq && seq.Items.All(c => c is SyntaxScalar))
            {
                return seq.Items.Select(c => c.Text!).ToArray();
            }

            Error(node, id, key, $"'{key}' must be a list of segment ids");
            return [];
        }

        private void ReadFragments(SyntaxNode node)
        {
            if (node is not SyntaxMap fragments)
            {
                Error(node, null, "fragments", "'fragments' must be a mapping of name to rule");
                return;
            }

            foreach (var (k, v) in fragments.Entries)
            {
                var name = k.Text ?? "";
                if (!IdPattern().IsMatch(name) || !_fragments.TryAdd(name, v))
                {
                    Error(k, null, $"fragments.{name}", "fragment names are unique and lower_snake_case");
                }
            }
        }

        private void ReadSettings(SyntaxNode node)
        {
            if (node is not SyntaxMap map)
            {
                Error(node, null, "catalog", "'catalog' must be a mapping with name and fallback");
                return;
            }

            foreach (var (k, v) in map.Entries)
            {
                switch (k.Text)
                {
                    case "name":
                        _name = v.Text ?? _name;
                        break;
                    case "fallback":
                        _fallbackSetting = v;
                        break;
                    case "holdout":
                        if (!double.TryParse(v.Text, NumberStyles.Float, CultureInfo.InvariantCulture, out _holdout) || !double.IsFinite(_holdout) || _holdout < 0 || _holdout > 0.5)
                        {
                            Error(v, null, "catalog.holdout", $"'holdout' is the share of users who get the fallback experience for everything, from 0 to 0.5 (got '{v.Text}')");
                            _holdout = 0;
                        }

                        break;
                    default:
                        Error(k, null, "catalog", $"unknown key '{k.Text}'{Suggestions.DidYouMean(k.Text, ["name", "fallback", "holdout"])}; expected name, fallback or holdout");
                        break;
                }
            }
        }

        private void ReadSchema(SyntaxNode node)
        {
            if (node is not SyntaxMap map || map.Get("traits") is not SyntaxMap traits)
            {
                Error(node, null, "schema", "'schema' must be a mapping with 'traits'");
                return;
            }

            foreach (var (k, v) in traits.Entries)
            {
                var name = k.Text ?? "";
                var clause = $"schema.traits.{name}";
                if (!IdPattern().IsMatch(name))
                {
                    Error(k, null, clause, "trait names are lower_snake_case");
                    continue;
                }

                if (v is not SyntaxMap def)
                {
                    Error(v, null, clause, "a trait is a mapping with type, and optionally pii and description");
                    continue;
                }

                var typeText = def.Get("type")?.Text;
                if (!Enum.TryParse<FieldType>(typeText, ignoreCase: true, out var type) || typeText is null || !typeText.All(char.IsAsciiLetterLower))
                {
                    Error(v, null, clause, $"'type' must be one of string, number, bool, timestamp, list (got '{typeText}')");
                    continue;
                }

                var pii = false;
                if (def.Get("pii") is { } piiNode && !bool.TryParse(piiNode.Text, out pii))
                {
                    // A trait meant as personal data that is read as not (pii: yes) would be logged and kept unsealed.
                    Error(piiNode, null, clause + ".pii", $"'pii' is true or false (got '{piiNode.Text}')");
                    continue;
                }

                if (def.Entries.Select(e => e.Key.Text).FirstOrDefault(key => !TraitKeys.Contains(key)) is { } unknown)
                {
                    Error(def, null, clause, $"unknown key '{unknown}'{Suggestions.DidYouMean(unknown, TraitKeys)}; a trait has: {string.Join(", ", TraitKeys)}");
                    continue;
                }
                if (_traits.ContainsKey(name))
                {
                    Error(k, null, clause, "trait declared twice");
                    continue;
                }

                var observedBy = def.Get("observed_by")?.Text;
                if (observedBy is not null && !Observable.Contains(observedBy))
                {
                    Error(v, null, clause, $"'observed_by' must be one of: {string.Join(", ", Observable)}");
                    continue;
                }

                if (observedBy is not null && type != FieldType.String && !KeptVersion.Loading)
                {
                    // The observed fields are text: a declared number or list would never be compared with them.
                    Error(def.Get("type") ?? v, null, clause, $"a trait observed_by {observedBy} is a string (the field it is observed by is text), not a {typeText}");
                    continue;
                }

                if (DerivedScores.Traits.TryGetValue(name, out var derived) && derived != type && !KeptVersion.Loading)
                {
                    // The service derives this trait; rules would read the derived value as the declared type and never match it.
                    // (A version active before this check keeps loading, with the meaning it had.)
                    Error(def.Get("type") ?? v, null, clause, $"'{name}' is derived by the service as a {derived.ToString().ToLowerInvariant()}; declare it with that type (declared: {typeText})");
                    continue;
                }

                _traits[name] = new TraitDefinition(name, type, pii, def.Get("description")?.Text ?? "", observedBy);
            }
        }

        private void ReadPersonas(SyntaxNode node)
        {
            if (node is not SyntaxList seq)
            {
                Error(node, null, "personas", "'personas' must be a list");
                return;
            }

            foreach (var entry in seq.Items)
            {
                if (entry is not SyntaxMap item)
                {
                    Error(entry, null, "personas", "a persona is a mapping with id, name, tone, messaging and the like");
                    continue;
                }

                var id = item.Get("id")?.Text;
                if (id is null || !IdPattern().IsMatch(id))
                {
                    Error(item, null, "personas", "a persona needs a lower_snake_case 'id'");
                    continue;
                }

                if (item.Entries.Select(e => e.Key.Text).FirstOrDefault(key => !PersonaKeys.Contains(key)) is { } unknown)
                {
                    Error(item, null, $"personas.{id}", $"unknown key '{unknown}'{Suggestions.DidYouMean(unknown, PersonaKeys)}; a persona has: {string.Join(", ", PersonaKeys)}");
                    continue;
                }

                if (_personas.ContainsKey(id))
                {
                    Error(item, null, $"personas.{id}", "persona declared twice");
                    continue;
                }

                _personas[id] = new Persona(
                    id,
                    item.Get("name")?.Text ?? id,
                    item.Get("tone")?.Text ?? "",
                    item.Get("messaging")?.Text ?? "",
                    Texts(item.Get("triggers")),
                    Texts(item.Get("objections")))
                {
                    Role = item.Get("role")?.Text ?? "",
                    Goals = Texts(item.Get("goals")),
                    PainPoints = Texts(item.Get("pain_points")),
                    Behaviour = item.Get("behaviour")?.Text ?? "",
                    Channels = Texts(item.Get("channels")),
                };
            }
        }

        private static List<string> Texts(SyntaxNode? node) =>
            node is SyntaxList seq ? seq.Items.Select(c => c.Text ?? "").ToList() : [];

        private void Error(SyntaxNode node, string? segment, string? clause, string message) =>
            errors.Add(new CatalogError(node.At.File, node.At.Line, segment, clause, message) { Column = node.At.Column });
    }
}
