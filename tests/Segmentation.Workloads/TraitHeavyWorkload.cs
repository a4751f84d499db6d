using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.Composition;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Catalog;
using Segmentation.Core.Profiles;

namespace Segmentation.Workloads;

/// <summary>
/// The workload feature-flag and targeting engines are usually measured on: flat profiles of about 30 declared
/// attributes (numbers, booleans, strings, string lists, some missing) and 50 segments of 2 to 6 conditions
/// nested up to three levels deep (eq, ne, lt, lte, gt, gte, between, in, not_in, contains, exists) over a
/// declared trait schema. Seeded, so every run (and every engine compared with it) sees the same data.
/// Profiles are written as a storefront would write them: <c>SetTraits</c>, zero-party.
/// </summary>
public sealed class TraitHeavyWorkload : IDisposable
{
    /// <summary>Segments with a rule (plus the fallback).</summary>
    public const int RuleSegments = 50;

    /// <summary>Declared traits in the schema.</summary>
    public const int DeclaredTraits = 30;

    private static readonly string[] Colours = ["red", "green", "blue", "black", "white", "grey", "pink", "navy"];
    private static readonly string[] Tiers = ["free", "basic", "plus", "pro", "enterprise"];
    private static readonly string[] Countries = ["GB", "FR", "DE", "ES", "IT", "NL", "US", "CA", "IE", "SE"];
    private static readonly string[] Tags = [.. Enumerable.Range(0, 30).Select(i => "tag" + i.ToString(CultureInfo.InvariantCulture))];

    private readonly ServiceProvider _services;

    /// <summary>Builds the catalog and writes <paramref name="profiles"/> profiles.</summary>
    public TraitHeavyWorkload(int profiles = 10_000, int seed = 20261202)
    {
        Now = new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(new StoppedClock(Now));
        services.AddSingleton<ICatalogSource>(new InMemoryCatalogSource([new CatalogFile("flat.yaml", CatalogYaml(seed))], "trait-heavy"));
        services.AddSegmentationCore();
        _services = services.BuildServiceProvider();
        Catalogs = _services.GetRequiredService<CatalogStartup>().Load();
        if (Catalogs.Current.Segments.Count(s => s.Rule is not null) != RuleSegments)
        {
            throw new InvalidOperationException($"the generated catalog should have {RuleSegments} rule segments");
        }

        var ingestion = _services.GetRequiredService<ProfileIngestion>();
        var random = new Random(seed + 1);
        var ids = new string[profiles];
        for (var p = 0; p < profiles; p++)
        {
            ids[p] = "flat-" + p.ToString(CultureInfo.InvariantCulture);
            ingestion.SetTraits(ids[p], Traits(random), "crm", AttributeLayer.ZeroParty, Now.AddMinutes(-5));
        }

        var store = _services.GetRequiredService<IProfileStore>();
        Profiles = [.. ids.Select(id => store.Get(id)!)];
        Rfm = _services.GetRequiredService<RfmModelProvider>().Current;
    }

    /// <summary>The evaluation time.</summary>
    public DateTimeOffset Now { get; }

    /// <summary>The catalog provider (its current snapshot is the generated catalog).</summary>
    public CatalogProvider Catalogs { get; }

    /// <summary>The written profiles, in generation order.</summary>
    public IReadOnlyList<Profile> Profiles { get; }

    /// <summary>The RFM model (empty: nobody purchased).</summary>
    public RfmModel Rfm { get; }

    /// <summary>The catalog: the schema of <see cref="DeclaredTraits"/> traits, <see cref="RuleSegments"/> segments and a fallback.</summary>
    public static string CatalogYaml(int seed)
    {
        var random = new Random(seed);
        var yaml = new StringBuilder();
        yaml.AppendLine("catalog: { name: trait-heavy, fallback: everyone }");
        yaml.AppendLine("schema:");
        yaml.AppendLine("  traits:");
        foreach (var (name, type) in Schema())
        {
            yaml.AppendLine(CultureInfo.InvariantCulture, $"    {name}: {{ type: {type} }}");
        }

        yaml.AppendLine("segments:");
        string[] families = ["intent", "behavioural", "value", "need", "contextual", "psychographic"];
        for (var s = 0; s < RuleSegments; s++)
        {
            var conditions = 2 + random.Next(5); // 2..6
            yaml.AppendLine(CultureInfo.InvariantCulture, $"  - id: seg_{s}");
            yaml.AppendLine(CultureInfo.InvariantCulture, $"    name: Segment {s}");
            yaml.AppendLine(CultureInfo.InvariantCulture, $"    type: {families[s % families.Length]}");
            yaml.AppendLine(CultureInfo.InvariantCulture, $"    priority: {random.Next(1, 1000)}");
            yaml.AppendLine(CultureInfo.InvariantCulture, $"    rule: {Group(random, conditions, depth: 1)}");
            AppendOutcomes(yaml, $"seg_{s}");
        }

        yaml.AppendLine("  - id: everyone");
        yaml.AppendLine("    name: Everyone");
        yaml.AppendLine("    type: contextual");
        yaml.AppendLine("    fallback: true");
        AppendOutcomes(yaml, "everyone");
        return yaml.ToString();
    }

