using System.Globalization;
using BenchmarkDotNet.Running;

if (args is ["--paired-hit", ..])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.Run(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 40);
    return;
}

if (args is ["--paired-hit-processes", ..])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.RunInProcesses(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20);
    return;
}

if (args is ["--hit-alone", var mode])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.RunAlone(mode == "with");
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

/// <summary>
/// Entry point: pass BenchmarkDotNet arguments, e.g. <c>--filter '*' --job short</c>; or <c>--paired-hit [rounds]</c> for
/// the paired measurement of what remembering decisions adds to a cache hit in one process, or
/// <c>--paired-hit-processes [pairs]</c> for the same with each engine in a process of its own (<see cref="Segmentation.Benchmarks.Decisions.PairedCacheHit"/>).
/// </summary>
public partial class Program;
