using Microsoft.Extensions.Options;

namespace Segmentation.Server.Security;

/// <summary>
/// Fails start-up on unsafe or broken security configuration: no API keys (unless authentication is
/// explicitly disabled), malformed keys, one key configured twice, a negative rate, a plaintext endpoint without <c>AllowPlaintext</c>, an https
/// endpoint without a certificate, a certificate file that does not exist.
/// </summary>
internal sealed class SecurityOptionsValidator(IConfiguration configuration) : IValidateOptions<SecurityOptions>
{
    public ValidateOptionsResult Validate(string? name, SecurityOptions options)
    {
        var failures = new List<string>();
        if (!options.DisableAuthentication && options.ApiKeys.Count == 0)
        {
            failures.Add("No API keys are configured (Segmentation:Security:ApiKeys, each with Name, Sha256 and Scopes). "
                + "Add one (hash a key with: printf %s KEY | segctl hash-key), or set Segmentation:Security:DisableAuthentication=true for local testing only.");
        }

        for (var i = 0; i < options.ApiKeys.Count; i++)
        {
            var key = options.ApiKeys[i];
            var at = $"Segmentation:Security:ApiKeys:{i}";
            if (string.IsNullOrWhiteSpace(key.Name))
            {
                failures.Add($"{at}:Name is required.");
            }

            if (key.Sha256.Trim().Length != 64 || !key.Sha256.Trim().All(char.IsAsciiHexDigit))
            {
                failures.Add($"{at}:Sha256 must be the SHA-256 of the key as 64 hexadecimal characters (printf %s KEY | segctl hash-key, or printf %s KEY | sha256sum).");
            }

            if (key.Scopes.Count == 0)
            {
                failures.Add($"{at}:Scopes must name at least one of decide, ingest, read, watch, admin.");
            }

            foreach (var scope in key.Scopes.Where(s => !ApiScopes.TryParse(s, out _)))
            {
                failures.Add($"{at}:Scopes: unknown scope '{scope}' (use decide, ingest, read, watch, admin).");
            }

            if (key.RequestsPerSecond < 0)
            {
                failures.Add($"{at}:RequestsPerSecond must be 0 (the default, Segmentation:Limits:UnaryRequestsPerSecond) or more (got {key.RequestsPerSecond}).");
            }
        }

        // One key is one caller: two entries with the same hash would give the key whichever entry matched last (a
        // storefront's key with an operator's scopes, or the other way round).
        foreach (var shared in options.ApiKeys.Where(k => k.Sha256.Trim().Length == 64).GroupBy(k => k.Sha256.Trim(), StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1))
        {
            failures.Add($"Segmentation:Security:ApiKeys: the same key (Sha256 {shared.Key[..8]}...) is configured for {string.Join(" and ", shared.Select(k => $"'{k.Name}'"))}; give each caller its own key.");
        }

        foreach (var duplicate in options.ApiKeys.GroupBy(k => k.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            failures.Add($"Segmentation:Security:ApiKeys: the name '{duplicate.Key}' is used by more than one key.");
        }

        if (options.CertificatePath.Length > 0 && !File.Exists(options.CertificatePath))
        {
            failures.Add($"Segmentation:Security:CertificatePath: file '{options.CertificatePath}' not found.");
        }

        if (options.CertificateKeyPath.Length > 0 && !File.Exists(options.CertificateKeyPath))
        {
            failures.Add($"Segmentation:Security:CertificateKeyPath: file '{options.CertificateKeyPath}' not found.");
        }

        foreach (var (endpoint, url, hasOwnCertificate, protocols) in Endpoints())
        {
            // An HTTP/1.1-only endpoint cannot carry a gRPC call (HTTP/2 is required): it serves the metrics and health
            // probes and may be plaintext. The HTTP/JSON API on it refuses plaintext requests unless AllowPlaintext
            // (ApiKeyAuthenticationMiddleware), though a client that sends one has already sent its key in clear.
            var http1Only = string.Equals(protocols, "Http1", StringComparison.OrdinalIgnoreCase);
            if (url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !options.AllowPlaintext && !http1Only)
            {
                failures.Add($"Endpoint {endpoint} ({url}) is plaintext, but plaintext is not allowed. Serve TLS: an https:// URL "
                    + "and a certificate (Segmentation:Security:CertificatePath); or, for local use only, set Segmentation:Security:AllowPlaintext=true.");
            }
            else if (url.StartsWith("https://", StringComparison.OrdinalIgnoreCase) && options.CertificatePath.Length == 0 && !hasOwnCertificate)
            {
                failures.Add($"Endpoint {endpoint} ({url}) is https but no certificate is configured: set Segmentation:Security:CertificatePath "
                    + "(a .pfx with CertificatePassword, or a PEM file with CertificateKeyPath).");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // The endpoints Kestrel will bind: Kestrel:Endpoints when present (they override the rest), else the
    // urls setting (ASPNETCORE_URLS, --urls), else the ports settings (ASPNETCORE_HTTP_PORTS and
    // ASPNETCORE_HTTPS_PORTS, as the .NET container images set), else Kestrel's default (plaintext http://localhost:5000).
    private IEnumerable<(string Endpoint, string Url, bool HasOwnCertificate, string? Protocols)> Endpoints()
    {
        var endpoints = configuration.GetSection("Kestrel:Endpoints").GetChildren().ToList();
        if (endpoints.Count > 0)
        {
            return endpoints.Select(e => ($"Kestrel:Endpoints:{e.Key}", e["Url"] ?? "", e.GetSection("Certificate").Exists(), e["Protocols"] ?? configuration["Kestrel:EndpointDefaults:Protocols"]));
        }

        var defaults = configuration["Kestrel:EndpointDefaults:Protocols"];
        var urls = configuration["urls"];
        if (!string.IsNullOrWhiteSpace(urls))
        {
            return Split(urls).Select(u => ("urls", u, false, defaults));
        }

        var ports = Split(configuration["http_ports"]).Select(p => ("http_ports", $"http://*:{p}", false, defaults))
            .Concat(Split(configuration["https_ports"]).Select(p => ("https_ports", $"https://*:{p}", false, defaults)))
            .ToList();
        return ports.Count > 0 ? ports : [("default", "http://localhost:5000", false, defaults)];

        static string[] Split(string? list) => (list ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }
}
