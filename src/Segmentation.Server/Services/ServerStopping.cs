using Grpc.Core;
using Segmentation.Core.Validation;

namespace Segmentation.Server.Services;

/// <summary>
/// Long-lived calls (the change stream, the event stream) end when the server starts stopping: the host waits for open
/// calls before the stopping services save their state, and a watcher that stays connected would hold every graceful
/// shutdown until the host's timeout — by when the supervisor kills the process. They end with UNAVAILABLE and a retry
/// hint: the caller reconnects (to another instance, or to this one once it is back) and resumes.
/// </summary>
internal static class ServerStopping
{
    /// <summary>A token cancelled when the call ends or the server starts stopping.</summary>
    public static CancellationTokenSource Linked(ServerCallContext context, IHostApplicationLifetime lifetime) =>
        CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);

    /// <summary>Whether a call ended because the server is stopping (not because the caller went away).</summary>
    public static bool Ended(ServerCallContext context, IHostApplicationLifetime lifetime) =>
        lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested;

    /// <summary>The error a call ended by the shutdown gets (UNAVAILABLE with a retry delay), saying how to go on.</summary>
    public static NotReadyException Error(string howToGoOn) => new($"the server is shutting down: {howToGoOn}", TimeSpan.FromSeconds(1));
}
