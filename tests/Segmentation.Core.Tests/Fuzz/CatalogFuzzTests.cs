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
