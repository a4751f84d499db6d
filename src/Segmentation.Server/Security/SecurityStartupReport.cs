using Microsoft.Extensions.Options;

namespace Segmentation.Server.Security;

/// <summary>Logs, at start-up, the security settings an operator must not miss: the development key, disabled authentication, plaintext.</summary>
internal sealed class SecurityStartupReport(ApiKeyRing keys, IOptions<SecurityOptions> options, ILogger<SecurityStartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.DisableAuthentication)
        {
            logger.LogWarning("Authentication is DISABLED (Segmentation:Security:DisableAuthentication=true): every caller has every scope. For local testing only");
        }
        else
        {
            foreach (var name in keys.DevelopmentKeyNames)
            {
                logger.LogWarning("Development API key in use (key '{Name}'): the documented key is accepted with scopes {Scopes}; never configure it outside local development",
                    name, string.Join(", ", o.ApiKeys.First(k => k.Name == name).Scopes));
            }

            logger.LogInformation("API key authentication on: {Count} key(s) configured ({Names})", o.ApiKeys.Count, string.Join(", ", o.ApiKeys.Select(k => k.Name)));
        }

        if (o.AllowPlaintext)
        {
            logger.LogWarning("Plaintext HTTP/2 endpoints are allowed (Segmentation:Security:AllowPlaintext=true): for local use only");
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
