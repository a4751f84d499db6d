using System.Globalization;
using System.Text;
using Segmentation.Contracts.V1;

namespace Segmentation.Cli;

/// <summary>segctl experiments, results and simulate: experiments from ExperimentService, and traffic with a known truth to test them.</summary>
internal static class ExperimentsCommand
{
    private static readonly System.Text.Json.JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static async Task<int> ListAsync(ServiceTarget target, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(target);
        var r = await new ExperimentService.ExperimentServiceClient(grpc).ListExperimentsAsync(new ListExperimentsRequest(), cancellationToken: ct);
        if (json)
        {
            Console.WriteLine(Cli.ToJson(r));
            return 0;
        }

        Console.WriteLine($"catalog version {r.CatalogVersion}: {r.Experiments.Count} experiment(s)");
        var rows = r.Experiments.Select(e => new[]
        {
            e.Id, e.SegmentId, Status(e.Status), e.PrimaryMetric, string.Join(" / ", e.Arms.Select(a => $"{a.Id} {a.Weight.ToString("0.##", Invariant)}")),
            e.ExposedUsers.ToString("N0", Invariant), e.MinimumDetectableEffect > 0 ? e.MinimumDetectableEffect.ToString("0.#%", Invariant) : "-",
        });
        Console.Write(Table(["experiment", "segment", "status", "primary", "arms (weight)", "exposed", "mde"], rows));
        return 0;
    }

    public static async Task<int> ResultsAsync(ServiceTarget target, string experimentId, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(target);
        var r = await new ExperimentService.ExperimentServiceClient(grpc).GetExperimentResultsAsync(new GetExperimentResultsRequest { ExperimentId = experimentId }, cancellationToken: ct);
        Console.Write(json ? Cli.ToJson(r) + Environment.NewLine : Describe(r));
        return 0;
    }

    /// <summary>The results as a reader would want them: arms, comparisons with intervals, checks, the recommendation.</summary>
    public static string Describe(GetExperimentResultsResponse r)
    {
        var e = r.Experiment;
        var sb = new StringBuilder();
        sb.Append(Invariant, $"experiment {e.Id} on segment {e.SegmentId} ({Status(e.Status)}), primary metric {e.PrimaryMetric}");
        sb.Append(e.Guardrails.Count > 0 ? $", guardrails {string.Join(", ", e.Guardrails)}" : "").Append('\n');
        sb.Append(Invariant, $"computed {r.ComputedAt.ToDateTimeOffset():yyyy-MM-dd HH:mm:ss}Z; control: {r.ControlArmId}\n");
        if (r.AnalyzedSince is { } since)
        {
            sb.Append(Invariant, $"users assigned since {since.ToDateTimeOffset():yyyy-MM-dd HH:mm:ss}Z only: the split changed then (earlier users keep their arms and are left out)\n");
        }

        sb.Append('\n');

        var metrics = r.Arms.FirstOrDefault()?.Metrics.Select(m => m.Metric).ToList() ?? [];
        sb.Append(Table(
            ["arm", "weight", "assigned", "exposed", .. metrics],
            r.Arms.Select(a => new[] { a.ArmId, a.ExpectedShare.ToString("0.#%", Invariant), a.AssignedUsers.ToString("N0", Invariant), a.ExposedUsers.ToString("N0", Invariant) }
                .Concat(a.Metrics.Select(Value)).ToArray())));
        sb.Append('\n');

        if (r.Comparisons.Count > 0)
        {
            sb.Append(Table(
                ["metric", "arm", "lift", "95% CI (one look)", "always-valid 95% CI", "p", "p (BH)", "test", "verdict"],
                r.Comparisons.Select(c => new[]
                {
                    c.Metric + (c.Guardrail ? " (guardrail)" : ""), c.ArmId, Percent(c.Lift), $"{Percent(c.LiftCi.Lower)} .. {Percent(c.LiftCi.Upper)}",
                    $"{Percent(c.SequentialLift.Lower)} .. {Percent(c.SequentialLift.Upper)}", c.PValue.ToString("0.####", Invariant), c.AdjustedPValue.ToString("0.####", Invariant),
                    c.Test + (c.Cuped ? $", CUPED -{c.VarianceReduction:0%} var" : ""), Verdict(c.Verdict),
                })));
            sb.Append('\n');
        }

        if (r.Breakdowns.Count > 0)
        {
            sb.Append(Invariant, $"{e.PrimaryMetric} by the segment that won each user's exposing decision:\n");
            sb.Append(Table(
                ["segment", "exposed", "arm", "lift", "always-valid CI (Bonferroni over segments)", "p (BH)", "verdict"],
                r.Breakdowns.SelectMany(b => b.Comparisons.Select(c => new[]
                {
                    b.SegmentId, b.ExposedUsers.ToString("N0", Invariant), c.ArmId, Percent(c.Lift),
                    $"{Percent(c.SequentialLift.Lower)} .. {Percent(c.SequentialLift.Upper)}", c.AdjustedPValue.ToString("0.####", Invariant), Verdict(c.Verdict),
                }))));
            sb.Append('\n');
        }

        // A server before not_checked_reason said nothing for a bandit: its check is skipped all the same.
        var notChecked = r.SampleRatio.NotCheckedReason.Length > 0 ? r.SampleRatio.NotCheckedReason
            : e.Bandit ? "a bandit moves its split on purpose: there is no fixed ratio to check" : null;
        sb.Append(notChecked is not null
            ? $"sample ratio: not checked ({notChecked})\n"
            : string.Create(Invariant, $"sample ratio: chi-squared {r.SampleRatio.ChiSquared:0.##}; exact binomial p = {r.SampleRatio.PValue:0.####}{(r.SampleRatio.Mismatch ? "  MISMATCH: do not trust these results" : " (ok)")}\n"));
        if (r.UsersPerArmNeeded > 0)
        {
            sb.Append(Invariant, $"users per arm for a {e.MinimumDetectableEffect:0.#%} effect with one look (alpha 0.05, power 0.8; the always-valid test needs more): {r.UsersPerArmNeeded:N0}\n");
        }

        sb.Append(Invariant, $"recommendation: {Recommendation(r.Recommendation)}{(r.WinningArmId.Length > 0 ? $" ({r.WinningArmId})" : "")}: {r.Reason}\n");
        return sb.ToString();
    }

    public static async Task<int> StopAsync(ServiceTarget target, string experimentId, string comment, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(target);
        var r = await new ExperimentService.ExperimentServiceClient(grpc).StopExperimentAsync(new StopExperimentRequest { ExperimentId = experimentId, Comment = comment }, cancellationToken: ct);
        Console.WriteLine(json ? Cli.ToJson(r) : $"stopped {experimentId}: catalog version {r.CatalogVersion}");
        return 0;
    }

    public static async Task<int> PromoteAsync(ServiceTarget target, string experimentId, string arm, string comment, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(target);
        var r = await new ExperimentService.ExperimentServiceClient(grpc).PromoteExperimentAsync(new PromoteExperimentRequest { ExperimentId = experimentId, ArmId = arm, Comment = comment }, cancellationToken: ct);
        Console.WriteLine(json ? Cli.ToJson(r) : $"promoted {r.ArmId} of {experimentId}: catalog version {r.CatalogVersion}");
        return 0;
    }

    public static async Task<int> SimulateAsync(ServiceTarget target, int users, string? segment, SimulationTruth truth, bool json, CancellationToken ct)
    {
        using var grpc = Cli.OpenChannel(target);
        var ids = await DemoUsersAsync(new CatalogService.CatalogServiceClient(grpc), users, segment, ct);
        if (ids.Count == 0)
        {
            throw new ArgumentException(segment is null ? "the service has no segment members to simulate (import the demo data first)" : $"segment '{segment}' has no members");
        }

        var started = DateTimeOffset.UtcNow;
        var progress = new Progress<int>(done =>
        {
            if (!json && !Console.IsErrorRedirected && done % 500 == 0)
            {
                Console.Error.Write($"\r{done:N0} of {ids.Count:N0} users");
            }
        });
        var summary = await new TrafficSimulator(grpc.CreateCallInvoker()).RunAsync(ids, truth, progress, ct);
        if (!json && !Console.IsErrorRedirected)
        {
            Console.Error.Write('\r');
        }

        var seconds = (DateTimeOffset.UtcNow - started).TotalSeconds;
        if (json)
        {
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
            {
                users = summary.Users,
                decisions = summary.Decisions,
                outcomes = summary.Outcomes,
                duplicates = summary.Duplicates,
                seconds,
                arms = summary.Arms.Select(a => new { arm = a.Key, users = a.Value.Users, converted = a.Value.Converted }),
            }, Indented)); // the names are already snake_case
            return 0;
        }

        var again = summary.Duplicates > 0 ? string.Create(Invariant, $" ({summary.Duplicates:N0} more recorded already: this seed and these users were simulated before)") : "";
        Console.WriteLine(string.Create(Invariant, $"simulated {summary.Users:N0} users: {summary.Decisions:N0} decisions, {summary.Outcomes:N0} outcomes{again} in {seconds:0.0} s (seed {truth.Seed})"));
        Console.Write(Table(
            ["experiment:arm", "users", "converted", "observed rate"],
            summary.Arms.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => new[]
            {
                a.Key.Length == 0 ? "(no experiment)" : a.Key, a.Value.Users.ToString("N0", Invariant), a.Value.Converted.ToString("N0", Invariant),
                (a.Value.Users == 0 ? 0 : (double)a.Value.Converted / a.Value.Users).ToString("0.00%", Invariant),
            })));
        Console.WriteLine("read the results: segctl experiments, then segctl results EXPERIMENT_ID");
        return 0;
    }

    /// <summary>Parses NAME=NUMBER pairs (--lift, --segment-rate).</summary>
    public static Dictionary<string, double> Pairs(string option, IEnumerable<string> values)
    {
        var pairs = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            var eq = value.LastIndexOf('=');
            if (eq <= 0 || !double.TryParse(value[(eq + 1)..], NumberStyles.Float, Invariant, out var number))
            {
                throw new ArgumentException($"{option} '{value}': expected NAME=NUMBER, such as bigger_credit=0.2");
            }

            pairs[value[..eq]] = number;
        }

        return pairs;
    }

    // Members of the segment (or of every segment, in catalog order) up to the count wanted.
    private static async Task<List<string>> DemoUsersAsync(CatalogService.CatalogServiceClient catalog, int wanted, string? segment, CancellationToken ct)
    {
        var segments = segment is not null ? [segment] : (await catalog.ListSegmentsAsync(new ListSegmentsRequest(), cancellationToken: ct)).Segments.Select(s => s.Segment.Id).ToList();
        var users = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in segments)
        {
            var token = "";
            do
            {
                var page = await catalog.ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = id, PageSize = 1000, PageToken = token }, cancellationToken: ct);
                foreach (var user in page.UserIds)
                {
                    if (users.Count < wanted)
                    {
                        users.Add(user);
                    }
                }

                token = page.NextPageToken;
            }
            while (token.Length > 0 && users.Count < wanted);

            if (users.Count >= wanted)
            {
                break;
            }
        }

        return [.. users];
    }

    private static string Value(ArmMetricValue m) => m.Metric == "revenue_per_user" ? m.Mean.ToString("0.00", Invariant) : m.Mean.ToString("0.00%", Invariant);

    private static string Percent(double x) => double.IsInfinity(x) ? (x > 0 ? "+inf" : "-inf") : x.ToString("+0.0%;-0.0%;0.0%", Invariant);

    private static string Status(ExperimentStatus s) => s switch
    {
        ExperimentStatus.Scheduled => "scheduled",
        ExperimentStatus.Running => "running",
        ExperimentStatus.Stopped => "stopped",
        ExperimentStatus.Promoted => "promoted",
        _ => "?",
    };

    private static string Verdict(Verdict v) => v switch
    {
        Contracts.V1.Verdict.Better => "better",
        Contracts.V1.Verdict.Worse => "worse",
        _ => "inconclusive",
    };

    private static string Recommendation(Recommendation r) => r switch
    {
        Contracts.V1.Recommendation.KeepRunning => "keep running",
        Contracts.V1.Recommendation.Winner => "winner",
        Contracts.V1.Recommendation.NoDifference => "no difference",
        Contracts.V1.Recommendation.GuardrailHarmed => "guardrail harmed",
        Contracts.V1.Recommendation.Invalid => "invalid",
        _ => "?",
    };

    private static string Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = header.Select((_, i) => all.Max(r => i < r.Length ? r[i].Length : 0)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in all)
        {
            sb.Append(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd()).Append('\n');
        }

        return sb.ToString();
    }
}
