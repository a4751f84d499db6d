using System.Buffers;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace Segmentation.Core.Experiments;

/// <summary>
/// Deterministic assignment: a user's place in an experiment is a hash of the experiment's salt, the experiment id and
/// the user's id (XXH3, 64 bits), read as a number in [0, 1). The same user gets the same place on every node, after
/// every restart and in every process, with no state; different experiments (or salts) place a user independently.
/// The place picks the arm whose cumulative weight range holds it, and a separate hash (salt <c>holdout</c>) puts a
/// fixed share of all users in the decisioning holdout.
/// </summary>
/// <remarks>
/// By the hash alone, changing an experiment's weights would move the users whose place falls into a range that
/// changed owner (growing an arm from 50 % to 60 % moves a tenth of the users into it): after a change of weights,
/// salt or arm order, a user's recorded arm is read instead (<see cref="IRecordedAssignments"/>), so every user keeps
/// the arm they had and only new users follow the new weights.
/// </remarks>
public static class Assignment
{
    /// <summary>The salt of the decisioning holdout's hash.</summary>
    public const string HoldoutSalt = "holdout";

    /// <summary>The id the decisioning holdout hashes users by (with <see cref="HoldoutSalt"/>).</summary>
    public const string HoldoutId = "decisioning";

    /// <summary>The id a layer hashes users by, its name being the salt.</summary>
    public const string LayerId = "layer";

    private const int StackLimit = 512;

    /// <summary>The user's place in [0, 1) for <paramref name="experimentId"/> under <paramref name="salt"/>.</summary>
    public static double Place(string salt, string experimentId, string subjectId)
    {
        ArgumentNullException.ThrowIfNull(salt);
        ArgumentNullException.ThrowIfNull(experimentId);
        ArgumentNullException.ThrowIfNull(subjectId);

        // salt \u001F experiment \u001F subject, as UTF-16 (the unit separator cannot occur in ids).
        var length = salt.Length + experimentId.Length + subjectId.Length + 2;
        char[]? rented = null;
        var buffer = length <= StackLimit ? stackalloc char[length] : (rented = ArrayPool<char>.Shared.Rent(length)).AsSpan(0, length);
        salt.CopyTo(buffer);
        buffer[salt.Length] = '\u001F';
        experimentId.CopyTo(buffer[(salt.Length + 1)..]);
        buffer[salt.Length + 1 + experimentId.Length] = '\u001F';
        subjectId.CopyTo(buffer[(salt.Length + experimentId.Length + 2)..]);
        var hash = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(buffer));
        if (rented is not null)
        {
            ArrayPool<char>.Shared.Return(rented);
        }

        return (hash >> 11) * (1.0 / (1UL << 53)); // the top 53 bits: every double in [0, 1) this can give is exact
    }

    /// <summary>
    /// The arm (index) whose range holds <paramref name="place"/>, arms taking consecutive ranges in proportion to
    /// <paramref name="weights"/> (which need not sum to 1; an arm of weight 0 is never chosen).
    /// </summary>
    public static int Arm(ReadOnlySpan<double> weights, double place)
    {
        var total = 0.0;
        foreach (var w in weights)
        {
            total += w;
        }

        if (weights.IsEmpty || total <= 0)
        {
            throw new ArgumentException("at least one arm with a positive weight", nameof(weights));
        }

        var target = place * total;
        var sum = 0.0;
        var last = -1;
        for (var i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0)
            {
                continue;
            }

            last = i;
            sum += weights[i];
            if (target < sum)
            {
                return i;
            }
        }

        return last; // place · total rounded onto the very end
    }

    /// <summary>True when the user is in the decisioning holdout of <paramref name="share"/> (0 to 1) of all users.</summary>
    public static bool InHoldout(string subjectId, double share, string holdoutId = HoldoutId) =>
        share > 0 && Place(HoldoutSalt, holdoutId, subjectId) < share;
}
