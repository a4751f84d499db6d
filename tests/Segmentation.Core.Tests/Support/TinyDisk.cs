using System.Diagnostics;

namespace Segmentation.Core.Tests.Support;

/// <summary>
/// A real, tiny file system (a tmpfs of a few megabytes, mounted for the test) that can be filled up and
/// freed again: what the durable store does on a full disk is tested against the kernel's own ENOSPC, not
/// a simulation. Mounting needs root, which the CI machine (and this project's dev machines) run as;
/// without it the test fails and says so rather than skipping.
/// </summary>
public sealed class TinyDisk : IDisposable
{
    private readonly string _filler;

    public TinyDisk(int megabytes)
    {
        Path = System.IO.Directory.CreateTempSubdirectory("seg-disk-").FullName;
        var (exit, output) = Run("mount", $"-t tmpfs -o size={megabytes}m tmpfs {Path}");
        if (exit != 0)
        {
            System.IO.Directory.Delete(Path);
            throw new InvalidOperationException($"this test mounts a {megabytes} MB tmpfs to fill a real disk and needs root (mount exited {exit}: {output})");
        }

        _filler = System.IO.Path.Combine(Path, "filler.bin");
    }

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>A directory on the disk.</summary>
    public string Directory(string name) => System.IO.Directory.CreateDirectory(System.IO.Path.Combine(Path, name)).FullName;

    /// <summary>Fills the disk up to the last byte with a filler file.</summary>
    public void Fill()
    {
        using var file = new FileStream(_filler, FileMode.Append, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[64 * 1024];
        try
        {
            while (true)
            {
                file.Write(block);
            }
        }
        catch (IOException)
        {
            // Fill the last partial block too.
            for (var size = block.Length / 2; size > 0; size /= 2)
            {
                try
                {
                    file.Write(block.AsSpan(0, size));
                }
                catch (IOException)
                {
                }
            }
        }
    }

    /// <summary>Fills the disk so that about <paramref name="bytes"/> stay free (rounded to pages by the file system).</summary>
    public void FillLeaving(long bytes)
    {
        Free();
        var room = new DriveInfo(Path).AvailableFreeSpace - bytes;
        using var file = new FileStream(_filler, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[64 * 1024];
        for (long written = 0; written < room; written += block.Length)
        {
            file.Write(block.AsSpan(0, (int)Math.Min(block.Length, room - written)));
        }
    }

    /// <summary>Deletes the filler: the disk has room again.</summary>
    public void Free() => File.Delete(_filler);

    public void Dispose()
    {
        Run("umount", $"-l {Path}");
        try
        {
            System.IO.Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static (int Exit, string Output) Run(string file, string args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            var output = process.StandardError.ReadToEnd() + process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output.Trim());
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, ex.Message);
        }
    }
}
