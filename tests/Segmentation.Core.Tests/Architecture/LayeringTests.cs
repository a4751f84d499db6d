using ArchUnitNET.Fluent;
using ArchUnitNET.Fluent.Slices;
using ArchUnitNET.Loader;
using ArchUnitNET.xUnit;
using static ArchUnitNET.Fluent.ArchRuleDefinition;

namespace Segmentation.Core.Tests.Architecture;

/// <summary>
/// The shape of the code, checked on the compiled assemblies: the layers of Segmentation.Core depend only
/// on the layers below them, no two folders depend on each other, and the domain references neither the
/// web host, gRPC, protobuf nor the storage that implements its seams. See docs/architecture.md.
/// </summary>
public sealed class LayeringTests
{
    private static readonly ArchUnitNET.Domain.Architecture Code = new ArchLoader()
        .LoadAssemblies(typeof(Core.Profiles.Profile).Assembly, typeof(Segmentation.Storage.FileStore).Assembly)
        .Build();

    /// <summary>The layers of the domain, bottom first; each is one or more top-level folders (namespaces) of Segmentation.Core.</summary>
    public static readonly string[][] Layers =
    [
        ["Validation", "Requests", "Events"],
        ["Experiments"],
        ["Profiles"],
        ["Privacy"],
        ["Rules"],
        ["Scoring"],
        ["Rendering"],
        ["Catalog"],
        ["Decisions"],
        ["Outcomes"],
        ["Application"],
    ];

    private static ArchUnitNET.Fluent.Syntax.Elements.Types.GivenTypesConjunctionWithDescription In(IEnumerable<string> folders) =>
        Types().That().ResideInNamespaceMatching($@"^Segmentation\.Core\.({string.Join("|", folders)})(\..+)?$").As(string.Join(", ", folders));

    public static TheoryData<int> LayerIndexes() => [.. Enumerable.Range(0, Layers.Length - 1)];

    [Theory]
    [MemberData(nameof(LayerIndexes))]
    public void A_layer_depends_on_no_layer_above_it(int layer)
    {
        var above = Layers.Skip(layer + 1).SelectMany(l => l);
        IArchRule rule = Types().That().Are(In(Layers[layer])).Should().NotDependOnAny(In(above))
            .Because("arrows point only downward: a lower layer never knows a higher one");
        rule.Check(Code);
    }

    [Fact]
    public void Every_folder_of_the_domain_belongs_to_a_layer()
    {
        var known = Layers.SelectMany(l => l).ToHashSet(StringComparer.Ordinal);
        var folders = typeof(Core.Profiles.Profile).Assembly.GetTypes()
            .Select(t => t.Namespace ?? "")
            .Where(ns => ns.StartsWith("Segmentation.Core.", StringComparison.Ordinal))
            .Select(ns => ns.Split('.')[2])
            .Distinct();
        Assert.DoesNotContain(folders, f => !known.Contains(f));
    }

    [Fact]
    public void No_folders_of_the_domain_depend_on_each_other_in_a_cycle()
    {
        SliceRuleDefinition.Slices().Matching("Segmentation.Core.(*)").Should().BeFreeOfCycles().Check(Code);
        SliceRuleDefinition.Slices().Matching("Segmentation.Core.Application.(*)").Should().BeFreeOfCycles().Check(Code);
        SliceRuleDefinition.Slices().Matching("Segmentation.Core.Profiles.(*)").Should().BeFreeOfCycles().Check(Code);
    }

    [Theory]
    [InlineData("Segmentation.Core")]
    [InlineData("Segmentation.Storage")]
    public void The_domain_and_the_storage_reference_no_web_host_grpc_or_protobuf(string assembly)
    {
        var references = AppDomain.CurrentDomain.GetAssemblies().Single(a => a.GetName().Name == assembly).GetReferencedAssemblies().Select(a => a.Name ?? "").ToList();
        Assert.DoesNotContain(references, name => name.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal) || name.StartsWith("Grpc", StringComparison.Ordinal) || name.StartsWith("Google.Protobuf", StringComparison.Ordinal) || name == "Segmentation.Server");
        if (assembly == "Segmentation.Core")
        {
            Assert.DoesNotContain("Segmentation.Storage", references); // the domain defines the seams; the storage implements them
        }
    }
}
