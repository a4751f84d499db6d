using System.Net;
using System.Text;
using System.Text.Json;
using CsCheck;

namespace Segmentation.Server.Tests;

/// <summary>
/// An HTTP/JSON body or query string that does not fit its message (a number where the contract has a string, an enum
/// name it does not have, a time that is not RFC 3339, JSON that is not well formed, a page size of "abc") is refused
/// naming the field, as the gRPC API's validation does. JSON transcoding alone answered "Request JSON payload is not
/// correctly formatted.", "Error converting value…" or "The input string 'abc' was not in a correct format." with no
/// field and no details.
/// </summary>
public sealed class HttpJsonInputErrorTests(GrpcTestFixture fixture) : IClassFixture<GrpcTestFixture>
{
    private const string GoodEvent = """{"eventId":"json-ok-1","type":"page_view","userId":"json-user","timestamp":"2026-12-01T10:00:00Z","context":{"source":"web","device":"mobile","sessionId":"s1","pageType":"home"}}""";

    private async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json)
    {
        using var http = fixture.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        using var response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Theory]
    [InlineData("/v1/decide", """{"userId":12347}""", "user_id", "expected a string, got the number 12347")]
    [InlineData("/v1/decide", """{"userId":"12347","explain":"yes"}""", "explain", "expected true or false, got the string 'yes'")]
    [InlineData("/v1/decide", """{"userId":"12347","channel":"CHANNEL_FAX"}""", "channel", "'CHANNEL_FAX' is not a value of Channel: use one of CHANNEL_UNSPECIFIED, CHANNEL_WEB")]
    [InlineData("/v1/decide", """{"userId":"12347","context":"home"}""", "context", "expected a JSON object (a RequestContext), got the string 'home'")]
    [InlineData("/v1/decide", """{"user_id":"12347","context":{"page_type":["home"]}}""", "context.page_type", "expected a string, got an array")]
    [InlineData("/v1/events", """{"event":{"eventId":"e1","type":"page_view","userId":"u1","timestamp":"yesterday"}}""", "event.timestamp", "expected an RFC 3339 time such as 2026-12-04T09:30:00Z, got 'yesterday'")]
    [InlineData("/v1/events/batch", """{"events":[""" + GoodEvent + """,{"eventId":"e2","context":{"device":5}}]}""", "events[1].context.device", "expected a string, got the number 5")]
    [InlineData("/v1/events/batch", """{"events":{"eventId":"e1"}}""", "events", "expected a JSON array, got an object")]
    [InlineData("/v1/events/batch", """{"events":[{"eventId":"e1","lines":[{"productId":"p1","quantity":"lots"}]}]}""", "events[0].lines[0].quantity", "expected a whole number, got the string 'lots'")]
    [InlineData("/v1/decide", """{"userId":"\ud800abc"}""", "user_id", "the string is not valid text")]
    [InlineData("/v1/decide", """{"userId":"json-user","events":[""" + GoodEvent + """,{"eventId":"e2","value":"ten"}]}""", "events[1].value", "expected a number (in quotes only NaN, Infinity or -Infinity), got the string 'ten'")]
    [InlineData("/v1/events", """{"event":{"eventId":"e1","type":"purchase","value":"12.50"}}""", "event.value", "expected a number (in quotes only NaN, Infinity or -Infinity), got the string '12.50'")]
    [InlineData("/v1/users/json-user/traits", """{"traits":{"plan":{"numberValue":true}}}""", "traits[plan].number_value", "expected a number, got true")]
    public async Task A_body_that_does_not_fit_its_message_is_refused_naming_the_field(string path, string json, string field, string description)
    {
        var (status, body) = await Post(path, json);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(3, body.GetProperty("code").GetInt32());
        var violation = Assert.Single(Assert.Single(body.GetProperty("details").EnumerateArray()).GetProperty("fieldViolations").EnumerateArray());
        Assert.Equal(field, violation.GetProperty("field").GetString());
        Assert.StartsWith(description, violation.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.StartsWith($"{field}: {description}", body.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_decide_over_http_json_records_the_events_it_carries_and_reports_each()
    {
        var user = "json-" + Guid.NewGuid().ToString("N");
        var view = GoodEvent.Replace("json-ok-1", "json-view-1", StringComparison.Ordinal).Replace("\"userId\":\"json-user\",", "", StringComparison.Ordinal);
        var (status, body) = await Post("/v1/decide", $$"""{"userId":"{{user}}","events":[{{view}},{{view}}]}""");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(string.IsNullOrEmpty(body.GetProperty("decision").GetProperty("decisionId").GetString()));
        var results = body.GetProperty("eventResults").EnumerateArray().ToList();
        Assert.Equal(["EVENT_STATUS_ACCEPTED", "EVENT_STATUS_DUPLICATE"], results.Select(r => r.GetProperty("status").GetString()));
        Assert.All(results, r => Assert.Equal(user, r.GetProperty("userId").GetString()));
    }

    [Fact]
    public async Task The_field_is_named_when_it_comes_after_more_than_transcoding_reads_at_once()
    {
        // 300 good events (~90 KB) before the bad one: transcoding stops reading at the problem, the rest is read to find it.
        var events = string.Join(",", Enumerable.Range(0, 300).Select(i => GoodEvent.Replace("json-ok-1", $"json-ok-{i}", StringComparison.Ordinal)));
        var (status, body) = await Post("/v1/events/batch", $$"""{"events":[{{events}},{"eventId":"late","timestamp":17}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var violation = body.GetProperty("details")[0].GetProperty("fieldViolations")[0];
        Assert.Equal("events[300].timestamp", violation.GetProperty("field").GetString());
        Assert.StartsWith("expected an RFC 3339 time", violation.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/kpis?groupBy=FOO", "group_by", "'FOO' is not a value of KpiDimension: use one of KPI_DIMENSION_UNSPECIFIED")]
    [InlineData("/v1/kpis?start=yesterday", "start", "expected an RFC 3339 time such as 2026-12-04T09:30:00Z, got 'yesterday'")]
    [InlineData("/v1/kpis?includeSeries=maybe", "include_series", "expected true or false, got 'maybe'")]
    [InlineData("/v1/segments/champions/members?pageSize=abc", "page_size", "expected a whole number, got 'abc'")]
    [InlineData("/v1/audit-entries?page_size=1.5", "page_size", "expected a whole number, got '1.5'")]
    public async Task A_query_parameter_that_does_not_parse_is_refused_naming_the_field(string pathAndQuery, string field, string description)
    {
        using var http = fixture.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        using var response = await http.GetAsync(pathAndQuery);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var violation = Assert.Single(body.RootElement.GetProperty("details")[0].GetProperty("fieldViolations").EnumerateArray());
        Assert.Equal(field, violation.GetProperty("field").GetString());
        Assert.StartsWith(description, violation.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"userId":"12347",}""", "the request body is not valid JSON (line 1, byte 19): The JSON object contains a trailing comma")]
    [InlineData("""{"userId":"12347" "explain":true}""", "the request body is not valid JSON (line 1, byte 19)")]
    [InlineData("""[{"userId":"12347"}]""", "the request body must be a JSON object, not an array")]
    [InlineData("", "the request body is empty: send a JSON object")]
    [InlineData("""{"\ud800":5,"userId":5}""", "a property name is not valid text")] // was an unhandled exception (500) of the finder itself
    public async Task A_body_that_is_not_a_json_object_says_where_and_why(string json, string message)
    {
        var (status, body) = await Post("/v1/decide", json);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(3, body.GetProperty("code").GetInt32());
        Assert.StartsWith(message, body.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("reader options", body.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(!body.TryGetProperty("details", out var details) || details.GetArrayLength() == 0); // no field to name
    }

    [Fact]
    public async Task Bytes_that_are_not_utf8_in_a_string_name_its_field()
    {
        using var http = fixture.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        using var content = new ByteArrayContent([.. "{\"userId\":\""u8, 0xFF, 0xFE, .. "\"}"u8]);
        content.Headers.ContentType = new("application/json");
        using var response = await http.PostAsync("/v1/decide", content);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var violation = body.RootElement.GetProperty("details")[0].GetProperty("fieldViolations")[0];
        Assert.Equal("user_id", violation.GetProperty("field").GetString());
        Assert.StartsWith("the string is not valid text", violation.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    private static readonly (string Path, string Json)[] Seeds =
    [
        ("/v1/decide", """{"userId":"12347","channel":"CHANNEL_WEB","explain":false,"context":{"device":"mobile","country":"GB","pageType":"home"},"timestamp":"2026-12-01T10:00:00Z"}"""),
        ("/v1/events", "{\"event\":" + GoodEvent + "}"),
        ("/v1/events/batch", "{\"events\":[" + GoodEvent + "," + GoodEvent.Replace("json-ok-1", "json-ok-2", StringComparison.Ordinal) + "]}"),
        ("/v1/users/json-user/traits", """{"traits":{"plan":{"stringValue":"gold"},"age":{"numberValue":41},"tags":{"stringListValue":{"values":["a","b"]}}},"layer":"DATA_LAYER_ZERO_PARTY"}"""),
    ];

    private static readonly string[] Fragments = ["5", "-1.5", "1e400", "\"x\"", "true", "null", "[", "]", "{", "}", ",", ":", "\"\\ud800\"", "\"CHANNEL_FAX\"", "\"2026-13-45T00:00:00Z\"", "[1,{}]", "{\"a\":[]}", ""];

    // A seed body with a few characters replaced, dropped or cut short: most are refused by transcoding, some reach the service.
    private static readonly Gen<(string Path, string Json)> Mutated =
        Gen.Select(Gen.Int[0, Seeds.Length - 1], Gen.Select(Gen.Int[0, 3], Gen.Int[0, 10_000], Gen.Int[0, Fragments.Length - 1], Gen.Int[0, 20]).Array[1, 4])
            .Select((seed, edits) =>
            {
                var (path, json) = Seeds[seed];
                foreach (var (kind, at, fragment, length) in edits)
                {
                    var i = at % (json.Length + 1);
                    json = kind switch
                    {
                        0 => string.Concat(json.AsSpan(0, i), Fragments[fragment], json.AsSpan(Math.Min(json.Length, i + length))), // replace a stretch
                        1 => json.Insert(i, Fragments[fragment]),
                        2 => json.Remove(i, Math.Min(length, json.Length - i)),
                        _ => json[..i], // cut short
                    };
                }

                return (path, json);
            });

    [Fact]
    public async Task Random_damage_to_good_bodies_never_makes_a_server_error_and_every_refusal_is_a_status_with_named_fields()
    {
        using var http = fixture.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        await Mutated.SampleAsync(
            async body =>
            {
                using var response = await http.PostAsync(body.Path, new StringContent(body.Json, Encoding.UTF8, "application/json"));
                var text = await response.Content.ReadAsStringAsync();
                Assert.True((int)response.StatusCode < 500, $"{(int)response.StatusCode} for {body.Json}: {text}");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }

                using var status = JsonDocument.Parse(text);
                Assert.False(string.IsNullOrEmpty(status.RootElement.GetProperty("message").GetString()));
                var details = status.RootElement.TryGetProperty("details", out var listed) ? listed.EnumerateArray().ToList() : [];
                foreach (var detail in details)
                {
                    Assert.All(detail.GetProperty("fieldViolations").EnumerateArray(), v => Assert.False(string.IsNullOrEmpty(v.GetProperty("field").GetString())));
                }
            },
            iter: Environment.GetEnvironmentVariable("CsCheck_Iter") is { Length: > 0 } ? Check.Iter : 300,
            threads: 1);
    }

    [Fact]
    public async Task The_services_own_errors_and_good_bodies_pass_through_unchanged()
    {
        // Well-formed JSON the service itself refuses: its own field violations, untouched.
        var (status, body) = await Post("/v1/events", """{"event":{"eventId":"e1","type":"page_view","userId":"u1"}}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(body.GetProperty("details")[0].GetProperty("fieldViolations").EnumerateArray(), v => v.GetProperty("field").GetString() == "event.timestamp" && v.GetProperty("description").GetString() == "is required");

        // Unknown fields are ignored and quoted numbers accepted, as transcoding accepts them; the call succeeds.
        var (ok, decided) = await Post("/v1/decide", """{"userId":"12347","notAField":{"x":[1,2]},"context":{"pageType":"home"}}""");
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal("12347", decided.GetProperty("decision").GetProperty("userId").GetString());

        // A query parameter that is no field is ignored, as transcoding ignores it.
        using var http = fixture.CreateClient();
        http.DefaultRequestHeaders.Add("x-api-key", GrpcTestFixture.AllScopesKey);
        using var kpis = await http.GetAsync("/v1/kpis?from=yesterday&groupBy=KPI_DIMENSION_SEGMENT");
        Assert.Equal(HttpStatusCode.OK, kpis.StatusCode);
    }
}
