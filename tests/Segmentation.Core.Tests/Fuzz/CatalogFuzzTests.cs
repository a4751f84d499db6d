using CsCheck;
using Segmentation.Core.Catalog;

namespace Segmentation.Core.Tests.Fuzz;

/// <summary>
/// Mutated copies of the embedded default catalog: the loader either returns a catalog or throws
/// <see cref="CatalogException"/> whose errors name a file of the catalog and a line — never any other
/// exception, and never a hang.
/// </summary>
public sealed class CatalogFuzzTests
{
    private static readonly TimeSpan PerCase = TimeSpan.FromSeconds(10);
    private static readonly IReadOnlyList<CatalogFile> Default = new EmbeddedCatalogSource().ReadFiles();

    private static readonly Gen<string> Scalar = Gen.Frequency(
        (3, Fuzz.WeirdString),
        (2, Gen.OneOf("0", "-1", "1e400", "-1e400", "99999999999999999999999999999", ".nan", ".inf", "-.inf", "0x7fffffff", "true", "null", "~", "[]", "{}", "''", "\"\"",
            "30q", "-5d", "99999999999d", "0d", "(", "[a-", "(?<=x)", "a{99999}", "\\", "{{", "{{ for x in 1..1000000000 }}x{{ end }}", "{{ profile.nope.nope }}", "{{ include 'x' }}",
            "&a x", "*a", "*undefined", "!!binary AAAA", "!!python/object:os.system", "? x", "- - -", "|", ">", "%YAML 1.1", "---", "...", "#")),
        (1, Gen.Long.Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (1, Gen.Double.Select(d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));

    private abstract record Mutation;

    private sealed record DeleteLine(int Line) : Mutation;

    private sealed record DuplicateLine(int Line) : Mutation;

    private sealed record SwapLines(int A, int B) : Mutation;

    private sealed record ReplaceScalar(int Line, string Value) : Mutation;

    private sealed record InsertText(int Line, int Column, string Text) : Mutation;

    private sealed record Reindent(int Line, int Delta) : Mutation;

    private sealed record DeepNesting(int Line, int Depth, int Kind) : Mutation;

    private sealed record RandomBytes(byte[] Bytes) : Mutation;

    private sealed record SelfAlias(int Kind) : Mutation;

    private static readonly Gen<Mutation> Mutations = Gen.Frequency(
        (3, Gen.Int.Positive.Select(l => (Mutation)new DeleteLine(l))),
        (2, Gen.Int.Positive.Select(l => (Mutation)new DuplicateLine(l))),
        (2, Gen.Select(Gen.Int.Positive, Gen.Int.Positive).Select((a, b) => (Mutation)new SwapLines(a, b))),
        (6, Gen.Select(Gen.Int.Positive, Scalar).Select((l, v) => (Mutation)new ReplaceScalar(l, v))),
        (2, Gen.Select(Gen.Int.Positive, Gen.Int[0, 80], Fuzz.WeirdString).Select((l, c, t) => (Mutation)new InsertText(l, c, t))),
        (2, Gen.Select(Gen.Int.Positive, Gen.Int[-6, 6]).Select((l, d) => (Mutation)new Reindent(l, d))),
        (1, Gen.Select(Gen.Int.Positive, Gen.Int[10, 3000], Gen.Int[0, 3]).Select((l, d, k) => (Mutation)new DeepNesting(l, d, k))),
        (1, Gen.Byte.Array[1, 200].Select(b => (Mutation)new RandomBytes(b))),
        (1, Gen.Int[0, 3].Select(k => (Mutation)new SelfAlias(k))));

    [Fact]
    public void Mutated_default_catalog_loads_or_reports_catalog_errors()
    {
        Gen.Select(Gen.Int[0, Default.Count - 1], Mutations.Array[1, 4])
            .Sample((file, mutations) => LoadsOrReportsErrors(Mutate(Default, file, mutations)), iter: Fuzz.Iter(150), print: t => $"{Default[t.Item1].Name}: {string.Join(", ", t.Item2.AsEnumerable())}");
    }

    [Fact]
    public void Random_yaml_documents_load_or_report_catalog_errors()
    {
        var yaml = Gen.Frequency((3, Fuzz.WeirdString), (2, Scalar), (1, Gen.Byte.Array[0, 300].Select(b => System.Text.Encoding.UTF8.GetString(b))))
            .Array[0, 12];
        var separator = Gen.OneOf("\n", ": ", "\n- ", "\n  ", " ");
        Gen.Select(yaml, separator, Gen.Bool)
            .Sample((parts, sep, withDefault) =>
            {
                var text = string.Join(sep, parts);
                List<CatalogFile> files = withDefault ? [.. Default] : [];
                files.Add(new CatalogFile("zz-random.yaml", text));
                LoadsOrReportsErrors(files);
            }, iter: Fuzz.Iter(200), print: t => $"{string.Join(t.Item2, t.Item1)} (with default: {t.Item3})");
    }

    [Fact]
    public void Unmutated_default_catalog_loads()
    {
        var snapshot = CatalogLoader.Load(new InMemoryCatalogSource(Default));
        Assert.Contains(snapshot.Fallback, snapshot.Segments);
    }

    // Structural mutations of the YAML tree (not of its text): a key that is a list or a mapping, a scalar
    // replaced by a collection and back, a node grafted onto another place (written back as an anchor and
    // aliases when it is shared), a node wrapped in a sequence or a mapping, a collection emptied, a node
    // repeated by alias many times.
    private sealed record TreeMutation(int Kind, int Target, int Source, int Count);

    private static readonly Gen<TreeMutation> TreeMutations =
        Gen.Select(Gen.Int[0, 7], Gen.Int.Positive, Gen.Int.Positive, Gen.Int[1, 200]).Select((k, t, s, c) => new TreeMutation(k, t, s, c));

    [Fact]
    public void Structurally_mutated_yaml_trees_load_or_report_catalog_errors()
    {
        Gen.Select(Gen.Int[0, Default.Count - 1], TreeMutations.Array[1, 5])
            .Sample((file, mutations) => LoadsOrReportsErrors(MutateTree(Default, file, mutations)), iter: Fuzz.Iter(150), print: t => $"{Default[t.Item1].Name}: {string.Join(", ", t.Item2.AsEnumerable())}");
    }

    [Theory]
    [InlineData("segments:\n  - id: s\n    rule: { ? [a, b] : 1 }")]
    [InlineData("segments:\n  - id: s\n    rule: { all: [ { ? { x: 1 } : 2 } ] }")]
    [InlineData("fragments:\n  f: { ? [a] : [b] }")]
    [InlineData("? [a, b]\n: 1")]
    public void A_key_that_is_a_list_or_a_mapping_is_a_catalog_error(string yaml) =>
        LoadsOrReportsErrors([.. Default, new CatalogFile("zz-keys.yaml", yaml)]);

    [Theory]
    [InlineData(40_000)]
    [InlineData(100)]
    public void Deep_nesting_is_a_catalog_error_before_any_tree_is_built(int depth)
    {
        var yaml = "segments:\n  - id: deep\n    rule: " + new string('[', depth) + new string(']', depth);
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([.. Default, new CatalogFile("zz-deep.yaml", yaml)])));
        Assert.Contains(ex.Errors, e => e.File == "zz-deep.yaml" && e.Message.Contains("nesting deeper than", StringComparison.Ordinal));
    }

