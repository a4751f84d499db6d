namespace Segmentation.Core.Tests.Support;

/// <summary>Test classes that must not run beside any other (xUnit runs such a collection after the parallel ones).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Alone
{
    public const string Name = "alone";
}
