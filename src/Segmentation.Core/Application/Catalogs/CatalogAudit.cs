using System.Globalization;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Profiles;
using Segmentation.Core.Requests;
using Segmentation.Core.Rules;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Catalogs;

/// <summary>Thresholds of the catalog's validation warnings.</summary>
public sealed record AuditOptions
{
    /// <summary>Segments smaller than this are "too small" (the framework's ideal is 1,000+).</summary>
    public int MinSize { get; init; } = 1000;

    /// <summary>Segments smaller than this are below any statistical significance.</summary>
    public int SignificanceFloor { get; init; } = 30;

    /// <summary>Segments matching at least this share of the population are "too broad".</summary>
    public double BroadShare { get; init; } = 0.9;

    /// <summary>A segment without members for this long is stale: an assumption the data no longer supports.</summary>
    public TimeSpan NoMembersFor { get; init; } = TimeSpan.FromDays(30);

    /// <summary>
    /// The defaults, with each threshold a caller gave (a positive value; 0 means "the default") in its place. Throws
    /// <see cref="ValidationException"/> (fields under <c>thresholds</c>) for a negative size or a share outside 0–1.
    /// </summary>
    public static AuditOptions Overriding(int minSize, int significanceFloor, double broadShare)
    {
        var v = new ViolationList("thresholds");
        if (minSize < 0)
        {
            v.Add("min_size", "must be 0 (the default) or more");
        }

        if (significanceFloor < 0)
        {
            v.Add("significance_floor", "must be 0 (the default) or more");
        }

        if (!(broadShare is >= 0 and <= 1))
        {
            v.Add("broad_share", "must be a share from 0 to 1 (0 means the default, 0.9)");
        }

        v.ThrowIfAny();
        var defaults = new AuditOptions();
        return defaults with
        {
            MinSize = minSize > 0 ? minSize : defaults.MinSize,
            SignificanceFloor = significanceFloor > 0 ? significanceFloor : defaults.SignificanceFloor,
            BroadShare = broadShare > 0 ? broadShare : defaults.BroadShare,
        };
    }
}

/// <summary>A validation warning, computed against the current profiles, with its numbers.</summary>
/// <param name="Code">Stable code: too_small, below_significance, no_members, too_broad, overlap_unresolved, identical_outcome, stale, no_fallback.</param>
/// <param name="Segment">The segment it is about.</param>
/// <param name="Other">The other segment, for overlaps and identical outcomes.</param>
/// <param name="File">File the segment is defined in.</param>
/// <param name="Message">What is wrong, with the numbers.</param>
public sealed record CatalogWarning(string Code, string Segment, string? Other, string File, string Message)
{
    /// <summary>Line of <see cref="File"/> where the segment the warning is about is defined (0 when not known).</summary>
    public int Line { get; init; }

    /// <summary>The clause it is about, for example <c>personalization.offer</c> (empty when the whole segment).</summary>
    public string Clause { get; init; } = "";

    /// <inheritdoc />
    public override string ToString() => $"{File}:{Line} [{Code}] segment '{Segment}'{(Clause.Length == 0 ? "" : $" {Clause}")}{(Other is null ? "" : $" (with '{Other}')")}: {Message}";
}

/// <summary>Size and share of one segment.</summary>
public sealed record SegmentSize(string SegmentId, int Members, double Share);

/// <summary>The audit of a catalog against a population: sizes, pairwise overlaps and warnings.</summary>
public sealed record AuditReport(int Population, IReadOnlyList<SegmentSize> Sizes, IReadOnlyList<(string A, string B, int Count)> Overlaps, IReadOnlyList<CatalogWarning> Warnings);

/// <summary>The result of previewing a candidate segment against the current profiles.</summary>
public sealed record SegmentPreview(string SegmentId, int Members, int Population, double Share, IReadOnlyList<string> Sample, IReadOnlyList<(string SegmentId, int Count, double ShareOfCandidate)> Overlaps, IReadOnlyList<CatalogWarning> Warnings);

/// <summary>
/// Measures catalogs against the current profiles: how many users each segment holds,
/// how segments overlap, and what should worry the catalog's owners.
/// </summary>
public static class CatalogAudit
{
    /// <summary>
    /// Most warnings of each kind about a pair of segments (overlap_unresolved, identical_outcome); past them one more
    /// says how many were left out. A catalog of 2,000 segments sharing their outcomes has two million such pairs.
    /// </summary>
    public const int MaxPairWarnings = 1_000;

