using System.Text.Json;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Privacy;
using StackExchange.Redis;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Takes an erased user's entries off the Redis consumer's dead-letter stream: they hold the events as sent, user ids
/// included, and the service wrote them. Each dead letter whose event names one of the erased ids (under a key of an id —
/// user_id, anonymous_id, customer_id however written — at any depth, a string or a number, also in JSON sent as a
/// string; in a payload that is not JSON, the id as a JSON string anywhere in it) is deleted. Does
/// nothing when the consumer is off. Redis unreachable is an <see cref="IOException"/>: the erasure is then unfinished
/// and the caller retries it.
/// </summary>
internal sealed class RedisDeadLetterEraser(IOptions<RedisIngestionOptions> options, ILogger<RedisDeadLetterEraser> logger) : IErasureParticipant
{
    private const int Page = 500;

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <inheritdoc />
    public async Task EraseAsync(IReadOnlySet<string> ids, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!settings.Enabled || ids.Count == 0)
        {
            return;
        }

        try
        {
            var configuration = ConfigurationOptions.Parse(settings.Configuration);
            configuration.AbortOnConnectFail = true;
            await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
            var db = redis.GetDatabase();
            var deleted = await EraseAsync(db, settings.DeadLetter, ids, cancellationToken);
            logger.LogInformation("An erasure deleted {Count} dead letters from {DeadLetter}", deleted, settings.DeadLetter);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException) // a command timing out is a TimeoutException, not a RedisException
        {
            logger.LogWarning(ex, "An erasure could not reach the dead-letter stream {DeadLetter}", settings.DeadLetter);
            throw new IOException($"the Redis dead-letter stream could not be cleaned ({ex.GetType().Name})", ex);
        }
    }

    /// <summary>Walks the stream a page at a time and deletes the entries of <paramref name="ids"/>; returns how many.</summary>
    internal static async Task<long> EraseAsync(IDatabase db, string stream, IReadOnlySet<string> ids, CancellationToken cancellationToken)
    {
        long deleted = 0;
        RedisValue from = "-";
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var page = await db.StreamRangeAsync(stream, from, "+", Page);
            var after = from == "-" ? page : [.. page.Where(e => e.Id != from)]; // the range is inclusive of where it starts
            var doomed = after.Where(e => Names(e["event"], ids)).Select(e => e.Id).ToArray();
            if (doomed.Length > 0)
            {
                deleted += await db.StreamDeleteAsync(stream, doomed);
            }

            if (page.Length < Page)
            {
                return deleted;
            }

            from = page[^1].Id;
        }
    }

    // True when the dead letter's event names one of the ids: under a key of an id (user_id, anonymous_id, customer_id
    // however written: userID, anonymousId) at any depth, a string or a number (a numeric id is why many were refused;
    // 12923.0 names 12923), also inside JSON sent as a string; in a payload that is not JSON, as a JSON string anywhere
    // in it. An id equal to another field's value (a product id, a quantity) names no one.
    internal static bool Names(RedisValue payload, IReadOnlySet<string> ids)
    {
        if (payload.IsNullOrEmpty)
        {
            return false;
        }

        var text = (string)payload!;
        return Parse(text) is { } json ? Mentions(json, ids, underIdKey: false, encodedLevels: 2) : Quotes(text, ids);
    }

    private static JsonElement? Parse(string text)
    {
        try
        {
            using var json = JsonDocument.Parse(text);
            return json.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null; // not JSON (why it was dead-lettered)
        }
    }

    private static bool Mentions(JsonElement element, IReadOnlySet<string> ids, bool underIdKey, int encodedLevels)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var field in element.EnumerateObject())
                {
                    if (Mentions(field.Value, ids, IsIdKey(field.Name), encodedLevels))
                    {
                        return true;
                    }
                }

                return false;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    if (Mentions(item, ids, underIdKey, encodedLevels))
                    {
                        return true;
                    }
                }

                return false;
            case JsonValueKind.String:
                var value = element.GetString()!;
                return (underIdKey && ids.Contains(value))
                    || (encodedLevels > 0 && value.TrimStart() is ['{' or '[' or '"', ..] && (Parse(value) is { } inner ? Mentions(inner, ids, underIdKey, encodedLevels - 1) : Quotes(value, ids)));
            case JsonValueKind.Number:
                return underIdKey && (ids.Contains(element.GetRawText()) || (element.TryGetDecimal(out var number) && ids.Any(id => decimal.TryParse(id, System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out var n) && n == number)));
            default:
                return false;
        }
    }

    // user_id, userId, UserID, anonymous_id, anonymousId, customer_id ...: the key's letters, case aside.
    private static bool IsIdKey(string key)
    {
        Span<char> letters = stackalloc char[Math.Min(key.Length, 64)];
        var n = 0;
        foreach (var c in key.AsSpan(0, Math.Min(key.Length, 64)))
        {
            if (char.IsAsciiLetter(c))
            {
                letters[n++] = char.ToLowerInvariant(c);
            }
        }

        return letters[..n] is "userid" or "anonymousid" or "customerid";
    }

    // The id as a JSON string: as sent, or as JSON writers escape it (+, <, non-ASCII: "jos\u00E9").
    private static bool Quotes(string text, IReadOnlySet<string> ids) =>
        ids.Any(id => text.Contains('"' + id + '"', StringComparison.Ordinal)
            || text.Contains(JsonSerializer.Serialize(id), StringComparison.Ordinal)
            || text.Contains(JsonSerializer.Serialize(id, Relaxed), StringComparison.Ordinal));
}
