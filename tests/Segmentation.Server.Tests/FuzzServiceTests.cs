using CsCheck;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;

namespace Segmentation.Server.Tests;

/// <summary>
/// Random and malformed requests through the in-memory server: every call ends OK, INVALID_ARGUMENT
/// with a <c>google.rpc.BadRequest</c> naming a field, or another documented code (NOT_FOUND,
/// FAILED_PRECONDITION) — never UNKNOWN or INTERNAL. Set <c>CsCheck_Iter</c> for more iterations and
/// <c>CsCheck_Seed</c> to replay a failure.
/// </summary>
public sealed class FuzzServiceTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private DecisionService.DecisionServiceClient Decisions => new(fixture.Channel);

    private ProfileService.ProfileServiceClient Profiles => new(fixture.Channel);

    private CatalogService.CatalogServiceClient Catalog => new(fixture.Channel);

    private static long Iter(long ci) => Environment.GetEnvironmentVariable("CsCheck_Iter") is { Length: > 0 } ? Check.Iter : ci;

    private static readonly Gen<string> Text = Gen.Frequency(
        (4, Gen.OneOf("", "web", "mobile", "product", "home", "12347", "fz-user", "s1", "GB", "purchase", "page_view", "custom.quiz", "o-1", "preferred_category", "vip", "interests", "company_size")),
        (3, Gen.String[Gen.Char.AlphaNumeric, 0, 16]),
        (2, Gen.String[Gen.Char, 0, 30]),
        (1, Gen.Int[100, 5000].Select(n => new string('z', n))));

    private static readonly Gen<Timestamp?> Time = Gen.Frequency(
        (2, Gen.Const((Timestamp?)null)),
        (4, Gen.Long[-86_400L * 700, 200].Select(s => (Timestamp?)Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddSeconds(s)))),
        (2, Gen.Select(Gen.Long, Gen.Int).Select((s, n) => (Timestamp?)new Timestamp { Seconds = s, Nanos = n })),
        (1, Gen.OneOf(-62_135_596_800L, -62_135_596_801L, 0L, 253_402_300_799L, 253_402_300_800L, long.MaxValue, long.MinValue).Select(s => (Timestamp?)new Timestamp { Seconds = s })));

    private static readonly Gen<double> Amount = Gen.Frequency((4, Gen.Double[0, 1000]), (1, Gen.OneOf(-1d, double.NaN, double.PositiveInfinity, double.MaxValue, 1e12, 1e13)), (1, Gen.Double));

    private static readonly Gen<AttributeValue> Value = Gen.OneOf(
        Text.Select(s => new AttributeValue { StringValue = s }),
        Amount.Select(d => new AttributeValue { NumberValue = d }),
        Gen.Bool.Select(b => new AttributeValue { BoolValue = b }),
        Time.Select(t => t is null ? new AttributeValue() : new AttributeValue { TimestampValue = t }),
        Text.Array[0, 5].Select(l => new AttributeValue { StringListValue = new StringList { Values = { l } } }));

    private static readonly Gen<Event> Event =
        Gen.Select(
            Gen.Select(Text, Gen.Frequency((3, Gen.OneOf("page_view", "purchase", "add_to_cart", "refund", "email_open")), (1, Text)), Text, Text, Time),
            Gen.Select(Text, Text, Text, Text, Text),
            Gen.Select(Amount, Text, Gen.Select(Text, Text, Gen.Int, Amount).Array[0, 3], Gen.Dictionary(Text, Value)[0, 4]),
            (ids, ctx, payload) =>
            {
                var e = new Event
                {
                    EventId = ids.Item1,
                    Type = ids.Item2,
                    UserId = ids.Item3,
                    AnonymousId = ids.Item4,
                    Timestamp = ids.Item5,
                    Context = new Contracts.V1.EventContext { Source = ctx.Item1, Device = ctx.Item2, SessionId = ctx.Item3, PageType = ctx.Item4, Country = ctx.Item5 },
                    Value = payload.Item1,
                    OrderId = payload.Item2,
                };
                e.Lines.AddRange(payload.Item3.Select(l => new OrderLine { ProductId = l.Item1, Category = l.Item2, Quantity = l.Item3, UnitPrice = l.Item4 }));
                e.Properties.Add(payload.Item4);
                return e;
            });

    private static readonly Gen<DecideRequest> Decide =
        Gen.Select(Gen.Select(Text, Text, Time, Gen.Bool, Gen.Int[-1, 6]), Gen.Select(Text, Text, Text, Text, Text))
            .Select((r, c) => new DecideRequest
            {
                UserId = r.Item1,
                AnonymousId = r.Item2,
                Timestamp = r.Item3,
                Explain = r.Item4,
                Channel = (Channel)r.Item5,
                Context = new Contracts.V1.RequestContext { Device = c.Item1, Country = c.Item2, PageType = c.Item3, Referrer = c.Item4, SearchQuery = c.Item5 },
            });

    private static readonly Gen<SetTraitsRequest> Traits =
        Gen.Select(Text, Gen.Dictionary(Text, Value)[0, 5], Text, Gen.Int[-1, 5], Time)
            .Select((user, traits, source, layer, at) =>
            {
                var r = new SetTraitsRequest { UserId = user, Source = source, Layer = (DataLayer)layer, Timestamp = at };
                r.Traits.Add(traits);
                return r;
            });

    private static readonly Gen<ValidateCatalogRequest> Validate =
        Gen.Select(Text, Gen.Frequency((2, Text), (1, Gen.OneOf("segments:\n  - id: x\n    rule: { field: orders.count, gt: [1e999] }", "catalog: {fallback: nope}", "segments: [*a]", "{{", "segments:\n - &a { id: a, rule: *a }")))).Array[0, 3]
            .Select(files =>
            {
                var r = new ValidateCatalogRequest();
                r.Files.AddRange(files.Select(f => new Contracts.V1.CatalogFile { Name = f.Item1, Content = f.Item2 }));
                return r;
            });

    [Fact]
    public async Task Random_requests_end_OK_or_with_a_documented_error()
    {
        await Gen.OneOf<Func<Task>>(
                Decide.Select<DecideRequest, Func<Task>>(r => async () => await Decisions.DecideAsync(r)),
                Event.Select<Event, Func<Task>>(e => async () => await Profiles.TrackEventAsync(new TrackEventRequest { Event = e })),
                Event.Array[0, 5].Select<Event[], Func<Task>>(e => async () =>
                {
                    var response = await Profiles.TrackEventsAsync(new TrackEventsRequest { Events = { e } });
                    Assert.Equal(e.Length, response.Results.Count);
                    Assert.All(response.Results.Where(r => r.Status == EventStatus.Rejected), r => Assert.NotEmpty(r.Violations));
                }),
                Traits.Select<SetTraitsRequest, Func<Task>>(r => async () => await Profiles.SetTraitsAsync(r)),
                Gen.Select(Text, Text).Select<(string, string), Func<Task>>(ids => async () => await Profiles.IdentifyAsync(new IdentifyRequest { AnonymousId = "fz-" + ids.Item1, UserId = ids.Item2 })),
                Text.Select<string, Func<Task>>(user => async () => await Profiles.GetProfileAsync(new GetProfileRequest { UserId = user })),
                Validate.Select<ValidateCatalogRequest, Func<Task>>(r => async () => await Catalog.ValidateCatalogAsync(r)))
            .SampleAsync(EndsWithADocumentedStatus, iter: Iter(250), threads: 1);
    }

    private static async Task EndsWithADocumentedStatus(Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument)
        {
            var badRequest = ex.GetRpcStatus()?.GetDetail<BadRequest>();
            Assert.NotNull(badRequest);
            Assert.NotEmpty(badRequest.FieldViolations);
            Assert.All(badRequest.FieldViolations, v => Assert.False(string.IsNullOrEmpty(v.Field)));
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.NotFound or StatusCode.FailedPrecondition)
        {
            Assert.DoesNotContain("Exception", ex.Status.Detail, StringComparison.Ordinal);
        }
    }
}
