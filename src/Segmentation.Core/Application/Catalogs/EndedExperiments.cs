using Segmentation.Core.Catalog;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Application.Catalogs;

/// <summary>
/// The start-up source's files (a catalog directory, or the embedded catalog of a new deployment) as they will be
/// served: an experiment the serving catalog has stopped or promoted — through the API, whose edits go into the
/// versions and not into the directory, or by its stop time — stays stopped or promoted when the new files would run it
/// again under the same id (a resumed experiment would mix two runs in one result; a new run takes a new id). The stop
/// or promotion is written into the new files where the experiment is, so the version's files say what is served.
/// </summary>
internal static class EndedExperiments
{
    /// <summary>
    /// <paramref name="loaded"/> with the experiments <paramref name="serving"/> ended kept ended, and their ids. Throws
    /// <see cref="CatalogException"/> when an experiment cannot be kept ended in the files (written on one line, or
    /// started again after its end).
    /// </summary>
    public static (CatalogSnapshot Snapshot, IReadOnlyList<string> Kept) Keep(CatalogSnapshot serving, CatalogSnapshot loaded, DateTimeOffset now, CancellationToken cancellation)
    {
        bool Ended(Experiment e) => e.Promoted is not null || e.StopTicks <= now.UtcTicks;
        CatalogException Refused(Experiment e, string why) =>
            new([new CatalogError(e.Node.At.File, e.Node.At.Line, null, "experiments", $"experiment '{e.Id}' ended in the serving catalog (version {serving.Version}) and these files would run it again: {why}")]);

        var edits = new List<(Experiment Experiment, string Key, string Value)>();
        foreach (var next in loaded.Experiments)
        {
            if (Ended(next) || serving.Experiments.FirstOrDefault(e => e.Id == next.Id) is not { } before || !Ended(before))
            {
                continue;
            }

            if (before.Promoted is { } arm && next.ArmById(arm) is not null)
            {
                edits.Add((next, "promoted", arm));
                continue;
            }

            // Stopped when it stopped (or now, for a promoted arm the new files dropped), to the second as files write it.
            var stopTicks = Math.Min(before.StopTicks, now.UtcTicks);
            stopTicks -= stopTicks % TimeSpan.TicksPerSecond;
            var stop = CatalogText.Instant(new DateTimeOffset(stopTicks, TimeSpan.Zero));
            if (next.StartTicks >= stopTicks)
            {
                throw Refused(next, $"they start it at {CatalogText.Instant(new DateTimeOffset(next.StartTicks, TimeSpan.Zero))}, after it ended ({stop}); a new run takes a new id (its results would mix with the first run's)");
            }

            edits.Add((next, "stop", stop));
        }

        if (edits.Count == 0)
        {
            return (loaded, []);
        }

        // Bottom up within each file: a line added above would move the ones below. The experiments were read from these
        // very files, so each one's file is among them.
        var files = loaded.Files.ToList();
        foreach (var (experiment, key, value) in edits.OrderByDescending(e => e.Experiment.Node.At.Line))
        {
            var index = files.FindIndex(f => f.Name == experiment.Node.At.File);
            try
            {
                files[index] = files[index] with { Text = CatalogText.SetScalar(files[index].Text, experiment.Node, key, value) };
            }
            catch (PreconditionFailedException ex)
            {
                throw Refused(experiment, $"it cannot be ended in them ({ex.Message}); write '{key}: {value}' in it, or give the new run a new id");
            }
        }

        return (CatalogLoader.Load(new InMemoryCatalogSource(files, loaded.Origin), cancellation), [.. edits.Select(e => e.Experiment.Id)]);
    }
}