    [Fact]
    public void An_alias_bomb_is_a_catalog_error_without_expanding_it()
    {
        // Each level doubles: 2^30 leaves from a few hundred bytes.
        var yaml = new System.Text.StringBuilder("fragments:\n  l0: &l0 { field: orders.count, gt: 1 }\n");
        for (var i = 1; i <= 30; i++)
        {
            yaml.Append($"  l{i}: &l{i} {{ all: [ *l{i - 1}, *l{i - 1} ] }}\n");
        }

        yaml.Append("segments:\n  - id: bomb\n    name: bomb\n    type: behavioural\n    rule: *l30\n");
        var started = System.Diagnostics.Stopwatch.StartNew();
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([.. Default, new CatalogFile("zz-bomb.yaml", yaml.ToString())])));
        Assert.Contains(ex.Errors, e => e.Message.Contains("aliases", StringComparison.Ordinal));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5), $"took {started.Elapsed}");
    }

    [Fact]
    public void Aliases_cannot_nest_deeper_than_the_limit()
    {
        // Regression: depth was counted on the text only; an alias used 60 levels down stood for its whole nesting, so
        // 75 anchors of 60 levels each (within every other limit) stood for about 4,500 levels, and the tree walker
        // that converts the document recursed that deep (a stack overflow ends the process).
        var yaml = new System.Text.StringBuilder("fragments:\n  a0: &a0 x\n");
        for (var i = 1; i <= 75; i++)
        {
            yaml.Append($"  a{i}: &a{i} ").Append('[', 60).Append($" *a{i - 1} ").Append(']', 60).Append('\n');
        }

        var error = YamlLimits.Check("deep.yaml", yaml.ToString()); // checked on the event stream: no tree is built
        Assert.NotNull(error);
        Assert.Contains("nesting deeper than", error.Message, StringComparison.Ordinal);
        Assert.Null(YamlLimits.Check("shallow.yaml", "fragments:\n  a: &a [[x]]\n  b: [[*a]]\n")); // aliases within the limit are fine
    }

    [Fact]
    public void An_alias_to_an_anchor_defined_after_it_is_an_error_before_any_tree_is_built()
    {
        // Regression (review): an alias used before its anchor was counted as one node of no depth, and the YAML library
        // resolves such an alias to the anchor defined later: a chain of 30,000 forward aliases (800 KB, within every
        // limit) stood for 30,000 levels, and converting it overflowed the stack (which ends the process); ten forward
        // aliases on each of nine levels stood for a billion nodes.
        var chain = new System.Text.StringBuilder("chain:\n");
        for (var i = 0; i < 30_000; i++)
        {
            chain.Append($"  - &a{i} [*a{i + 1}]\n");
        }

        chain.Append("  - &a30000 x\n");
        var bomb = new System.Text.StringBuilder("fragments:\n");
        for (var i = 0; i < 9; i++)
        {
            bomb.Append($"  l{i}: &l{i} [").Append(string.Join(", ", Enumerable.Repeat($"*l{i + 1}", 10))).Append("]\n");
        }

        bomb.Append("  l9: &l9 x\n");
        foreach (var yaml in new[] { chain.ToString(), bomb.ToString(), "a: [*b]\n---\nb: &b y\n" })
        {
            var error = YamlLimits.Check("forward.yaml", yaml);
            Assert.NotNull(error);
            Assert.Contains("defined before it", error.Message, StringComparison.Ordinal);
        }

        Assert.Null(YamlLimits.Check("backward.yaml", "a: &b y\nc: [*b]\n")); // an alias after its anchor is fine
        var loaded = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([.. Default, new CatalogFile("zz-forward.yaml", bomb.ToString())])));
        Assert.Contains(loaded.Errors, e => e.File == "zz-forward.yaml" && e.Message.Contains("defined before it", StringComparison.Ordinal));
    }

    [Fact]
    public void Many_files_each_within_the_alias_limit_are_a_catalog_error_before_their_trees_are_built()
    {
        // Regression: the limit on what aliases stand for applied per file, and a catalog may have many files (a request
        // up to 200): 20 files of 230 bytes, each standing for about 190,000 nodes, were all expanded into trees held
        // until validation (hundreds of MB from a read-only key's ValidateCatalog).
        const string Bomb = """
            fragments:
              a: &a [x, x, x, x, x, x, x, x, x, x]
              b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
              c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
              d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
              e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
            """;
        Assert.Null(YamlLimits.Check("one.yaml", Bomb)); // one alone is within the file's limit
        var files = Enumerable.Range(0, 20).Select(i => new CatalogFile($"zz-{i:00}.yaml", Bomb));

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([.. Default, .. files])));
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;

        Assert.Contains(ex.Errors, e => e.Message.Contains("files together stand for more than", StringComparison.Ordinal));
        Assert.True(allocated < 150L << 20, $"{allocated / (1 << 20)} MB allocated: the files' trees were built");
    }

    [Fact]
    public void Fragments_that_multiply_through_references_are_a_catalog_error()
    {
        var yaml = new System.Text.StringBuilder("fragments:\n  f0: { field: orders.count, gt: 1 }\n");
        for (var i = 1; i <= 30; i++)
        {
            yaml.Append($"  f{i}: {{ all: [ {{ fragment: f{i - 1} }}, {{ fragment: f{i - 1} }} ] }}\n");
        }

        var ex = Assert.Throws<CatalogException>(() => CatalogLoader.Load(new InMemoryCatalogSource([.. Default, new CatalogFile("zz-refs.yaml", yaml.ToString())])));
        Assert.Contains(ex.Errors, e => e.Message.Contains("conditions once", StringComparison.Ordinal));
    }

    [Fact]
    public void Loading_stops_when_the_caller_gives_up()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => CatalogLoader.Load(new InMemoryCatalogSource(Default), cancelled.Token));
    }

    private static List<CatalogFile> MutateTree(IReadOnlyList<CatalogFile> files, int index, TreeMutation[] mutations)
    {
        var stream = new YamlDotNet.RepresentationModel.YamlStream();
        stream.Load(new StringReader(files[index].Text));
        var root = stream.Documents[0].RootNode;
        foreach (var m in mutations)
        {
            var nodes = Walk(root).ToList();
            var (target, parent, key) = nodes[m.Target % nodes.Count];
            var source = nodes[m.Source % nodes.Count].Node;
            YamlDotNet.RepresentationModel.YamlNode replacement = m.Kind switch
            {
                0 => new YamlDotNet.RepresentationModel.YamlSequenceNode(new YamlDotNet.RepresentationModel.YamlScalarNode("a"), new YamlDotNet.RepresentationModel.YamlScalarNode("b")),
                1 => new YamlDotNet.RepresentationModel.YamlMappingNode { { "x", "1" } },
                2 => new YamlDotNet.RepresentationModel.YamlScalarNode("scalar"),
                3 => source, // grafted, shared: written back as an alias
                4 => new YamlDotNet.RepresentationModel.YamlSequenceNode(target),
                5 => new YamlDotNet.RepresentationModel.YamlMappingNode { { "all", new YamlDotNet.RepresentationModel.YamlSequenceNode(target) } },
                6 => new YamlDotNet.RepresentationModel.YamlSequenceNode(),
                _ => new YamlDotNet.RepresentationModel.YamlSequenceNode(Enumerable.Repeat(source, m.Count)),
            };
            if (parent is null || Walk(replacement).Any(n => ReferenceEquals(n.Node, parent)))
            {
                continue; // the root, or a graft that would make the tree a cycle
            }

            if (parent is YamlDotNet.RepresentationModel.YamlMappingNode map && key is not null)
            {
                if (m.Kind == 0 || m.Kind == 1)
                {
                    var value = map.Children[key];
                    map.Children.Remove(key);
                    map.Children[replacement] = value; // the key itself becomes a collection
                }
                else
                {
                    map.Children[key] = replacement;
                }
            }
            else if (parent is YamlDotNet.RepresentationModel.YamlSequenceNode seq)
            {
                var at = seq.Children.IndexOf(target);
                if (at >= 0 && !ReferenceEquals(replacement, seq))
                {
                    seq.Children[at] = replacement;
                }
            }
        }

        using var writer = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            stream.Save(writer, assignAnchors: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or YamlDotNet.Core.YamlException)
        {
            return [.. files]; // a cycle the writer cannot express: nothing to load
        }

        var result = files.ToList();
        result[index] = files[index] with { Text = writer.ToString() };
        return result;
    }

    // Every node with its parent and, in a mapping, its key (depth-first, the root without a parent).
    private static IEnumerable<(YamlDotNet.RepresentationModel.YamlNode Node, YamlDotNet.RepresentationModel.YamlNode? Parent, YamlDotNet.RepresentationModel.YamlNode? Key)> Walk(YamlDotNet.RepresentationModel.YamlNode root)
    {
        var visited = new HashSet<YamlDotNet.RepresentationModel.YamlNode>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<(YamlDotNet.RepresentationModel.YamlNode, YamlDotNet.RepresentationModel.YamlNode?, YamlDotNet.RepresentationModel.YamlNode?)>();
        pending.Push((root, null, null));
        while (pending.Count > 0)
        {
            var item = pending.Pop();
            yield return item;
            if (!visited.Add(item.Item1))
            {
                continue;
            }

            switch (item.Item1)
            {
                case YamlDotNet.RepresentationModel.YamlMappingNode map:
                    foreach (var (k, v) in map.Children)
                    {
                        pending.Push((v, map, k));
                    }

                    break;
                case YamlDotNet.RepresentationModel.YamlSequenceNode seq:
                    foreach (var child in seq.Children)
                    {
                        pending.Push((child, seq, null));
                    }

                    break;
            }
        }
    }

    private static List<CatalogFile> Mutate(IReadOnlyList<CatalogFile> files, int index, Mutation[] mutations)
    {
        var lines = files[index].Text.Split('\n').ToList();
        foreach (var m in mutations)
        {
            var n = lines.Count;
            switch (m)
            {
                case DeleteLine d when n > 1:
                    lines.RemoveAt(d.Line % n);
                    break;
                case DuplicateLine d:
                    lines.Insert(d.Line % n, lines[d.Line % n]);
                    break;
                case SwapLines s:
                    (lines[s.A % n], lines[s.B % n]) = (lines[s.B % n], lines[s.A % n]);
                    break;
                case ReplaceScalar r:
                    var i = FindLine(lines, r.Line, l => l.Contains(": ", StringComparison.Ordinal));
                    var colon = lines[i].IndexOf(": ", StringComparison.Ordinal);
                    if (colon >= 0)
                    {
                        lines[i] = lines[i][..(colon + 2)] + r.Value;
                    }

                    break;
                case InsertText t:
                    var line = lines[t.Line % n];
                    lines[t.Line % n] = line.Insert(Math.Min(t.Column, line.Length), t.Text);
                    break;
                case Reindent r:
                    var j = r.Line % n;
                    lines[j] = r.Delta >= 0 ? new string(' ', r.Delta) + lines[j] : lines[j][Math.Min(-r.Delta, lines[j].Length - lines[j].TrimStart().Length)..];
                    break;
                case DeepNesting d:
                    var k = FindLine(lines, d.Line, l => l.TrimStart().StartsWith("rule:", StringComparison.Ordinal));
                    var indent = lines[k][..(lines[k].Length - lines[k].TrimStart().Length)];
                    lines[k] = indent + (d.Kind switch
                    {
                        0 => "rule: " + string.Concat(Enumerable.Repeat("{ not: ", d.Depth)) + "{ field: orders.count, gt: 1 }" + new string('}', d.Depth),
                        1 => "rule: " + string.Concat(Enumerable.Repeat("{ all: [", d.Depth)) + "{ field: orders.count, gt: 1 }" + string.Concat(Enumerable.Repeat("]}", d.Depth)),
                        2 => "rule: " + new string('[', d.Depth) + new string(']', d.Depth),
                        _ => "rule: " + string.Concat(Enumerable.Repeat("{ a: ", d.Depth)) + "1" + new string('}', d.Depth),
                    });
                    break;
                case RandomBytes b:
                    var at = b.Bytes[0] % n;
                    lines.Insert(at, System.Text.Encoding.UTF8.GetString(b.Bytes));
                    break;
                case SelfAlias s:
                    var r2 = FindLine(lines, 0, l => l.TrimStart().StartsWith("rule:", StringComparison.Ordinal));
                    var ind = lines[r2][..(lines[r2].Length - lines[r2].TrimStart().Length)];
                    lines[r2] = ind + (s.Kind switch
                    {
                        0 => "rule: &r { all: [ *r ] }",
                        1 => "rule: &r { not: *r }",
                        2 => "rule: &r [ *r, *r ]",
                        _ => "rule: { all: [ &x { field: orders.count, gt: 1 }, *x, *x, *x ] }",
                    });
                    break;
            }
        }

        var result = files.ToList();
        result[index] = files[index] with { Text = string.Join('\n', lines) };
        return result;
    }

    private static int FindLine(List<string> lines, int start, Func<string, bool> predicate)
    {
        start %= lines.Count;
        for (var i = 0; i < lines.Count; i++)
        {
            var j = (start + i) % lines.Count;
            if (predicate(lines[j]))
            {
                return j;
            }
        }

        return start;
    }

    private static void LoadsOrReportsErrors(IReadOnlyList<CatalogFile> files)
    {
        var source = new InMemoryCatalogSource(files);
        var names = files.Select(f => f.Name).Append(source.Origin).ToHashSet(StringComparer.Ordinal); // catalog-wide errors name the origin
        var load = Task.Run(() => CatalogLoader.Load(source));
        Assert.True(Task.WaitAny([load], PerCase) == 0, $"loading took more than {PerCase.TotalSeconds} s");
        try
        {
            var snapshot = load.GetAwaiter().GetResult();
            Assert.NotNull(snapshot.Fallback);
            Assert.Contains(snapshot.Fallback, snapshot.Segments);
            Assert.Equal(snapshot.Segments.Count, snapshot.ById.Count);
        }
        catch (CatalogException ex)
        {
            Assert.NotEmpty(ex.Errors);
            foreach (var error in ex.Errors)
            {
                Assert.Contains(error.File, names);
                Assert.True(error.Line >= 0, $"line {error.Line} in {error}");
                Assert.False(string.IsNullOrWhiteSpace(error.Message));
            }
        }
    }
}
