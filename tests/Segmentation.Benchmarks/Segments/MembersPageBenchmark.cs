using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Membership;

namespace Segmentation.Benchmarks.Segments;

/// <summary>
/// A large segment's members listed page by page (ListSegmentMembers), as a send system pages through an audience:
/// the segment has <see cref="Members"/> members. A page in the middle of the listing once the segment's ordered
/// listing is built (what its first page starts in the background), and building that listing.
/// </summary>
[MemoryDiagnoser]
public class MembersPageBenchmark
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private MembershipIndex _index = null!;
    private string _middle = "";
    private bool _toggled;

    /// <summary>Members of the segment listed.</summary>
    [Params(100_000, 1_000_000)]
    public int Members { get; set; }

    [GlobalSetup(Target = nameof(PageOf1000))]
    public void SetupPaging()
    {
        _index = Filled(new MembershipIndex());
        _index.PrepareListing("audience").GetAwaiter().GetResult();
        _middle = _index.Members("audience", "", Members / 2)[^1];
    }

    [GlobalSetup(Target = nameof(BuildListing))]
    public void SetupBuilding() => _index = Filled(new MembershipIndex { Listings = new() { IdleTimeout = TimeSpan.Zero } });

    [GlobalSetup(Target = nameof(JoinAndLeaveListed))]
    public void SetupListedChanges()
    {
        _index = Filled(new MembershipIndex());
        _index.PrepareListing("audience").GetAwaiter().GetResult();
    }

    [GlobalSetup(Target = nameof(JoinAndLeaveUnlisted))]
    public void SetupUnlistedChanges() => _index = Filled(new MembershipIndex { Listings = new() { Enabled = false } });

    /// <summary>1,000 members after a token in the middle of the listing.</summary>
    [Benchmark]
    public int PageOf1000() => _index.Members("audience", _middle, 1000).Count;

    /// <summary>
    /// The segment's ordered listing built from its members: one change drops the previous one (kept for no time here),
    /// then it is built again.
    /// </summary>
    [Benchmark]
    public bool BuildListing()
    {
        _toggled = !_toggled;
        _index.Set("toggled", _toggled ? ["audience"] : [], catalogVersion: 1, validUntilTicks: long.MaxValue, Now, "event", publish: false);
        _index.PrepareListing("audience").GetAwaiter().GetResult();
        return _index.IsListed("audience");
    }

    /// <summary>A user joining and leaving a listed segment: what keeping its listing adds to a change (two changes).</summary>
    [Benchmark]
    public void JoinAndLeaveListed() => JoinAndLeave();

    /// <summary>The same on a segment that is never listed.</summary>
    [Benchmark]
    public void JoinAndLeaveUnlisted() => JoinAndLeave();

    private void JoinAndLeave()
    {
        _index.Set("mover", ["audience"], catalogVersion: 1, validUntilTicks: long.MaxValue, Now, "event", publish: false);
        _index.Set("mover", [], catalogVersion: 1, validUntilTicks: long.MaxValue, Now, "event", publish: false);
    }

    private MembershipIndex Filled(MembershipIndex index)
    {
        var random = new Random(7);
        string[] segments = ["audience"];
        for (var i = 0; i < Members; i++)
        {
            index.Set($"u{random.Next():x8}-{i}", segments, catalogVersion: 1, validUntilTicks: long.MaxValue, Now, "event", publish: false);
        }

        return index;
    }
}