    /// <summary>Most overlapping pairs a report lists: the largest overlaps, in catalog order.</summary>
    public const int MaxOverlapPairs = 20_000;

    // The warnings of one pair kind: the first MaxPairWarnings, then how many more.
    private sealed class PairWarnings
    {
        private int _count;
        private CatalogWarning? _firstLeftOut;

        public void Add(List<CatalogWarning> warnings, CatalogWarning warning)
        {
            if (++_count <= MaxPairWarnings)
            {
                warnings.Add(warning);
            }
            else
            {
                _firstLeftOut ??= warning;
            }
        }

        public void AddRest(List<CatalogWarning> warnings, string what)
        {
            if (_firstLeftOut is { } first)
            {
                warnings.Add(first with { Other = null, Message = $"{_count - MaxPairWarnings:N0} more {what} (not listed; the first {MaxPairWarnings:N0} are), from this one on" });
            }
        }
    }

    /// <summary>Evaluates every segment's rule for every profile (no request context) and reports.</summary>
    public static AuditReport Run(CatalogSnapshot catalog, IEnumerable<Profile> profiles, RfmModel rfm, DateTimeOffset now, AuditOptions? options = null, MembershipIndex? index = null, CancellationToken cancellation = default)
    {
        options ??= new AuditOptions();
        var segments = catalog.Segments;
        var n = segments.Count;
        var sizes = new int[n];
        var overlap = new int[n, n];
        var population = 0;
        var matchedRanks = new List<int>(n);
        foreach (var (_, m) in Evaluated(catalog, profiles, rfm, now, cancellation))
        {
            population++;
            matchedRanks.Clear();
            for (var i = 0; i < n; i++)
            {
                if (m[i])
                {
                    matchedRanks.Add(i);
                    sizes[i]++;
                }
            }

            foreach (var a in matchedRanks)
            {
                foreach (var b in matchedRanks)
                {
                    if (a < b)
                    {
                        overlap[a, b]++;
                    }
                }
            }
        }

        var warnings = new List<CatalogWarning>();
        var (unresolved, identical) = (new PairWarnings(), new PairWarnings());
        for (var i = 0; i < n; i++)
        {
            var s = segments[i];
            if (!s.IsFallback && s.Rule?.ReadsContext == false)
            {
                // Rules that read the request context are measured per request, not per profile.
                SizeWarnings(s, sizes[i], population, options, index, now, warnings);
            }

            for (var j = i + 1; j < n; j++)
            {
                var t = segments[j];
                if (overlap[i, j] > 0 && !s.IsFallback && !t.IsFallback &&
                    SegmentFamilies.DefaultPriority(s.Type) == SegmentFamilies.DefaultPriority(t.Type) &&
                    s.Priority == t.Priority && !Resolves(s, t) && !Resolves(t, s))
                {
                    unresolved.Add(warnings, new CatalogWarning("overlap_unresolved", s.Id, t.Id, s.SourceFile,
                        $"'{s.Id}' and '{t.Id}' are in the same family, share {overlap[i, j]:N0} members ({Pct(overlap[i, j], sizes[i])} of '{s.Id}') and have the same priority ({s.Priority}) with no override or exclusion between them; only declaration order decides") { Line = s.SourceLine });
                }

                if (SameOutcome(s, t))
                {
                    identical.Add(warnings, new CatalogWarning("identical_outcome", t.Id, s.Id, t.SourceFile,
                        $"'{t.Id}' has exactly the same five personalization outcomes as '{s.Id}': a segment that changes no experience should not exist") { Line = t.SourceLine });
                }
            }
        }

        unresolved.AddRest(warnings, "pairs of segments overlap unresolved");
        identical.AddRest(warnings, "pairs of segments have identical outcomes");
        FallbackWarnings(catalog, warnings);
        var pairs = new List<(string A, string B, int Count)>();
        for (var i = 0; i < n; i++)
        {
            for (var j = i + 1; j < n; j++)
            {
                if (overlap[i, j] > 0)
                {
                    pairs.Add((segments[i].Id, segments[j].Id, overlap[i, j]));
                }
            }
        }

        if (pairs.Count > MaxOverlapPairs)
        {
            // The largest overlaps, in the order of the catalog: every pair of a large catalog of broad segments is millions.
            var kept = pairs.Select((p, k) => (p, k)).OrderByDescending(x => x.p.Count).ThenBy(x => x.k).Take(MaxOverlapPairs).OrderBy(x => x.k).Select(x => x.p).ToList();
            pairs = kept;
        }

        return new AuditReport(
            population,
            segments.Select((s, i) => new SegmentSize(s.Id, sizes[i], population == 0 ? 0 : (double)sizes[i] / population)).ToList(),
            pairs,
            warnings);
    }

