using Segmentation.Server.Hosting;
using Segmentation.Server.Interceptors;
using Segmentation.Server.Security;
using Segmentation.Server.Services;

var builder = WebApplication.CreateBuilder(args);

// A client error is the client's business: gRPC's own "status raised" entries (which quote error details,
// such as a user id that was not found) stay below Information, so no user id reaches the log by default.
builder.Logging.AddFilter("Grpc.AspNetCore.Server.ServerCallHandler", LogLevel.Warning);

builder.Services.AddSegmentation();
builder.Services.AddSegmentationSecurity();
builder.Services.AddGrpc(options =>
{
    options.Interceptors.Add<ErrorMappingInterceptor>();
    options.EnableDetailedErrors = builder.Environment.IsDevelopment();
});
builder.Services.AddParsedRequestBinding();
builder.Services.AddGrpcReflection();
builder.Services.AddGrpcHealthChecks()
    .AddCheck("catalog", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy())
    .AddCheck<StorageHealthCheck>("storage");

var app = builder.Build();

app.UseRouting();
app.UseMiddleware<ApiKeyAuthenticationMiddleware>(); // before any request body is read

app.MapGrpcService<DecisionGrpcService>();
app.MapGrpcService<ProfileGrpcService>();
app.MapGrpcService<CatalogGrpcService>();
app.MapGrpcService<PrivacyGrpcService>();
app.MapGrpcService<DiagnosticsGrpcService>();
app.MapGrpcHealthChecksService();
app.MapGrpcReflectionService();

try
{
    app.Run();
}
catch (Exception ex) when (StartupFailure.Explain(ex) is { } reason)
{
    Console.Error.WriteLine($"Segmentation.Server did not start: {reason}");
    Environment.ExitCode = StartupFailure.ExitCode;
}

/// <summary>Entry point, public for in-memory integration tests.</summary>
public partial class Program;
