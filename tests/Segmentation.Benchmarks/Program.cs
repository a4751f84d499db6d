using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

/// <summary>Entry point: pass BenchmarkDotNet arguments, e.g. <c>--filter '*' --job short</c>.</summary>
public partial class Program;
