using Microsoft.AspNetCore.Grpc.JsonTranscoding;
using Microsoft.OpenApi.Models;

namespace Segmentation.Server.Hosting;

/// <summary>
/// The OpenAPI document of the HTTP/JSON API (gRPC JSON transcoding of the routes the protos declare with
/// <c>google.api.http</c>), generated from the same descriptors and proto comments as the gRPC contract, served at
/// <see cref="DocumentPath"/> without authentication (it describes only the public contract, which is in the repository).
/// </summary>
internal static class HttpJsonApi
{
    /// <summary>True when the request came through JSON transcoding (HTTP/JSON), not gRPC.</summary>
    public static bool IsHttpJsonCall(HttpContext context) => context.GetEndpoint()?.Metadata.GetMetadata<GrpcJsonTranscodingMetadata>() is not null;

    /// <summary>
    /// Marks every HTTP/JSON answer (refusals included) as not to be stored: they hold personal data (profiles, exports,
    /// members, the audit trail), and the key travels in a header (<c>x-api-key</c>) that shared caches do not treat
    /// as <c>Authorization</c>, so a caching proxy could otherwise serve one caller's answer to anyone for a while.
    /// After routing (the endpoint tells an HTTP/JSON call) and before authentication (whose refusals are answers too).
    /// </summary>
    public static WebApplication UseHttpJsonApiHeaders(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            if (IsHttpJsonCall(context))
            {
                context.Response.Headers.CacheControl = "no-store";
                context.Response.Headers.XContentTypeOptions = "nosniff";
            }

            return next(context);
        });
        return app;
    }

    /// <summary>Where the document is served.</summary>
    public const string DocumentPath = "/openapi/v1.json";

    /// <summary>Registers the document generator with the proto comments of the generated contract.</summary>
    public static IServiceCollection AddHttpJsonApiDocument(this IServiceCollection services)
    {
        services.AddGrpcSwagger();
        services.AddSwaggerGen(options =>
        {
            options.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "Segmentation API (HTTP/JSON)",
                Version = "v1",
                Description = "The segmentation.v1 gRPC contract over HTTP/1.1 and JSON (proto3 JSON mapping: lowerCamelCase fields, "
                    + "enums by name, RFC 3339 times). Authenticate with 'x-api-key: KEY' or 'Authorization: Bearer KEY'. Errors are "
                    + "a google.rpc.Status JSON body (code, message, details such as google.rpc.BadRequest field violations).",
            });
            options.AddSecurityDefinition("apiKey", new OpenApiSecurityScheme { Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "x-api-key" });
            options.AddSecurityRequirement(new OpenApiSecurityRequirement
            {
                [new OpenApiSecurityScheme { Reference = new OpenApiReference { Type = ReferenceType.SecurityScheme, Id = "apiKey" } }] = [],
            });
            var comments = Path.Combine(AppContext.BaseDirectory, "Segmentation.Server.xml");
            if (File.Exists(comments))
            {
                options.IncludeGrpcXmlComments(comments, includeControllerXmlComments: true);
            }
        });
        return services;
    }

    /// <summary>Serves the document at <see cref="DocumentPath"/>.</summary>
    public static IEndpointRouteBuilder MapHttpJsonApiDocument(this WebApplication app)
    {
        // Only on its own path: the document middleware builds a document generator for every request it sees,
        // which on the pipeline of every gRPC call was work (and garbage) for nothing.
        app.UseWhen(
            context => context.Request.Path.StartsWithSegments("/openapi", StringComparison.OrdinalIgnoreCase),
            branch => branch.UseSwagger(options => options.RouteTemplate = "openapi/{documentName}.json"));
        return app;
    }
}
