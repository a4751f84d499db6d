using Segmentation.Core.Experiments;

namespace Segmentation.Core.Tests.Experiments;

/// <summary>Deterministic assignment: stable, split as weighted, independent between experiments.</summary>
public class AssignmentTests
{
    private static readonly string[] Users = [.. Enumerable.Range(0, 100_000).Select(i => $"user-{i}")];

    [Fact]
    public void The_same_user_gets_the_same_place_every_time_and_the_value_is_pinned()
    {
        var place = Assignment.Place("s1", "exp-1", "user-42");

        Assert.Equal(place, Assignment.Place("s1", "exp-1", "user-42"));
        Assert.InRange(place, 0, 1);

        // Pinned: a change of hash or layout would move every user of every running experiment. XXH3-64 of the UTF-16
        // bytes of "s1\u001Fexp-1\u001Fuser-42", top 53 bits over 2^53.
        var bytes = System.Text.Encoding.Unicode.GetBytes("s1\u001Fexp-1\u001Fuser-42");
        Assert.Equal((System.IO.Hashing.XxHash3.HashToUInt64(bytes) >> 11) / 9007199254740992.0, place);
        Assert.NotEqual(place, Assignment.Place("s2", "exp-1", "user-42"));
        Assert.NotEqual(place, Assignment.Place("s1", "exp-2", "user-42"));
    }

    [Fact]
    public void Arms_get_their_weights_share_of_users_and_pass_the_sample_ratio_check()
    {
        double[] weights = [0.5, 0.3, 0.2];
        var counts = new long[3];
        foreach (var user in Users)
        {
            counts[Assignment.Arm(weights, Assignment.Place("salt", "split", user))]++;
        }

        var check = ExperimentStatistics.SampleRatio(counts, weights);
        Assert.False(check.Mismatch, $"counts {string.Join(", ", counts)}: p = {check.PValue}");
        Assert.InRange(counts[2] / (double)Users.Length, 0.19, 0.21);
    }

    [Fact]
    public void Two_experiments_place_users_independently()
    {
        // Half/half in both: if placements were correlated, the four cells would not be a quarter each.
        var cells = new long[4];
        foreach (var user in Users)
        {
            var a = Assignment.Place("x", "first", user) < 0.5 ? 1 : 0;
            var b = Assignment.Place("x", "second", user) < 0.5 ? 1 : 0;
            cells[(a * 2) + b]++;
        }

        Assert.False(ExperimentStatistics.SampleRatio(cells, [1, 1, 1, 1]).Mismatch, string.Join(", ", cells));
    }

    [Fact]
    public void Growing_an_arm_moves_only_users_into_it()
    {
        var moved = 0;
        var movedElsewhere = 0;
        foreach (var user in Users)
        {
            var place = Assignment.Place("salt", "ramp", user);
            var before = Assignment.Arm([0.5, 0.5], place);
            var after = Assignment.Arm([0.4, 0.6], place);
            moved += before != after ? 1 : 0;
            movedElsewhere += before != after && after != 1 ? 1 : 0;
        }

        Assert.Equal(0, movedElsewhere);
        Assert.InRange(moved / (double)Users.Length, 0.09, 0.11); // a tenth of the users change arm: recorded assignments will keep them (not built yet)
    }

    [Fact]
    public void Weights_of_zero_are_never_chosen_and_the_holdout_takes_its_share()
    {
        Assert.All(Users.Take(10_000), u => Assert.NotEqual(1, Assignment.Arm([1, 0, 1], Assignment.Place("s", "e", u))));
        Assert.Equal(2, Assignment.Arm([1, 0, 1], 0.9999999999));
        Assert.Throws<ArgumentException>(() => Assignment.Arm([0, 0], 0.5));

        var held = Users.Count(u => Assignment.InHoldout(u, 0.05));
        Assert.InRange(held / (double)Users.Length, 0.045, 0.055);
        Assert.DoesNotContain(Users.Take(1000), u => Assignment.InHoldout(u, 0));
    }

    [Fact]
    public void Long_ids_are_hashed_whole()
    {
        var longId = new string('u', 2000);
        Assert.Equal(Assignment.Place("s", "e", longId), Assignment.Place("s", "e", longId));
        Assert.NotEqual(Assignment.Place("s", "e", longId), Assignment.Place("s", "e", longId + "x"));
    }
}
