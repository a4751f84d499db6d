namespace Segmentation.LoadTest;

/// <summary>Adds the API key to every request as <c>x-api-key</c>.</summary>
internal sealed class ApiKeyHandler(string apiKey) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.TryAddWithoutValidation("x-api-key", apiKey);
        return base.SendAsync(request, cancellationToken);
    }
}
