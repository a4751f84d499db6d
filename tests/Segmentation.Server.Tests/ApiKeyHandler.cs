namespace Segmentation.Server.Tests;

/// <summary>Adds an API key to every request, as <c>x-api-key</c> or as a bearer token.</summary>
internal sealed class ApiKeyHandler(string header, string value) : DelegatingHandler
{
    /// <summary>A handler sending <paramref name="apiKey"/> over <paramref name="inner"/> (a new SocketsHttpHandler when null).</summary>
    public static ApiKeyHandler For(string apiKey, bool bearer = false, HttpMessageHandler? inner = null) =>
        new(bearer ? "authorization" : "x-api-key", bearer ? $"Bearer {apiKey}" : apiKey) { InnerHandler = inner ?? new SocketsHttpHandler() };

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.TryAddWithoutValidation(header, value);
        return base.SendAsync(request, cancellationToken);
    }
}
