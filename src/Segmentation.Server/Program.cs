using Segmentation.Server.Hosting;
using Segmentation.Server.Interceptors;
using Segmentation.Server.Security;
using Segmentation.Server.Services;

var builder = WebApplication.CreateBuilder(args);

builder.Services.AddSegmentation();
builder.Services.AddSegmentationSecurity();
builder.Services.AddGrpc(options =>
{
    options.Interceptors.Add<ApiKeyAuthInterceptor>();
    options.Interceptors.Add<ErrorMappingInterceptor>();
    options.EnableDetailedErrors = builder.Environment.IsDevelopment();
});
builder.Services.AddGrpcReflection();
builder.Services.AddGrpcHealthChecks().AddCheck("catalog", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());

var app = builder.Build();

app.MapGrpcService<DecisionGrpcService>();
app.MapGrpcService<ProfileGrpcService>();
app.MapGrpcService<CatalogGrpcService>();
app.MapGrpcService<PrivacyGrpcService>();
app.MapGrpcService<DiagnosticsGrpcService>();
app.MapGrpcHealthChecksService();
app.MapGrpcReflectionService();

app.Run();

/// <summary>Entry point, public for in-memory integration tests.</summary>
public partial class Program;
