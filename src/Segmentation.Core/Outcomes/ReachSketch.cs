using System.IO.Hashing;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Segmentation.Core.Outcomes;

/// <summary>
/// Distinct users counted in 4 KB whatever their number: a HyperLogLog sketch (Flajolet et al., 2007) of
/// 4,096 one-byte registers over a 64-bit hash of the user id, so the standard error is 1.04 / √4096 ≈ 1.6 %
/// (exact up to a few hundred users through the small-range correction). Sketches of different hours, days or
/// groups merge by taking the larger register, which is how a range's reach is the union of its parts.
/// Adding is thread-safe (a register only ever grows; a lost race loses nothing that a retry would add).
/// </summary>
public sealed class ReachSketch
{
    private const int Bits = 12;
    private const int Registers = 1 << Bits;
    private static readonly double Alpha = 0.7213 / (1 + (1.079 / Registers));

    private static readonly double[] InversePowers = [.. Enumerable.Range(0, 256).Select(r => Math.ScaleB(1, -r))];

    private readonly byte[] _registers = new byte[Registers];

    /// <summary>The registers (a copy), for a checkpoint.</summary>
    internal byte[] CopyRegisters() => (byte[])_registers.Clone();

    /// <summary>A sketch restored from a checkpoint's registers.</summary>
    internal static ReachSketch From(ReadOnlySpan<byte> registers)
    {
        var sketch = new ReachSketch();
        registers[..Math.Min(registers.Length, Registers)].CopyTo(sketch._registers);
        return sketch;
    }

    /// <summary>Counts <paramref name="userId"/>.</summary>
    public void Add(string userId)
    {
        var hash = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(userId.AsSpan()));
        var index = (int)(hash >> (64 - Bits));
        var rank = (byte)(BitOperations.LeadingZeroCount((hash << Bits) | (1UL << (Bits - 1))) + 1);
        ref var register = ref _registers[index];
        while (true)
        {
            var current = Volatile.Read(ref register);
            if (rank <= current)
            {
                return;
            }

            // A byte has no compare-exchange: the race is benign (both writers raise it; the larger stays or is rewritten next time).
            Volatile.Write(ref register, rank);
            if (Volatile.Read(ref register) >= rank)
            {
                return;
            }
        }
    }

    /// <summary>Adds every user counted by <paramref name="other"/> to this sketch (a register-wise maximum, vectorised).</summary>
    public void Merge(ReachSketch other)
    {
        var mine = _registers.AsSpan();
        var theirs = other._registers.AsSpan();
        var i = 0;
        for (; i <= Registers - Vector<byte>.Count; i += Vector<byte>.Count)
        {
            Vector.Max(new Vector<byte>(mine[i..]), new Vector<byte>(theirs[i..])).CopyTo(mine[i..]);
        }

        for (; i < Registers; i++)
        {
            mine[i] = Math.Max(mine[i], theirs[i]);
        }
    }

    /// <summary>The estimated number of distinct users added.</summary>
    public long Estimate()
    {
        double sum = 0;
        var zeros = 0;
        foreach (var r in _registers)
        {
            sum += InversePowers[r];
            zeros += r == 0 ? 1 : 0;
        }

        var estimate = Alpha * Registers * Registers / sum;
        if (estimate <= 2.5 * Registers && zeros > 0)
        {
            estimate = Registers * Math.Log((double)Registers / zeros); // linear counting for small sets
        }

        return (long)Math.Round(estimate);
    }
}
