using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Server.Security;

namespace Segmentation.Server.Tests;

/// <summary>The load tests' baselines: Echo and EchoStream do no work, but they answer as documented.</summary>
public sealed class DiagnosticsServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private static CallOptions Within30Seconds => new(deadline: DateTime.UtcNow.AddSeconds(30));

    [Fact]
    public async Task EchoStream_answers_every_message_in_order_with_the_bytes_it_asks_for()
    {
        var sizes = new uint[] { 0, 3, 3, 100, 0, 40, 1, 65_536 };
        // A key with the ingest scope only: the one the method requires.
        using var call = new DiagnosticsService.DiagnosticsServiceClient(fixture.CreateChannel(GrpcTestFixture.IngestKey)).EchoStream(Within30Seconds);
        foreach (var size in sizes)
        {
            await call.RequestStream.WriteAsync(new EchoStreamRequest { Payload = Google.Protobuf.ByteString.CopyFromUtf8("ignored"), ResponseBytes = size });
        }

        await call.RequestStream.CompleteAsync();
        var answers = new List<byte[]>();
        await foreach (var response in call.ResponseStream.ReadAllAsync())
        {
            answers.Add(response.Payload.ToByteArray());
        }

        Assert.Equal(sizes.Select(s => (int)s), answers.Select(a => a.Length));
        Assert.All(answers, a => Assert.All(a, b => Assert.Equal(0, b)));
    }

    [Fact]
    public async Task Echo_answers_its_payload_or_the_bytes_it_asks_for_and_refuses_more_than_64_KiB()
    {
        var client = new DiagnosticsService.DiagnosticsServiceClient(fixture.Channel);
        var payload = Google.Protobuf.ByteString.CopyFromUtf8("echo me");

        Assert.Equal(payload, (await client.EchoAsync(new EchoRequest { Payload = payload }, Within30Seconds)).Payload);
        var sized = (await client.EchoAsync(new EchoRequest { Payload = payload, ResponseBytes = 900 }, Within30Seconds)).Payload;
        Assert.Equal(900, sized.Length);
        Assert.All(sized, b => Assert.Equal(0, b));

        var ex = await Assert.ThrowsAsync<RpcException>(async () => await client.EchoAsync(new EchoRequest { ResponseBytes = 65_537 }, Within30Seconds));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal("response_bytes", Assert.Single(ex.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations).Field);
    }

    [Fact]
    public async Task EchoStream_refuses_more_than_64_KiB_after_answering_the_messages_before_it()
    {
        using var call = new DiagnosticsService.DiagnosticsServiceClient(fixture.Channel).EchoStream(Within30Seconds);
        await call.RequestStream.WriteAsync(new EchoStreamRequest { ResponseBytes = 8 });
        try
        {
            await call.RequestStream.WriteAsync(new EchoStreamRequest { ResponseBytes = 65_537 });
        }
        catch (RpcException)
        {
            // The server may end the call before the client's write reports done: the call's status, read below, counts.
        }

        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(8, call.ResponseStream.Current.Payload.Length);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        var violation = Assert.Single(ex.GetRpcStatus()!.GetDetail<BadRequest>().FieldViolations);
        Assert.Equal("response_bytes", violation.Field);
        Assert.Contains("65536", violation.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EchoStream_requires_the_ingest_scope_like_the_stream_it_is_the_baseline_of()
    {
        Assert.Equal(ApiScope.Ingest, MethodScopes.Required("/segmentation.v1.DiagnosticsService/EchoStream"));
        using var call = new DiagnosticsService.DiagnosticsServiceClient(fixture.CreateChannel(GrpcTestFixture.DecideKey)).EchoStream(Within30Seconds);
        await call.RequestStream.WriteAsync(new EchoStreamRequest { ResponseBytes = 1 }).ContinueWith(static _ => { }, TaskScheduler.Default);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
    }
}
