using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Membership;

namespace Segmentation.Benchmarks.Segments;

/// <summary>
/// One page of a large segment's members (GetSegmentMembers, the largest page size) in the middle of a listing, as a
/// send system pages through an audience: the segment has <see cref="Members"/> members.
/// </summary>
[MemoryDiagnoser]
public class MembersPageBenchmark
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly MembershipIndex _index = new();
    private string _middle = "";

    /// <summary>Members of the segment listed.</summary>
    [Params(100_000, 1_000_000)]
    public int Members { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(7);
        string[] segments = ["audience"];
        for (var i = 0; i < Members; i++)
        {
            _index.Set($"u{random.Next():x8}-{i}", segments, catalogVersion: 1, validUntilTicks: long.MaxValue, Now, "event", publish: false);
        }

        _middle = _index.Members("audience", "", Members / 2)[^1];
    }

    /// <summary>1,000 members after a token in the middle of the listing.</summary>
    [Benchmark]
    public int PageOf1000() => _index.Members("audience", _middle, 1000).Count;
}
