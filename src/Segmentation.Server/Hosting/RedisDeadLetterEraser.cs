using System.Text.Json;
using Microsoft.Extensions.Options;
using Segmentation.Core.Application.Privacy;
using StackExchange.Redis;

namespace Segmentation.Server.Hosting;

/// <summary>
/// Takes an erased user's entries off the Redis consumer's dead-letter stream: they hold the events as sent, user ids
/// included, and the service wrote them. Each dead letter whose event names one of the erased ids (its <c>user_id</c>
/// or <c>anonymous_id</c>; in a payload that is not JSON, the id as a JSON string anywhere in it) is deleted. Does
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

    // True when the dead letter's event names one of the ids.
    internal static bool Names(RedisValue payload, IReadOnlySet<string> ids)
    {
        if (payload.IsNullOrEmpty)
        {
            return false;
        }

        var text = (string)payload!;
        try
        {
            using var json = JsonDocument.Parse(text);
            if (json.RootElement.ValueKind == JsonValueKind.Object)
            {
                foreach (var field in json.RootElement.EnumerateObject())
                {
                    if (field.Name is "user_id" or "userId" or "anonymous_id" or "anonymousId"
                        && field.Value.ValueKind == JsonValueKind.String && ids.Contains(field.Value.GetString()!))
                    {
                        return true;
                    }
                }

                return false;
            }
        }
        catch (JsonException)
        {
            // Not JSON (why it was dead-lettered): look for the id as a JSON string anywhere in it.
        }

        // As sent, or as JSON writers escape it (+, <, non-ASCII: "jos\u00E9").
        return ids.Any(id => text.Contains('"' + id + '"', StringComparison.Ordinal)
            || text.Contains(JsonSerializer.Serialize(id), StringComparison.Ordinal)
            || text.Contains(JsonSerializer.Serialize(id, Relaxed), StringComparison.Ordinal));
    }
}