    /// <summary>
    /// Previews a candidate segment (one segment written as in a catalog file) against the current
    /// catalog and profiles. The candidate is compiled with the current schema, fragments and segments;
    /// it may reuse an existing id, in which case it is measured next to the current definition.
    /// </summary>
    public static SegmentPreview Preview(CatalogSnapshot current, string segmentYaml, IEnumerable<Profile> profiles, RfmModel rfm, DateTimeOffset now, AuditOptions? options = null, int sampleSize = 10, CancellationToken cancellation = default)
    {
        var (id, document) = RenameCandidate(segmentYaml, cancellation);
        var candidateCatalog = CatalogLoader.Load(new InMemoryCatalogSource(current.Files, "preview"), [document], cancellation);
        candidateCatalog.Features.KeepOnProfiles = false; // evaluated once: the serving catalog's trait values stay on the profiles
        var candidate = candidateCatalog.ById[PreviewId(id)];
        var others = candidateCatalog.Segments.Where(s => s != candidate && !s.IsFallback).ToList();

        var population = 0;
        var members = new List<string>();
        var overlaps = new int[others.Count];
        foreach (var (profile, m) in Evaluated(candidateCatalog, profiles, rfm, now, cancellation))
        {
            population++;
            if (!m[candidate.Rank])
            {
                continue;
            }

            members.Add(profile.UserId);
            for (var i = 0; i < others.Count; i++)
            {
                if (m[others[i].Rank])
                {
                    overlaps[i]++;
                }
            }
        }

        var warnings = new List<CatalogWarning>();
        if (candidate.Rule?.ReadsContext == false)
        {
            SizeWarnings(candidate, members.Count, population, options ?? new AuditOptions(), null, now, warnings);
        }
        return new SegmentPreview(
            id,
            members.Count,
            population,
            population == 0 ? 0 : (double)members.Count / population,
            members.Order(StringComparer.Ordinal).Take(sampleSize).ToList(),
            others.Select((o, i) => (o.Id.StartsWith(PreviewPrefix, StringComparison.Ordinal) ? o.Id[PreviewPrefix.Length..] : o.Id, overlaps[i], members.Count == 0 ? 0 : (double)overlaps[i] / members.Count))
                .Where(o => o.Item2 > 0)
                .OrderByDescending(o => o.Item2)
                .ToList(),
            warnings.Select(w => w with { Segment = id }).ToList());
    }

    private const string PreviewPrefix = "preview__";

    private const string CandidateFile = "preview/candidate.yaml";

    private static string PreviewId(string id) => PreviewPrefix + id;

    // The candidate gets a distinct id so it can be measured next to an existing definition of the same
    // segment; it is added to the catalog as one more document holding a 'segments' list of one.
    private static (string Id, SyntaxMap Document) RenameCandidate(string segmentYaml, CancellationToken cancellation)
    {
        var errors = new List<CatalogError>();
        var documents = YamlCatalogReader.Read(new CatalogFile(CandidateFile, segmentYaml), errors, cancellation);
        if (errors.Count > 0)
        {
            throw new CatalogException(errors);
        }

        if (documents is not [SyntaxMap map] || map.Get("id") is not SyntaxScalar { Value: { Length: > 0 } id } idNode)
        {
            throw new CatalogException([new CatalogError(CandidateFile, 1, null, "id", "the candidate must be one segment mapping with an 'id'")]);
        }

        if (id.Length > 64 - PreviewPrefix.Length)
        {
            throw new CatalogException([new CatalogError(CandidateFile, idNode.At.Line, id, "id", "segment ids are at most 64 characters")]);
        }

        var renamed = map with { Entries = [.. map.Entries.Select(e => e.Name == "id" ? e with { Value = idNode with { Value = PreviewId(id) } } : e)] };
        var document = new SyntaxMap([new SyntaxEntry(new SyntaxScalar("segments", map.At), new SyntaxList([renamed], map.At))], map.At);
        return (id, document);
    }

