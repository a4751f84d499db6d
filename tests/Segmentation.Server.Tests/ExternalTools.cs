using System.Diagnostics;

namespace Segmentation.Server.Tests;

/// <summary>Runs external tools (node, npm, buf) for tests, installing npm packages when needed.</summary>
internal static class ExternalTools
{
    /// <summary>The repository root (the folder holding Segmentation.Grpc.sln).</summary>
    public static readonly string RepoRoot = FindRepoRoot();

    /// <summary>Installs the npm packages of <paramref name="clientDir"/> (npm ci) unless they are there; fails with the command to run when it cannot.</summary>
    public static async Task EnsureNodePackages(string clientDir, params string[] packages)
    {
        var (nodeExit, _, _) = await TryRun("node", "--version", clientDir);
        Assert.True(nodeExit == 0, "Node.js is required for this test: apt-get install -y nodejs npm");
        if (packages.All(p => File.Exists(Path.Combine([clientDir, "node_modules", .. p.Split('/'), "package.json"]))))
        {
            return;
        }

        var (exit, stdout, stderr) = await Run("npm", "ci --no-audit --no-fund", clientDir, TimeSpan.FromMinutes(5));
        Assert.True(exit == 0, $"npm ci failed in {clientDir} (run it there by hand: npm ci): {stderr}\n{stdout}");
    }

    private static readonly SemaphoreSlim Apt = new(1, 1);

    /// <summary>
    /// Makes sure Debian <paramref name="packages"/> are installed when <paramref name="present"/> says they are not:
    /// installs them with apt-get (as root, or with sudo without a password), one installation at a time, so the README's
    /// test command works on a fresh machine with apt; fails saying what to install when that is not possible. Never skips.
    /// </summary>
    public static async Task EnsureDebianPackages(Func<Task<bool>> present, string purpose, params string[] packages)
    {
        if (await present())
        {
            return;
        }

        await Apt.WaitAsync();
        try
        {
            if (await present())
            {
                return;
            }

            var install = $"apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q {string.Join(' ', packages)}";
            var asRoot = Environment.UserName == "root";
            var (exit, stdout, stderr) = await Run(asRoot ? "bash" : "sudo", (asRoot ? "" : "-n bash ") + $"-c \"{install}\"", RepoRoot, TimeSpan.FromMinutes(10));
            Assert.True(exit == 0 && await present(),
                $"{purpose} needs the Debian packages {string.Join(", ", packages)}, which could not be installed: run 'sudo apt-get install -y {string.Join(' ', packages)}' (or bash .ci/run, which does). apt-get said: {stderr}\n{stdout}");
        }
        finally
        {
            Apt.Release();
        }
    }

    /// <summary>segctl's assembly, built next to the tests in the same configuration (run it with <c>dotnet</c>).</summary>
    public static string Segctl
    {
        get
        {
            var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
            return Path.Combine(RepoRoot, "src", "Segmentation.Cli", "bin", configuration, "net10.0", "segctl.dll");
        }
    }

    public static async Task<(int Exit, string Stdout, string Stderr)> TryRun(string file, string args, string dir)
    {
        try
        {
            return await Run(file, args, dir, TimeSpan.FromSeconds(30));
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return (-1, "", $"{file} not found");
        }
    }

    public static async Task<(int Exit, string Stdout, string Stderr)> Run(string file, string args, string dir, TimeSpan timeout)
    {
        using var process = Process.Start(new ProcessStartInfo(file, args)
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            return (-1, await stdout, $"timed out after {timeout}: " + await stderr);
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Segmentation.Grpc.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root (Segmentation.Grpc.sln) not found");
    }
}
