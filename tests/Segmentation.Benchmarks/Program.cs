using System.Globalization;
using BenchmarkDotNet.Running;

if (args is ["--paired-hit", ..])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.Run(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 40);
    return 0;
}

if (args is ["--paired-hit-processes", ..])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.RunInProcesses(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20);
    return 0;
}

if (args is ["--hit-alone", var mode])
{
    Segmentation.Benchmarks.Decisions.PairedCacheHit.RunAlone(mode == "with");
    return 0;
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

// A benchmark that throws (its setup's sanity checks included) is only a row of NA in BenchmarkDotNet's report, and
// the switcher returns normally: the run fails here, so the perf script and CI see it.
var failed = summaries.SelectMany(s => s.HasCriticalValidationErrors ? [s.Title] : s.Reports.Where(r => !r.Success).Select(r => r.BenchmarkCase.DisplayInfo)).ToList();
foreach (var name in failed)
{
    Console.Error.WriteLine($"benchmark failed: {name}");
}

return failed.Count > 0 ? 1 : 0;

/// <summary>
/// Entry point: pass BenchmarkDotNet arguments, e.g. <c>--filter '*' --job short</c>; or <c>--paired-hit [rounds]</c> for
/// the paired measurement of what remembering decisions adds to a cache hit in one process, or
/// <c>--paired-hit-processes [pairs]</c> for the same with each engine in a process of its own (<see cref="Segmentation.Benchmarks.Decisions.PairedCacheHit"/>).
/// </summary>
public partial class Program;
