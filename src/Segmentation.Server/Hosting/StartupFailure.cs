using Microsoft.Extensions.Options;
using Segmentation.Core.Catalog;
using Segmentation.Storage;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Start-up failures an operator can fix (configuration, a data directory in use or damaged, a bad
/// catalog, a listen address that is not a URL or whose port another process holds, a certificate that cannot be loaded): reported as one paragraph and exit code 1 instead of an unhandled-exception dump.
/// </summary>
internal static class StartupFailure
{
    /// <summary>Exit code of a start-up that failed for a reason <see cref="Explain"/> knows.</summary>
    public const int ExitCode = 1;

    /// <summary>What went wrong, in words, or null for an unexpected failure (which keeps its stack trace).</summary>
    public static string? Explain(Exception ex) => ex switch
    {
        AggregateException { InnerExceptions.Count: 1 } a => Explain(a.InnerException!),
        DataDirectoryLockedException or StoreDamagedException or ChangeLogCorruptException or CatalogException => ex.Message,
        OptionsValidationException o => "invalid configuration: " + string.Join("; ", o.Failures),
        InvalidOperationException when IsBindingFailure(ex) => "invalid configuration: " + ex.Message, // names the value, the key and the type it must have
        FormatException when ex.TargetSite?.DeclaringType == typeof(Microsoft.AspNetCore.Http.BindingAddress) =>
            "invalid configuration: a listen address is not a URL (" + ex.Message + "); give one such as http://0.0.0.0:5000 or https://*:5001 (Kestrel:Endpoints:<name>:Url, ASPNETCORE_URLS)",
        System.Security.Cryptography.CryptographicException when ex.TargetSite?.DeclaringType == typeof(System.Security.Cryptography.X509Certificates.X509CertificateLoader) =>
            "a TLS certificate cannot be loaded (wrong password or key, or not a PKCS#12/PEM file): " + ex.Message, // Kestrel's own Certificate:Path
        InvalidDataException => "the durable store cannot be read: " + ex.Message,
        IOException { InnerException: Microsoft.AspNetCore.Connections.AddressInUseException } => "cannot listen: " + ex.Message
            + " Another process holds the port: stop it, or give this server another address (Kestrel:Endpoints:<name>:Url, ASPNETCORE_URLS or ASPNETCORE_HTTP_PORTS).",
        IOException or UnauthorizedAccessException => "a file could not be read or written: " + ex.Message,
        _ => null,
    };

    // A configuration value the binder could not convert to its option's type (a word where a number belongs).
    private static bool IsBindingFailure(Exception ex) =>
        ex.TargetSite?.DeclaringType == typeof(Microsoft.Extensions.Configuration.ConfigurationBinder) && ex.InnerException is not null;
}
