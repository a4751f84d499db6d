using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Security;

/// <summary>
/// What keeps connections from taking the process down, none of it needing a key: a bound on concurrent
/// connections below the open-file limit — over every endpoint together (Kestrel's own limit counts each endpoint
/// alone: two endpoints held twice the descriptors the bound was derived from) —, a deadline for a new connection's
/// first bytes (a connection that sends nothing is closed), an idle timeout, HTTP/2 keep-alive pings that drop dead peers,
/// and a bound on how long a graceful stop waits for a connection (one whose client does not read held it until the
/// host's timeout).
/// </summary>
internal static class ConnectionLimits
{
    public static void Apply(KestrelServerOptions kestrel, LimitsOptions limits)
    {
        var max = limits.EffectiveMaxConnections(); // read once: the open-file count it is derived from moves
        kestrel.Limits.MaxConcurrentConnections = max;
        kestrel.Limits.MaxConcurrentUpgradedConnections = max;
        kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(limits.IdleConnectionSeconds);
        kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(limits.HandshakeSeconds);
        kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(limits.KeepAlivePingSeconds);
        kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
        var handshake = TimeSpan.FromSeconds(limits.HandshakeSeconds);
        var open = new OpenConnections(max, TimeSpan.FromSeconds(limits.StopDrainSeconds)); // one count for every endpoint of the server
        kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Use(next =>
        {
            // Built once per endpoint as the server starts (its services are there by then), not at every connection.
            var stopping = kestrel.ApplicationServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
            return connection => open.WithinLimit(connection, handshake, next, stopping);
        }));
    }

    // The connections open over every endpoint of a server, against its bound.
    private sealed class OpenConnections(int max, TimeSpan stopDrain)
    {
        private int _open;

        // Counts the connection while it is open; one past the bound is closed at once. Once the server stops, the
        // connection is closed if it is still open stopDrain later.
        public async Task WithinLimit(ConnectionContext connection, TimeSpan handshake, ConnectionDelegate next, CancellationToken stopping)
        {
            if (Interlocked.Increment(ref _open) > max)
            {
                Interlocked.Decrement(ref _open);
                connection.Abort(new ConnectionAbortedException($"the server holds its most connections ({max})"));
                return;
            }

            try
            {
                // Disposed in reverse order: the stop's callback is gone (or has run) before the source it uses is disposed.
                using var drained = new CancellationTokenSource();
                using var onStop = stopping.Register(() => drained.CancelAfter(stopDrain));
                using var onDrained = drained.Token.Register(() => connection.Abort(new ConnectionAbortedException(
                    $"the server is stopping and the connection's calls did not end within {stopDrain.TotalSeconds:0} s")));
                await FirstBytesWithin(connection, handshake, next);
            }
            finally
            {
                Interlocked.Decrement(ref _open);
            }
        }
    }

    // Waits for the connection's first bytes, without consuming them, for at most the handshake time.
    private static async Task FirstBytesWithin(ConnectionContext connection, TimeSpan handshake, ConnectionDelegate next)
    {
        using (var deadline = new CancellationTokenSource(handshake))
        {
            try
            {
                var read = await connection.Transport.Input.ReadAsync(deadline.Token);
                connection.Transport.Input.AdvanceTo(read.Buffer.Start); // nothing consumed, nothing examined
                if (read.IsCompleted && read.Buffer.IsEmpty)
                {
                    return; // closed by the peer
                }
            }
            catch (OperationCanceledException)
            {
                connection.Abort(new ConnectionAbortedException($"nothing received within {handshake.TotalSeconds:0} s of connecting"));
                return;
            }
            catch (IOException)
            {
                // Reset by the peer before it sent a byte (a port scan, a load balancer's TCP check): an ordinary close,
                // which escaping would have the server log as an unhandled error, once per connection.
                return;
            }
        }

        await next(connection);
    }
}
