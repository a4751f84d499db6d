namespace Segmentation.Server.Tests;

/// <summary>The dashboard's error sentences (wwwroot/api.js, run in Node): each names the real cause.</summary>
public class DashboardMessageTests
{
    private static async Task<string> Describe(int status, int code, string message)
    {
        var api = new Uri(Path.Combine(ExternalTools.RepoRoot, "src", "Segmentation.Server", "Dashboard", "wwwroot", "api.js")).AbsoluteUri;
        var script = Path.Combine(Path.GetTempPath(), $"describe-{Guid.NewGuid():N}.mjs");
        await File.WriteAllTextAsync(script, $$"""
            import { ApiError, describeError } from '{{api}}';
            console.log(describeError(new ApiError({{status}}, {{code}}, {{System.Text.Json.JsonSerializer.Serialize(message)}}), 'Loading KPIs'));
            """);
        try
        {
            var (exit, stdout, stderr) = await ExternalTools.Run("node", script, ExternalTools.RepoRoot, TimeSpan.FromSeconds(60));
            Assert.True(exit == 0, stderr);
            return stdout.Trim();
        }
        finally
        {
            File.Delete(script);
        }
    }

    [Fact]
    public async Task A_call_refused_over_plain_http_says_to_use_https_not_that_the_key_lacks_a_scope()
    {
        var text = await Describe(403, 7, "the HTTP/JSON API is served over TLS only: call it with https://, or, for local use or behind a TLS-terminating proxy, set Segmentation:Security:AllowPlaintext=true");

        Assert.StartsWith("Loading KPIs: this server refuses API calls over plain HTTP", text, StringComparison.Ordinal);
        Assert.DoesNotContain("scope", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_answer_that_is_not_the_services_json_names_its_http_status_not_ok()
    {
        // Regression: a proxy's 502 page has no gRPC code, read as 0, which named it "OK".
        var text = await Describe(502, 0, "Bad Gateway");

        Assert.Equal("Loading KPIs: HTTP 502: Bad Gateway", text);
    }

    [Fact]
    public async Task A_key_without_the_scope_is_told_which_scope()
    {
        var text = await Describe(403, 7, "this call needs the 'admin' scope, which API key 'viewer' does not have");

        Assert.Equal("Loading KPIs: this key lacks the 'admin' scope (this call needs the 'admin' scope, which API key 'viewer' does not have).", text);
    }
}
