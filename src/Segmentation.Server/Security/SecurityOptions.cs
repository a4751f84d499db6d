using System.ComponentModel.DataAnnotations;

namespace Segmentation.Server.Security;

/// <summary>Authentication and transport security, section <c>Segmentation:Security</c>.</summary>
public sealed class SecurityOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation:Security";

    /// <summary>
    /// The documented local development key. Its hash is configured in <c>appsettings.Development.json</c>;
    /// a warning is logged at start-up whenever it is accepted.
    /// </summary>
    public const string DevelopmentKey = "dev-local-key-change-me";

    /// <summary>The API keys accepted by the service (hashed). At least one is required unless authentication is disabled.</summary>
    public List<ApiKeyOptions> ApiKeys { get; set; } = [];

    /// <summary>Accept every call without credentials, with every scope. For local testing only.</summary>
    public bool DisableAuthentication { get; set; }

    /// <summary>Allow plaintext HTTP/2 (h2c) endpoints. For local use only; otherwise every endpoint must be https.</summary>
    public bool AllowPlaintext { get; set; }

    /// <summary>Server certificate for https endpoints: a PKCS#12 (.pfx) file, or a PEM certificate with <see cref="CertificateKeyPath"/>.</summary>
    public string CertificatePath { get; set; } = "";

    /// <summary>Password of the PKCS#12 file (or of an encrypted PEM key), if any.</summary>
    public string CertificatePassword { get; set; } = "";

    /// <summary>PEM private key of a PEM <see cref="CertificatePath"/>; empty for PKCS#12.</summary>
    public string CertificateKeyPath { get; set; } = "";
}

/// <summary>One API key: a name (for logs and rate limits), the SHA-256 of the key, and its scopes.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>Name of the caller, used in logs, errors and per-caller limits; never the key itself.</summary>
    [Required]
    public string Name { get; set; } = "";

    /// <summary>SHA-256 of the key's UTF-8 bytes, 64 hexadecimal characters (<c>printf %s KEY | sha256sum</c>).</summary>
    [Required]
    public string Sha256 { get; set; } = "";

    /// <summary>Scopes granted: <c>decide</c>, <c>ingest</c>, <c>read</c>, <c>watch</c>, <c>admin</c>.</summary>
    public List<string> Scopes { get; set; } = [];

    /// <summary>Unary calls per second this key may make (all unary methods together); 0 (the default) takes <c>Segmentation:Limits:UnaryRequestsPerSecond</c>.</summary>
    [Range(0, int.MaxValue)]
    public int RequestsPerSecond { get; set; }
}
