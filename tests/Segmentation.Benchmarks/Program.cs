using System.Globalization;
using BenchmarkDotNet.Running;

if (args is ["--paired-hit", ..])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.Run(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 40);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

/// <summary>
/// Entry point: pass BenchmarkDotNet arguments, e.g. <c>--filter '*' --job short</c>; or <c>--paired-hit [rounds]</c> for
/// the paired measurement of what remembering decisions adds to a cache hit (<see cref="Segmentation.Benchmarks.Decisions.PairedCacheHit"/>).
/// </summary>
public partial class Program;
