using BenchmarkDotNet.Attributes;
using Segmentation.Core.Experiments;

namespace Segmentation.Benchmarks.Experiments;

/// <summary>What assigning a user to an arm costs (target: at most 50 ns added to a decision), and the holdout check.</summary>
[MemoryDiagnoser]
public class AssignmentBenchmark
{
    private static readonly double[] Weights = [0.5, 0.25, 0.25];
    private readonly string[] _users = [.. Enumerable.Range(0, 1024).Select(i => $"customer-{17_000 + i}")];
    private int _next;

    /// <summary>The user's place in an experiment and the arm it falls in.</summary>
    [Benchmark]
    public int AssignArm() => Assignment.Arm(Weights, Assignment.Place("2026-12", "champions_offer_test", _users[_next++ & 1023]));

    /// <summary>The decisioning holdout check.</summary>
    [Benchmark]
    public bool HoldoutCheck() => Assignment.InHoldout(_users[_next++ & 1023], 0.05);
}
