using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Segmentation.Server.Hosting;

namespace Segmentation.Server.Security;

/// <summary>Registers authentication, TLS and request limits.</summary>
public static class SecurityServiceCollectionExtensions
{
    /// <summary>
    /// Adds the API key ring (the authentication middleware, <c>UseSegmentationAuthentication</c>, uses it),
    /// the security and limits options (validated at start-up), the https certificate for Kestrel,
    /// the request size limit, the per-caller stream rate limits and the per-key limit on unary calls.
    /// </summary>
    public static IServiceCollection AddSegmentationSecurity(this IServiceCollection services)
    {
        services.AddOptions<SecurityOptions>()
            .BindConfiguration(SecurityOptions.Section)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SecurityOptions>, SecurityOptionsValidator>());
        services.AddLimitsOptions(); // request size, stream rates and connections are read here

        services.TryAddSingleton<ApiKeyRing>();
        services.TryAddSingleton<StreamRateLimits>();
        services.TryAddSingleton<UnaryRateLimits>();
        services.AddHostedService<SecurityStartupReport>();

        services.AddRateLimiter(_ => { });
        services.AddOptions<Microsoft.AspNetCore.RateLimiting.RateLimiterOptions>()
            .Configure<UnaryRateLimits>((rateLimits, unary) => unary.Configure(rateLimits));
        services.AddOptions<GrpcServiceOptions>()
            .Configure<IOptions<LimitsOptions>>((grpc, limits) => grpc.MaxReceiveMessageSize = limits.Value.MaxRequestBytes)
            .PostConfigure<IOptions<LimitsOptions>>((grpc, limits) =>
            {
                // In place of the framework's gzip and deflate, which inflate a message whole before any limit applies.
                grpc.CompressionProviders.Clear();
                foreach (var provider in BoundedDecompression.For(limits.Value.MaxRequestBytes))
                {
                    grpc.CompressionProviders.Add(provider);
                }
            });
        services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<SecurityOptions>, IOptions<LimitsOptions>>((kestrel, security, limits) =>
            {
                if (security.Value.CertificatePath.Length > 0)
                {
                    var certificate = LoadCertificate(security.Value);
                    kestrel.ConfigureHttpsDefaults(https => https.ServerCertificate = certificate);
                }

                ConnectionLimits.Apply(kestrel, limits.Value);
            });
        return services;
    }

    private static X509Certificate2 LoadCertificate(SecurityOptions o)
    {
        var password = o.CertificatePassword.Length > 0 ? o.CertificatePassword : null;
        try
        {
            if (o.CertificateKeyPath.Length > 0)
            {
                return password is null
                    ? X509Certificate2.CreateFromPemFile(o.CertificatePath, o.CertificateKeyPath)
                    : X509Certificate2.CreateFromEncryptedPemFile(o.CertificatePath, password, o.CertificateKeyPath);
            }

            return X509CertificateLoader.LoadPkcs12FromFile(o.CertificatePath, password);
        }
        catch (CryptographicException ex)
        {
            // A configuration the server cannot use: reported at start-up as one sentence, like any invalid option.
            throw new OptionsValidationException(
                nameof(SecurityOptions),
                typeof(SecurityOptions),
                [$"Segmentation:Security:CertificatePath: cannot load the certificate '{o.CertificatePath}' (wrong password or key, or not a PKCS#12/PEM file): {ex.Message}"]);
        }
    }
}