    /// <summary>
    /// The profiles that hold any data (empty ones are not part of the population), each with the
    /// segments it matches without a request context; checks for cancellation every 1,024 profiles.
    /// </summary>
    private static IEnumerable<(Profile Profile, bool[] Matched)> Evaluated(CatalogSnapshot catalog, IEnumerable<Profile> profiles, RfmModel rfm, DateTimeOffset now, CancellationToken cancellation)
    {
        var seen = 0;
        foreach (var profile in profiles)
        {
            if ((++seen & 0x3FF) == 0)
            {
                cancellation.ThrowIfCancellationRequested();
            }

            if (profile.TotalEvents + profile.Attributes.Count > 0)
            {
                yield return (profile, Decider.Evaluate(catalog, profile, RequestContext.Empty, now, rfm).Matched);
            }
        }
    }

    private static void SizeWarnings(Segment s, int members, int population, AuditOptions options, MembershipIndex? index, DateTimeOffset now, List<CatalogWarning> warnings)
    {
        var share = population == 0 ? "0%" : Pct(members, population);
        if (members == 0)
        {
            var last = index?.LastNonEmpty(s.Id);
            if (last is { } at && now - at >= options.NoMembersFor)
            {
                warnings.Add(new CatalogWarning("stale", s.Id, null, s.SourceFile, $"'{s.Id}' has had no members since {at:yyyy-MM-dd} ({(now - at).TotalDays:0} days): stale assumption?") { Line = s.SourceLine });
            }
            else
            {
                warnings.Add(new CatalogWarning("no_members", s.Id, null, s.SourceFile, $"'{s.Id}' matches none of the {population:N0} current profiles: not measurable with the data we have") { Line = s.SourceLine });
            }
        }
        else if (members < options.SignificanceFloor)
        {
            warnings.Add(new CatalogWarning("below_significance", s.Id, null, s.SourceFile, $"'{s.Id}' has {members:N0} members ({share} of {population:N0}), below the significance floor of {options.SignificanceFloor}") { Line = s.SourceLine });
        }
        else if (members < options.MinSize)
        {
            warnings.Add(new CatalogWarning("too_small", s.Id, null, s.SourceFile, $"'{s.Id}' has {members:N0} members ({share} of {population:N0}), below the minimum size of {options.MinSize:N0} (segments must be substantial enough to act on)") { Line = s.SourceLine });
        }

        if (population > 0 && (double)members / population >= options.BroadShare)
        {
            warnings.Add(new CatalogWarning("too_broad", s.Id, null, s.SourceFile, $"'{s.Id}' matches {members:N0} of {population:N0} profiles ({share}): too broad to be a distinct segment") { Line = s.SourceLine });
        }
    }

    private static bool Resolves(Segment a, Segment b) => a.Overrides.Contains(b.Id) || a.Exclusions.Contains(b.Id);

    // A template with code renders at every decision and can fail there (an output, loop or time limit; a value of
    // an unexpected type): the variant's fallback text is served then, and without one that is an empty text.
    private static void FallbackWarnings(CatalogSnapshot catalog, List<CatalogWarning> warnings)
    {
        foreach (var s in catalog.Segments)
        {
            foreach (var v in s.Variants)
            {
                Check(v, s.Id, s.SourceFile, s.SourceLine, "personalization." + v.Kind.ToString().ToLowerInvariant());
            }

            foreach (var b in s.EmailBlocks)
            {
                Check(b.Template, s.Id, s.SourceFile, s.SourceLine, "email_blocks." + b.Name);
            }
        }

        foreach (var e in catalog.Experiments)
        {
            foreach (var arm in e.Arms)
            {
                foreach (var kind in arm.Overrides)
                {
                    Check(arm.Variants[(int)kind], e.Segment?.Id ?? "", e.Node.At.File, e.Node.At.Line, $"experiments.{e.Id}.arms.{arm.Id}.variants.{kind.ToString().ToLowerInvariant()}");
                }
            }
        }

        void Check(Rendering.VariantTemplate v, string segment, string file, int line, string clause)
        {
            if (v.Static is null && v.Fallback.Length == 0)
            {
                warnings.Add(new CatalogWarning("no_fallback", segment, null, file,
                    $"variant '{v.Id}' has template code and no fallback text: a render that fails (a limit, a value of an unexpected type) serves an empty text; write it as {{ id, template, fallback }}") { Line = line, Clause = clause });
            }
        }
    }

    private static bool SameOutcome(Segment a, Segment b) =>
        a.Variants.Select(v => v.Source).SequenceEqual(b.Variants.Select(v => v.Source), StringComparer.Ordinal);

    private static string Pct(int part, int whole) => whole == 0 ? "0%" : ((double)part / whole).ToString("0.0%", CultureInfo.InvariantCulture);
}
