namespace Segmentation.Server.Hosting;

/// <summary>
/// Logs at start-up when the system has no time zone data (a slim container image or a machine without the tzdata
/// package): contact policies would then read every user's quiet hours and send times in UTC without another word,
/// since a user's <c>time_zone</c> trait and country resolve to no zone.
/// </summary>
internal sealed class TimeZoneDataStartupReport(ILogger<TimeZoneDataStartupReport> logger) : IHostedService
{
    /// <summary>The zone looked up: any zone of the IANA database would do.</summary>
    internal const string Probe = "Europe/London";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!TimeZoneInfo.TryFindSystemTimeZoneById(Probe, out _))
        {
            logger.LogWarning(
                "No time zone data: the zone {Zone} cannot be read (from /usr/share/zoneinfo, or the folder TZDIR names). Contact policies read quiet hours and send times in UTC for every user (users' time_zone traits and countries resolve to no zone), and a catalog naming a time zone is refused. Install the tzdata package (the container image carries it)",
                Probe);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
