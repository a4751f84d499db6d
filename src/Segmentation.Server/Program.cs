using Segmentation.Server.Hosting;
using Segmentation.Server.Interceptors;
using Segmentation.Server.Security;
using Segmentation.Server.Services;

// Validate-only mode, as 'nginx -t': the server's own catalog rules on a directory, without starting the service.
if (CatalogValidationMode.Requested(args) is { } catalogDirectory)
{
    return CatalogValidationMode.Run(catalogDirectory);
}

try
{
    // Everything that reads configuration is inside: a bad value anywhere is explained in words below.
    var builder = WebApplication.CreateBuilder(args);

    // Secrets as files (Docker and Kubernetes secrets): a file named like the key (Segmentation__EncryptionKey) holds its
    // value. The directory is /run/secrets unless SEGMENTATION_SECRETS_DIR names another; it is read only when it exists.
    builder.Configuration.AddKeyPerFile(Environment.GetEnvironmentVariable("SEGMENTATION_SECRETS_DIR") is { Length: > 0 } secrets ? secrets : "/run/secrets", optional: true);

    // A client error is the client's business: gRPC's own "status raised" entries (which quote error details,
    // such as a user id that was not found) stay below Information, so no user id reaches the log by default.
    builder.Logging.AddFilter("Grpc.AspNetCore.Server.ServerCallHandler", LogLevel.Warning);
    builder.Logging.AddFilter("Grpc.AspNetCore.Grpc.JsonTranscoding", LogLevel.Warning); // the same over HTTP/JSON (with stack traces of bodies it could not read)

    // A start-up failure is reported once, below: in words when an operator can fix it, else by the runtime with its stack
    // trace. The host's own "Hosting failed to start" error would print it as a stack dump first. A background job that
    // fails at run time is still logged by the host, as critical, with its exception.
    builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);

    // Exception messages can quote personal data (a user id, a trait value): outside Development every logged exception
    // shows its type and stack trace only, whichever component logs it.
    builder.Logging.RedactExceptionMessagesOutside(builder.Environment);

    builder.Services.AddSegmentation();
    builder.Services.AddSegmentationSecurity();
    // The interceptors are services of their own, one instance for the process: the host would otherwise build one per
    // call, and the error mapper's limit on repeated log entries has to see every call to limit anything.
    builder.Services.AddSingleton<AdminAuditInterceptor>();
    builder.Services.AddSingleton<ErrorMappingInterceptor>();
    builder.Services.AddGrpc(options =>
    {
        options.Interceptors.Add<AdminAuditInterceptor>(); // outermost: records the status the caller sees
        options.Interceptors.Add<ErrorMappingInterceptor>();
        options.EnableDetailedErrors = builder.Environment.IsDevelopment();
    }).AddJsonTranscoding(transcoding =>
    {
        // HTTP/JSON callers (the routes the protos declare with google.api.http) get the same error details as gRPC
        // callers, in the JSON body: field violations, retry delays, error reasons.
        transcoding.TypeRegistry = Google.Protobuf.Reflection.TypeRegistry.FromFiles(Google.Rpc.ErrorDetailsReflection.Descriptor);
    });
    builder.Services.AddHttpJsonApiDocument();
    builder.Services.AddParsedRequestBinding();
    builder.Services.AddGrpcReflection();
    builder.Services.AddSegmentationTelemetry(builder.Configuration);
    // Readiness per service: the catalog service reads the segment membership index, which is rebuilt in the
    // background after a restart; every other service (and the server as a whole, "") is ready without it.
    builder.Services.AddGrpcHealthChecks(health =>
        {
            static bool WithoutMemberships(Grpc.AspNetCore.HealthChecks.HealthCheckMapContext check) => !check.Tags.Contains(MembershipHealthCheck.Tag);
            health.Services.Map("", WithoutMemberships);
            health.Services.Map("segmentation.v1.DecisionService", WithoutMemberships);
            health.Services.Map("segmentation.v1.ProfileService", WithoutMemberships);
            health.Services.Map("segmentation.v1.PrivacyService", WithoutMemberships);
            health.Services.Map("segmentation.v1.DiagnosticsService", WithoutMemberships);
            health.Services.Map("segmentation.v1.OutcomeService", WithoutMemberships);
            health.Services.Map("segmentation.v1.InsightsService", WithoutMemberships);
            health.Services.Map("segmentation.v1.ExperimentService", WithoutMemberships);
            health.Services.Map("segmentation.v1.AuditService", WithoutMemberships);

            health.Services.Map("segmentation.v1.CatalogService", _ => true);
        })
        .AddCheck<CatalogHealthCheck>("catalog", tags: [Telemetry.ReadyTag])
        .AddCheck<StorageHealthCheck>("storage", tags: [Telemetry.ReadyTag])
        .AddCheck<DegradedJobsHealthCheck>("optional jobs", tags: [Telemetry.ReadyTag])
        .AddCheck<MembershipHealthCheck>("memberships", tags: [MembershipHealthCheck.Tag]);

    var app = builder.Build(); // options are validated here: a configuration error is reported in words below
    app.UseDashboard(); // static files at /dashboard/, before routing: no key needed for the page itself
    app.UseRouting();
    app.UseHttpJsonApiHeaders(); // no cache keeps an HTTP/JSON answer (personal data), refusals included
    app.UseMiddleware<ApiKeyAuthenticationMiddleware>(); // before any request body is read
    app.UseRateLimiter(); // per API key, so after authentication
    app.UseMiddleware<HttpJsonInputErrors>(); // HTTP/JSON bodies and query strings transcoding refuses: the field named

    app.MapGrpcService<DecisionGrpcService>();
    app.MapGrpcService<ProfileGrpcService>();
    app.MapGrpcService<CatalogGrpcService>();
    app.MapGrpcService<PrivacyGrpcService>();
    app.MapGrpcService<DiagnosticsGrpcService>();
    app.MapGrpcService<OutcomeGrpcService>();
    app.MapGrpcService<InsightsGrpcService>();
    app.MapGrpcService<ExperimentGrpcService>();
    app.MapGrpcService<AuditGrpcService>();
    app.MapGrpcHealthChecksService();
    app.MapGrpcReflectionService();
    app.MapSegmentationTelemetry(); // /metrics and /healthz
    app.MapHttpJsonApiDocument(); // /openapi/v1.json

    return await HostRunning.RunAsync(app); // a failed start stops the jobs that did start before the failure is explained below
}
catch (Exception ex) when (StartupFailure.Explain(ex) is { } reason)
{
    Console.Error.WriteLine($"Segmentation.Server did not start: {reason}");
    return StartupFailure.ExitCode;
}

/// <summary>Entry point, public for in-memory integration tests.</summary>
public partial class Program;
