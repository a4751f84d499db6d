using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Segmentation.Contracts.V1;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Server.Tests;

/// <summary>Errors nobody expected are logged, but a caller that keeps triggering one cannot flood the log.</summary>
/// <remarks>
/// Run alone: its host, started and disposed inside the test with a replaced store, shares the service's meters by
/// name with the other hosts of this process, and while it stops the telemetry test's scrapes miss their gauges.
/// </remarks>
[Collection(Alone.Name)]
public sealed class ErrorLogLimitTests
{
    private const string Category = "Segmentation.Server.Interceptors.ErrorMappingInterceptor";

    [Fact]
    public async Task An_unexpected_error_repeated_by_many_calls_is_logged_five_times_a_minute()
    {
        // Regression: the limit lived in the interceptor, which the host created anew for every call, so every
        // failing call was logged (and every call, failing or not, built a limiter).
        var logs = new CapturedLogs();
        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            GrpcTestFixture.ConfigureTestHost(b);
            b.UseSetting("Segmentation:DemoData", "false");
            b.ConfigureTestServices(services =>
            {
                services.AddSingleton<ILoggerProvider>(logs);
                services.AddSingleton<IProfileStore>(sp => new FailingReads(sp.GetRequiredService<InMemoryProfileStore>()));
            });
        });
        var client = new DecisionService.DecisionServiceClient(GrpcTestFixture.CreateChannel(factory));

        for (var i = 0; i < 12; i++)
        {
            var ex = await Assert.ThrowsAsync<RpcException>(async () => await client.DecideAsync(new DecideRequest { UserId = FailingReads.User }));
            Assert.Equal(StatusCode.Internal, ex.StatusCode);
            Assert.Equal("internal error; see server logs", ex.Status.Detail);
        }

        Assert.NotNull((await client.DecideAsync(new DecideRequest { UserId = "someone-else" })).Decision.Segment); // only that user's reads fail
        var errors = logs.Entries.Where(e => e.Category == Category && e.Level == LogLevel.Error).ToList();
        Assert.Equal(5, errors.Count);
        Assert.All(errors, e => Assert.Contains(nameof(InvalidOperationException), e.Message, StringComparison.Ordinal));

        // Regression: the limit was kept per path as the caller spelled it; routing ignores case, so each spelling of
        // Decide had five more entries a minute (and a limiter entry kept for good).
        var invoker = GrpcTestFixture.CreateChannel(factory).CreateCallInvoker();
        var marshaller = (Request: Marshallers.Create<DecideRequest>(r => r.ToByteArray(), DecideRequest.Parser.ParseFrom), Response: Marshallers.Create<DecideResponse>(r => r.ToByteArray(), DecideResponse.Parser.ParseFrom));
        foreach (var (service, name) in new[] { ("segmentation.v1.decisionservice", "decide"), ("segmentation.v1.DECISIONSERVICE", "Decide"), ("segmentation.v1.DecisionService", "DECIDE"), ("Segmentation.v1.decisionService", "dEcide") })
        {
            var spelled = new Method<DecideRequest, DecideResponse>(MethodType.Unary, service, name, marshaller.Request, marshaller.Response);
            var ex = await Assert.ThrowsAsync<RpcException>(async () => await invoker.AsyncUnaryCall(spelled, null, new CallOptions(), new DecideRequest { UserId = FailingReads.User }));
            Assert.Equal(StatusCode.Internal, ex.StatusCode); // routed to Decide
        }

        Assert.Equal(5, logs.Entries.Count(e => e.Category == Category && e.Level == LogLevel.Error));
    }

    // A store whose reads of one user fail as no code path expects.
    private sealed class FailingReads(IProfileStore inner) : DelegatingProfileStore(inner)
    {
        public const string User = "fails-on-read";

        public override Core.Profiles.Profile? Get(string key) => key == User ? throw new InvalidOperationException("a read that fails") : base.Get(key);
    }
}

/// <summary>Test classes that must not run beside any other (xUnit runs such a collection after the parallel ones).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Alone
{
    public const string Name = "alone";
}
