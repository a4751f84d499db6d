using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Microsoft.AspNetCore.Mvc.Testing;
using Segmentation.Contracts.V1;
using Segmentation.Server.Security;

namespace Segmentation.Server.Tests;

/// <summary>API keys, scopes per RPC, open health and reflection, per-caller limits and deadlines, over the in-memory server.</summary>
public sealed class AuthenticationTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private static readonly DecideRequest Decide = new() { UserId = "12347" };

    [Fact]
    public async Task A_call_without_credentials_is_unauthenticated()
    {
        using var channel = fixture.CreateChannel(apiKey: null);
        var ex = await Assert.ThrowsAsync<RpcException>(() => new DecisionService.DecisionServiceClient(channel).DecideAsync(Decide).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Contains("x-api-key", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_key_is_unauthenticated_and_never_echoed()
    {
        using var channel = fixture.CreateChannel("not-a-configured-key-4242");
        var ex = await Assert.ThrowsAsync<RpcException>(() => new DiagnosticsService.DiagnosticsServiceClient(channel).EchoAsync(new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.DoesNotContain("4242", ex.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_key_works_as_a_bearer_token()
    {
        using var channel = fixture.CreateChannel(GrpcTestFixture.DecideKey, bearer: true);
        var response = await new DecisionService.DecisionServiceClient(channel).DecideAsync(Decide);
        Assert.Equal("champions", response.Decision.Segment.Id);
    }

    [Fact]
    public async Task A_bearer_token_that_is_not_a_key_is_unauthenticated()
    {
        using var channel = fixture.CreateChannel("nope", bearer: true);
        var ex = await Assert.ThrowsAsync<RpcException>(() => new DecisionService.DecisionServiceClient(channel).DecideAsync(Decide).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
    }

    [Fact]
    public async Task A_decide_carrying_events_needs_the_ingest_scope_too_and_records_nothing_without_it()
    {
        var user = "auth-" + Guid.NewGuid().ToString("N");
        var request = new DecideRequest { UserId = user, Events = { Support.ProtoEvents.Make(user, "atc-1", "add_to_cart") } };
        using var decideOnly = fixture.CreateChannel(GrpcTestFixture.DecideKey);
        using var both = fixture.CreateChannel(GrpcTestFixture.AllScopesKey);

        var ex = await Assert.ThrowsAsync<RpcException>(() => new DecisionService.DecisionServiceClient(decideOnly).DecideAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Contains("'ingest' scope", ex.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(GrpcTestFixture.DecideKey, ex.Status.Detail, StringComparison.Ordinal);
        var profiles = new ProfileService.ProfileServiceClient(both);
        var missing = await Assert.ThrowsAsync<RpcException>(() => profiles.GetProfileAsync(new GetProfileRequest { UserId = user }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);

        var granted = await new DecisionService.DecisionServiceClient(both).DecideAsync(request);
        Assert.Equal(EventStatus.Accepted, Assert.Single(granted.EventResults).Status);
    }

    [Theory]
    [InlineData(GrpcTestFixture.IngestKey, "decision", "decide")]
    [InlineData(GrpcTestFixture.AdminKey, "decision", "decide")]
    [InlineData(GrpcTestFixture.IngestKey, "echo", "decide")]
    [InlineData(GrpcTestFixture.DecideKey, "track", "ingest")]
    [InlineData(GrpcTestFixture.AdminKey, "stream", "ingest")]
    [InlineData(GrpcTestFixture.IngestKey, "profile", "decide")]
    [InlineData(GrpcTestFixture.DecideKey, "catalog", "read")]
    [InlineData(GrpcTestFixture.DecideKey, "kpis", "read")]
    [InlineData(GrpcTestFixture.IngestKey, "publish", "admin")]
    [InlineData(GrpcTestFixture.ReadKey, "publish", "admin")] // an analyst reads, never publishes
    [InlineData(GrpcTestFixture.ReadKey, "forget", "admin")]
    [InlineData(GrpcTestFixture.ReadKey, "decision", "decide")]
    [InlineData(GrpcTestFixture.ReadKey, "watch", "watch")]
    [InlineData(GrpcTestFixture.WatchKey, "decision", "decide")]
    [InlineData(GrpcTestFixture.WatchKey, "catalog", "read")]
    [InlineData(GrpcTestFixture.DecideKey, "watch", "watch")]
    [InlineData(GrpcTestFixture.IngestKey, "watch", "watch")]
    public async Task A_known_key_without_the_scope_is_permission_denied_naming_the_scope(string key, string call, string scope)
    {
        using var channel = fixture.CreateChannel(key);
        var ex = await Assert.ThrowsAsync<RpcException>(() => Call(channel, call));
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Contains($"'{scope}' scope", ex.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(key, ex.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GrpcTestFixture.DecideKey, "decision")]
    [InlineData(GrpcTestFixture.DecideKey, "echo")]
    [InlineData(GrpcTestFixture.DecideKey, "profile")]
    [InlineData(GrpcTestFixture.IngestKey, "track")]
    [InlineData(GrpcTestFixture.IngestKey, "stream")]
    [InlineData(GrpcTestFixture.AdminKey, "catalog")] // admin implies read
    [InlineData(GrpcTestFixture.ReadKey, "catalog")]
    [InlineData(GrpcTestFixture.ReadKey, "counts")] // an analyst reads a segment count without admin
    [InlineData(GrpcTestFixture.ReadKey, "kpis")]
    [InlineData(GrpcTestFixture.ReadKey, "experiments")]
    [InlineData(GrpcTestFixture.WatchKey, "watch")]
    [InlineData(GrpcTestFixture.WatchKey, "members")] // how a stream consumer resynchronises
    [InlineData(GrpcTestFixture.AdminKey, "watch")] // admin implies watch
    public async Task A_key_with_the_scope_gets_through(string key, string call)
    {
        using var channel = fixture.CreateChannel(key);
        await Call(channel, call);
    }

    [Fact]
    public async Task Health_checks_and_reflection_need_no_key()
    {
        using var channel = fixture.CreateChannel(apiKey: null);
        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Contains(call.ResponseStream.Current.ListServicesResponse.Service, s => s.Name == "segmentation.v1.DecisionService");
    }

    [Fact]
    public void A_method_missing_from_the_table_requires_admin()
    {
        Assert.Equal(ApiScope.Admin, MethodScopes.Required("/segmentation.v1.DecisionService/DecideEverything"));
        Assert.Equal(ApiScope.Admin, MethodScopes.Required("/segmentation.v1.SomeFutureService/Anything"));
        Assert.Equal(ApiScope.None, MethodScopes.Required("/grpc.health.v1.Health/Check"));
        Assert.Equal(ApiScope.Decide, MethodScopes.Required("/segmentation.v1.DiagnosticsService/Echo"));
    }

    [Fact]
    public void Every_rpc_in_the_protos_has_an_explicit_scope()
    {
        // Every service of the generated contract, found by reflection so that a new service cannot be forgotten here.
        var services = typeof(DecisionService).Assembly.GetTypes()
            .Where(t => t.Namespace == "Segmentation.Contracts.V1" && t.IsAbstract && t.IsSealed && t.GetProperty("Descriptor")?.PropertyType == typeof(Google.Protobuf.Reflection.ServiceDescriptor))
            .Select(t => (Google.Protobuf.Reflection.ServiceDescriptor)t.GetProperty("Descriptor")!.GetValue(null)!)
            .ToList();
        var methods = services.SelectMany(s => s.Methods.Select(m => $"/{s.FullName}/{m.Name}")).ToList();
        Assert.Equal(9, services.Count);
        Assert.Equal(33, methods.Count);
        Assert.All(methods, m => Assert.Contains(m, MethodScopes.Mapped));
    }

    [Fact]
    public async Task DecideBatch_stops_when_the_deadline_passes()
    {
        var request = new DecideBatchRequest { UserIds = { Enumerable.Range(0, 10_000).Select(i => $"deadline-user-{i}") } };
        var client = new DecisionService.DecisionServiceClient(fixture.Channel); // the host started before the clock does
        var watch = Stopwatch.StartNew();
        var received = 0;
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = client.DecideBatch(request, deadline: DateTime.UtcNow.AddMilliseconds(20));
            await foreach (var _ in call.ResponseStream.ReadAllAsync())
            {
                received++;
            }
        });
        // The client's own deadline timer normally reports DEADLINE_EXCEEDED; on a loaded machine the
        // server's deadline can fire first and reset the stream (RST_STREAM CANCEL) before it does, or tear
        // it down while the client is reading a message (the read then fails; grpc-dotnet#1547 is the same
        // race; with results flushed in groups the read fails as UNAVAILABLE or INTERNAL depending on where it
        // was). Either way the call ended after its deadline, which is what this test is about.
        var serverReset = ex.StatusCode is StatusCode.Unavailable or StatusCode.Internal && ex.Status.Detail.Contains("error code 8", StringComparison.Ordinal);
        var readTornDown = ex.StatusCode is StatusCode.Internal or StatusCode.Unavailable && ex.Status.Detail.StartsWith("Error reading next message", StringComparison.Ordinal)
            && watch.Elapsed >= TimeSpan.FromMilliseconds(20);
        Assert.True(ex.StatusCode == StatusCode.DeadlineExceeded || serverReset || readTornDown, $"{ex.StatusCode}: {ex.Status.Detail}");
        Assert.True(received < 10_000, $"all {received} results arrived despite the deadline");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_request_larger_than_the_limit_is_resource_exhausted()
    {
        using var factory = SmallLimits();
        using var channel = GrpcTestFixture.CreateChannel(factory);
        var ex = await Assert.ThrowsAsync<RpcException>(() => new DiagnosticsService.DiagnosticsServiceClient(channel)
            .EchoAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[64 * 1024]) }).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    public async Task A_compressed_request_larger_than_the_limit_once_decompressed_is_resource_exhausted(string encoding)
    {
        // Regression (review): the limit was checked on the compressed message only, and the framework inflated it
        // whole: 15 MiB of zeros compressed to a few kilobytes passed a 16 KiB limit (and 4 MiB of compressed zeros,
        // sent without a key to the health service, inflated to gigabytes).
        using var factory = SmallLimits();
        using var http = factory.Server.CreateClient();
        var echo = new EchoRequest { Payload = ByteString.CopyFrom(new byte[15 << 20]) }.ToByteArray();
        var frame = CompressedFrame(echo, encoding);
        Assert.True(frame.Length < 16 * 1024, $"{frame.Length} bytes compressed"); // within the limit as sent

        var (status, message) = await RawCall(http, "/segmentation.v1.DiagnosticsService/Echo", frame, encoding, GrpcTestFixture.AllScopesKey);

        // Refused by the decompression itself, which stops at the limit (the framework's own refusal came after it had
        // inflated the whole message).
        Assert.Equal((int)StatusCode.ResourceExhausted, status);
        Assert.Contains("16,384 bytes once decompressed", message, StringComparison.Ordinal);

        var small = CompressedFrame(new EchoRequest { Payload = ByteString.CopyFrom(new byte[8 * 1024]) }.ToByteArray(), encoding);
        Assert.Equal(0, (await RawCall(http, "/segmentation.v1.DiagnosticsService/Echo", small, encoding, GrpcTestFixture.AllScopesKey)).Status); // within the limit once decompressed: served
    }

    [Fact]
    public async Task A_compressed_request_that_does_not_decompress_is_invalid_argument_without_a_key()
    {
        // Regression (review): bytes flagged as gzip that are not gzip answered UNKNOWN and logged an error with its
        // stack at every request, to callers with no key (the health service is open).
        using var factory = SmallLimits();
        using var http = factory.Server.CreateClient();
        byte[] frame = [1, 0, 0, 0, 8, .. "notgzip!"u8];

        var (status, message) = await RawCall(http, "/grpc.health.v1.Health/Check", frame, "gzip", apiKey: null);

        Assert.Equal((int)StatusCode.InvalidArgument, status);
        Assert.Contains("does not decompress", message, StringComparison.Ordinal);
    }

    // A gRPC message frame: the compressed flag, the length, the message compressed with the encoding (as tightly as it goes).
    private static byte[] CompressedFrame(byte[] message, string encoding)
    {
        using var compressed = new MemoryStream();
        using (Stream z = encoding == "gzip"
            ? new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true)
            : new System.IO.Compression.DeflateStream(compressed, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true))
        {
            z.Write(message);
        }

        var body = compressed.ToArray();
        var frame = new byte[5 + body.Length];
        frame[0] = 1;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), body.Length);
        body.CopyTo(frame, 5);
        return frame;
    }

    // One unary call made by hand (the client library compresses as it likes): its grpc-status and grpc-message.
    private static async Task<(int Status, string Message)> RawCall(HttpClient http, string path, byte[] frame, string encoding, string? apiKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Version = new Version(2, 0), Content = new ByteArrayContent(frame) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.Add("grpc-encoding", encoding);
        request.Headers.TE.ParseAdd("trailers");
        if (apiKey is not null)
        {
            request.Headers.Add("x-api-key", apiKey);
        }

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        string? Header(string name) =>
            response.TrailingHeaders.TryGetValues(name, out var trailer) ? trailer.Single()
            : response.Headers.TryGetValues(name, out var header) ? header.Single() : null; // a call refused before any message answers in its headers
        return (int.Parse(Header("grpc-status")!, System.Globalization.CultureInfo.InvariantCulture), Uri.UnescapeDataString(Header("grpc-message") ?? ""));
    }

    [Theory]
    [InlineData(true, "application/json")]
    [InlineData(false, "application/json")]
    [InlineData(true, "application/grpc+json")] // review: JSON to transcoding, passed the limit as a gRPC call
    public async Task An_http_json_body_larger_than_the_limit_is_resource_exhausted(bool lengthDeclared, string contentType)
    {
        // Regression: only gRPC messages were held to the limit; transcoding read JSON bodies up to Kestrel's own
        // 28.6 MiB (seven times the documented 4 MiB), and refused a larger one as a malformed body (400).
        using var factory = SmallLimits();
        using var http = factory.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        var json = "{\"payload\":\"" + Convert.ToBase64String(new byte[64 * 1024]) + "\"}";
        using HttpContent content = lengthDeclared ? new StringContent(json, System.Text.Encoding.UTF8, contentType) : new UndeclaredLength(json);

        using var response = await http.PostAsync(new Uri("/v1/echo", UriKind.Relative), content);

        Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, response.StatusCode);
        using var body = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal((int)StatusCode.ResourceExhausted, body.RootElement.GetProperty("code").GetInt32());
        Assert.Contains("16,384 bytes", body.RootElement.GetProperty("message").GetString(), StringComparison.Ordinal);

        using var small = await http.PostAsync(new Uri("/v1/echo", UriKind.Relative), new StringContent("{\"payload\":\"aGk=\"}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.OK, small.StatusCode); // within the limit
    }

    [Fact]
    public async Task An_http_json_caller_past_its_ingestion_rate_gets_retry_after()
    {
        // Regression: the limiter's own refusals carried Retry-After, but a 429 raised by the service (the ingestion rate
        // of events, a batch decision's users) reached HTTP/JSON callers without it, the header api.md promises.
        using var factory = SmallLimits(); // 20 events a second
        using var http = factory.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        var now = DateTimeOffset.UtcNow.AddSeconds(-1).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 10 && refused is null; i++)
        {
            var events = string.Join(",", Enumerable.Range(0, 15).Select(n => $$$"""{"eventId":"ra-{{{i}}}-{{{n}}}","type":"page_view","userId":"ra-user","timestamp":"{{{now}}}","context":{"source":"web","device":"mobile","sessionId":"s1","pageType":"home"}}"""));
            var response = await http.PostAsync(new Uri("/v1/events/batch", UriKind.Relative), new StringContent($$"""{"events":[{{events}}]}""", System.Text.Encoding.UTF8, "application/json"));
            if (response.StatusCode == System.Net.HttpStatusCode.TooManyRequests)
            {
                refused = response;
            }
            else
            {
                response.Dispose();
            }
        }

        using (refused)
        {
            Assert.NotNull(refused);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
            Assert.True(refused.Headers.RetryAfter.Delta >= TimeSpan.FromSeconds(1));
        }
    }

    // A JSON body sent without a Content-Length (chunked).
    private sealed class UndeclaredLength : HttpContent
    {
        private readonly string _json;

        public UndeclaredLength(string json)
        {
            _json = json;
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        }

        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(_json)).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task A_caller_streaming_faster_than_its_rate_is_resource_exhausted()
    {
        using var factory = SmallLimits();
        using var channel = GrpcTestFixture.CreateChannel(factory);
        using var call = new ProfileService.ProfileServiceClient(channel).StreamEvents();
        var now = DateTimeOffset.UtcNow;
        var results = 0;
        var reader = Task.Run(async () =>
        {
            await foreach (var _ in call.ResponseStream.ReadAllAsync())
            {
                results++;
            }
        });
        try
        {
            for (var i = 0; i < 200; i++)
            {
                await call.RequestStream.WriteAsync(new StreamEventsRequest { Event = IngestionEvent($"rate-{i}", now) });
            }

            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // the server ended the call while we were still writing
        }

        var ex = await Assert.ThrowsAsync<RpcException>(() => reader);
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("per second per API key", ex.Status.Detail, StringComparison.Ordinal);
        Assert.InRange(results, 1, 199);
    }

    [Fact]
    public async Task A_batch_message_counts_each_of_its_events_against_the_ingestion_rate()
    {
        using var factory = SmallLimits(); // 20 events per second, a burst of 20
        using var channel = GrpcTestFixture.CreateChannel(factory);
        using var call = new ProfileService.ProfileServiceClient(channel).StreamEvents();
        var now = DateTimeOffset.UtcNow;
        var batch = new StreamEventsRequest();
        for (var i = 0; i < 20; i++)
        {
            batch.Events.Add(IngestionEvent($"rate-batch-{i}", now));
        }

        var sending = Stopwatch.StartNew();
        await call.RequestStream.WriteAsync(batch);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(20, call.ResponseStream.Current.Results.Count);

        // The same 20 again, up to ten times back to back: refused long before the last, and each one accepted before
        // that needed 20 tokens of refill, one every 50 ms (a machine stalling between two writes accepts more of them; a
        // limiter counting messages, or fewer than all the events of a message, accepts them sooner).
        var accepted = 0;
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                await call.RequestStream.WriteAsync(batch);
                Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
                accepted++;
            }
        });
        // The test host resets a request its application completed while the request body was still open (error code 8),
        // and under load that reset can reach the client before the refusal's trailers: nothing else ends this call early.
        Assert.Contains(ex.StatusCode, new[] { StatusCode.ResourceExhausted, StatusCode.Cancelled });
        Assert.True(accepted * 20 <= (int)(sending.Elapsed.TotalSeconds * 20) + 1, $"{accepted} more batches of 20 accepted within {sending.Elapsed}");
    }

    private static WebApplicationFactory<Program> SmallLimits() =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.UseSetting("Segmentation:Limits:MaxRequestBytes", "16384");
            b.UseSetting("Segmentation:Limits:StreamEventsPerSecond", "20");
        });

    private static Event IngestionEvent(string id, DateTimeOffset at) => new()
    {
        EventId = id,
        Type = "page_view",
        UserId = "auth-test-user",
        Timestamp = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(at),
        Context = new EventContext { Source = "test", Device = "desktop", SessionId = "s1", PageType = "home" },
    };

    private static async Task Call(Grpc.Net.Client.GrpcChannel channel, string call)
    {
        switch (call)
        {
            case "decision":
                await new DecisionService.DecisionServiceClient(channel).DecideAsync(Decide);
                break;
            case "echo":
                await new DiagnosticsService.DiagnosticsServiceClient(channel).EchoAsync(new EchoRequest());
                break;
            case "track":
                await new ProfileService.ProfileServiceClient(channel).TrackEventAsync(new TrackEventRequest { Event = IngestionEvent(Guid.NewGuid().ToString("N"), DateTimeOffset.UtcNow) });
                break;
            case "stream":
                using (var stream = new ProfileService.ProfileServiceClient(channel).StreamEvents())
                {
                    try
                    {
                        await stream.RequestStream.WriteAsync(new StreamEventsRequest { Event = IngestionEvent(Guid.NewGuid().ToString("N"), DateTimeOffset.UtcNow) });
                        await stream.RequestStream.CompleteAsync();
                    }
                    catch (RpcException)
                    {
                        // The service may refuse the call before the write is done: the write then fails as the request
                        // stream is torn down (CANCELLED, seen once in CI); the response says why (read below), as a client
                        // such as segctl reads it.
                    }

                    await foreach (var _ in stream.ResponseStream.ReadAllAsync())
                    {
                    }
                }

                break;
            case "profile":
                await new ProfileService.ProfileServiceClient(channel).GetProfileAsync(new GetProfileRequest { UserId = "12347" });
                break;
            case "catalog":
                await new CatalogService.CatalogServiceClient(channel).GetCatalogAsync(new GetCatalogRequest());
                break;
            case "publish":
                await new CatalogService.CatalogServiceClient(channel).PublishCatalogAsync(new PublishCatalogRequest());
                break;
            case "counts":
                Assert.NotEmpty((await new CatalogService.CatalogServiceClient(channel).ListSegmentsAsync(new ListSegmentsRequest())).Segments);
                break;
            case "kpis":
                await new InsightsService.InsightsServiceClient(channel).GetKpisAsync(new GetKpisRequest());
                break;
            case "experiments":
                await new ExperimentService.ExperimentServiceClient(channel).ListExperimentsAsync(new ListExperimentsRequest());
                break;
            case "forget":
                await new PrivacyService.PrivacyServiceClient(channel).ForgetUserAsync(new ForgetUserRequest { UserId = "no-such-user-for-scope-test" });
                break;
            case "members":
                await new CatalogService.CatalogServiceClient(channel).ListSegmentMembersAsync(new ListSegmentMembersRequest { SegmentId = "champions" });
                break;
            case "watch":
                // The demo import put entries in the stream: from the oldest, the first arrives at once.
                using (var watch = new CatalogService.CatalogServiceClient(channel).WatchSegmentChanges(new WatchSegmentChangesRequest { FromOldest = true }, deadline: DateTime.UtcNow.AddSeconds(30)))
                {
                    Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
                    Assert.True(watch.ResponseStream.Current.Offset > 0);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(call), call, null);
        }
    }
}