    private static void AppendOutcomes(StringBuilder yaml, string id)
    {
        yaml.AppendLine("    personalization:");
        foreach (var kind in new[] { "content", "offer", "cta", "journey", "messaging" })
        {
            yaml.AppendLine(CultureInfo.InvariantCulture, $"      {kind}: \"{kind} for {id}\"");
        }
    }

    // 10 numbers, 6 booleans, 8 strings, 6 string lists.
    private static IEnumerable<(string Name, string Type)> Schema() =>
        Enumerable.Range(0, 10).Select(i => ($"n{i}", "number"))
            .Concat(Enumerable.Range(0, 6).Select(i => ($"b{i}", "bool")))
            .Concat(Enumerable.Range(0, 8).Select(i => ($"s{i}", "string")))
            .Concat(Enumerable.Range(0, 6).Select(i => ($"l{i}", "list")));

    // A group of `conditions` leaves, split into nested groups while depth allows (at most three levels).
    private static string Group(Random random, int conditions, int depth)
    {
        var kind = random.Next(3) == 0 ? "any" : "all";
        var parts = new List<string>();
        var left = conditions;
        while (left > 0)
        {
            if (depth < 3 && left >= 2 && random.Next(3) == 0)
            {
                var size = 2 + random.Next(Math.Min(left, 3) - 1);
                parts.Add(Group(random, size, depth + 1));
                left -= size;
            }
            else
            {
                parts.Add(Leaf(random));
                left--;
            }
        }

        return parts.Count == 1 ? parts[0] : $"{{ {kind}: [{string.Join(", ", parts)}] }}";
    }

    private static string Leaf(Random random)
    {
        switch (random.Next(4))
        {
            case 0:
                var n = $"traits.n{random.Next(10)}";
                var x = random.Next(0, 100);
                return random.Next(9) switch
                {
                    0 => $"{{ field: {n}, eq: {x} }}",
                    1 => $"{{ field: {n}, ne: {x} }}",
                    2 => $"{{ field: {n}, lt: {x} }}",
                    3 => $"{{ field: {n}, lte: {x} }}",
                    4 => $"{{ field: {n}, gt: {x} }}",
                    5 => $"{{ field: {n}, gte: {x} }}",
                    6 => $"{{ field: {n}, between: [{x}, {x + random.Next(5, 50)}] }}",
                    7 => $"{{ field: {n}, in: [{x}, {x + 1}, {x + 2}] }}",
                    _ => $"{{ field: {n}, exists: true }}",
                };
            case 1:
                var b = $"traits.b{random.Next(6)}";
                return random.Next(4) == 0 ? $"{{ field: {b}, exists: true }}" : $"{{ field: {b}, eq: {(random.Next(2) == 0 ? "true" : "false")} }}";
            case 2:
                var i = random.Next(8);
                var s = $"traits.s{i}";
                var vocabulary = Vocabulary(i);
                var v = vocabulary[random.Next(vocabulary.Length)];
                return random.Next(6) switch
                {
                    0 or 1 => $"{{ field: {s}, eq: {v} }}",
                    2 => $"{{ field: {s}, ne: {v} }}",
                    3 => $"{{ field: {s}, in: [{v}, {vocabulary[random.Next(vocabulary.Length)]}] }}",
                    4 => $"{{ field: {s}, not_in: [{v}, {vocabulary[random.Next(vocabulary.Length)]}] }}",
                    _ => $"{{ field: {s}, exists: true }}",
                };
            default:
                var l = $"traits.l{random.Next(6)}";
                return random.Next(4) == 0 ? $"{{ field: {l}, exists: true }}" : $"{{ field: {l}, contains: {Tags[random.Next(Tags.Length)]} }}";
        }
    }

    private static string[] Vocabulary(int stringTrait) => (stringTrait % 3) switch
    {
        0 => Colours,
        1 => Tiers,
        _ => Countries,
    };

    // One profile's declared traits: each present with probability 0.85.
    private static Dictionary<string, object?> Traits(Random random)
    {
        var traits = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, type) in Schema())
        {
            if (random.Next(100) >= 85)
            {
                continue;
            }

            var index = int.Parse(name.AsSpan(1), CultureInfo.InvariantCulture);
            traits[name] = type switch
            {
                "number" => (double)random.Next(0, 100),
                "bool" => random.Next(2) == 0,
                "string" => Vocabulary(index)[random.Next(Vocabulary(index).Length)],
                _ => (IReadOnlyList<string>)[.. Enumerable.Range(0, random.Next(0, 6)).Select(_ => Tags[random.Next(Tags.Length)]).Distinct()],
            };
        }

        return traits;
    }

    /// <inheritdoc />
    public void Dispose() => _services.Dispose();
}

/// <summary>A clock stopped at one instant, so a workload evaluates the same way in every run.</summary>
internal sealed class StoppedClock(DateTimeOffset now) : TimeProvider
{
    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => now;
}
