using Microsoft.Extensions.FileProviders;

namespace Segmentation.Server.Hosting;

/// <summary>
/// The browser dashboard at <c>/dashboard/</c>: static files embedded in the server's assembly (HTML, CSS, ES
/// modules and the uPlot library), served without a key — they hold no data. Every number on its pages comes from
/// the HTTP/JSON API, called with the key the user enters and the scopes that key has.
/// </summary>
internal static class Dashboard
{
    public const string Path = "/dashboard";

    // Only this origin's scripts, styles, images and API calls; no inline script; not framed by other sites.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static void UseDashboard(this WebApplication app)
    {
        var files = new ManifestEmbeddedFileProvider(typeof(Dashboard).Assembly, "Dashboard/wwwroot");
        app.Use((context, next) =>
        {
            if (context.Request.Path.Equals(Path, StringComparison.OrdinalIgnoreCase))
            {
                context.Response.Redirect(Path + "/"); // the pages load their modules by relative URLs
                return Task.CompletedTask;
            }

            return next(context);
        });
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files, RequestPath = Path });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            RequestPath = Path,
            OnPrepareResponse = file =>
            {
                var headers = file.Context.Response.Headers;
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                headers.CacheControl = "no-cache"; // revalidated (ETag) so a new server version's files are picked up at once
            },
        });
    }
}
