using Google.Protobuf;
using Microsoft.Extensions.Options;
using Segmentation.Contracts.V1;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Application.Telemetry;
using Segmentation.Server.Mapping;
using StackExchange.Redis;

namespace Segmentation.Server.Hosting;

/// <summary>Settings of <see cref="RedisStreamIngestion"/>, under <c>Segmentation:RedisIngestion</c>.</summary>
public sealed class RedisIngestionOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Segmentation:RedisIngestion";

    /// <summary>Whether the service consumes the stream (off by default).</summary>
    public bool Enabled { get; set; }

    /// <summary>StackExchange.Redis configuration string, for example <c>127.0.0.1:6379</c> or <c>redis:6379,password=...</c>.</summary>
    public string Configuration { get; set; } = "127.0.0.1:6379";

    /// <summary>The stream events are read from.</summary>
    public string Stream { get; set; } = "segmentation:events";

    /// <summary>The consumer group (created at the start of the stream when missing): one per serving node, since each node keeps its own profiles and a group deals each entry to one consumer.</summary>
    public string Group { get; set; } = "segmentation";

    /// <summary>This node's consumer name in the group; keep it stable across restarts so a restarted node finishes its own pending entries.</summary>
    public string Consumer { get; set; } = Environment.MachineName;

    /// <summary>Where rejected entries go with the reason; default the stream's name plus <c>:dead-letter</c>.</summary>
    public string DeadLetterStream { get; set; } = "";

    /// <summary>Entries read per round trip (1 to 1,000).</summary>
    public int BatchSize { get; set; } = 200;

    /// <summary>Wait before asking again when the stream had nothing new, in milliseconds.</summary>
    public int PollMilliseconds { get; set; } = 50;

    /// <summary>Entries another consumer read but has not acknowledged for this long are taken over (this node under an earlier name), in seconds.</summary>
    public int ClaimIdleSeconds { get; set; } = 60;

    /// <summary>Largest entry payload accepted, in bytes; a larger one is dead-lettered.</summary>
    public int MaxEntryBytes { get; set; } = 4 * 1024 * 1024; // what one TrackEvent may carry: every event the service accepts fits (a 500-line order of long names is hundreds of KB)

    /// <summary>
    /// Largest payload a dead letter keeps, in bytes; a larger one keeps only its size. The dead-letter stream is trimmed
    /// by count (<see cref="DeadLetterMaxLength"/>): this bounds its memory in Redis (at most their product, about 6.5 GB at
    /// the defaults), and what an erasure reads per page.
    /// </summary>
    public const int DeadLetterPayloadBytes = 64 * 1024;

    /// <summary>The dead-letter stream is trimmed to about this many entries.</summary>
    public int DeadLetterMaxLength { get; set; } = 100_000;


    internal string DeadLetter => DeadLetterStream.Length > 0 ? DeadLetterStream : Stream + ":dead-letter";

    internal IEnumerable<string> Problems()
    {
        if (!Enabled)
        {
            yield break;
        }

        if (string.IsNullOrWhiteSpace(Stream) || string.IsNullOrWhiteSpace(Group) || string.IsNullOrWhiteSpace(Consumer))
        {
            yield return "Stream, Group and Consumer must be set";
        }

        if (BatchSize is < 1 or > 1000)
        {
            yield return "BatchSize must be between 1 and 1000";
        }

        if (PollMilliseconds is < 1 or > 60_000 || ClaimIdleSeconds < 1 || MaxEntryBytes < 1024 || DeadLetterMaxLength < 1)
        {
            yield return "PollMilliseconds (1..60000), ClaimIdleSeconds (>= 1), MaxEntryBytes (>= 1024) and DeadLetterMaxLength (>= 1) must be in range";
        }

        if (DeadLetter == Stream)
        {
            yield return "DeadLetterStream must differ from Stream";
        }

        if (ConfigurationProblem() is { } problem)
        {
            // A misspelt keyword failed every connection for good: the consumer retried forever, and an erasure answered INTERNAL.
            yield return problem;
        }
    }

    private string? ConfigurationProblem()
    {
        try
        {
            ConfigurationOptions.Parse(Configuration ?? "");
            return null;
        }
        catch (ArgumentException ex)
        {
            return $"Configuration is not a StackExchange.Redis configuration string: {ex.Message}";
        }
    }
}

/// <summary>
/// Consumes events from a Redis stream, as shops feed events from Kafka or Kinesis: one consumer of a consumer
/// group reads entries whose <c>event</c> field is a <c>segmentation.v1.Event</c> in JSON, applies them through the
/// same validated, de-duplicated write path as <c>TrackEvents</c> (which returns once the change-log record is
/// fsynced), and only then acknowledges them (XACK). An entry that is not an event, or that the service rejects, is
/// added to the dead-letter stream with the reason and then acknowledged. After a crash the entries read but not
/// acknowledged are read again first; events already applied come back as duplicates by event id, so every entry
/// is applied exactly once. Entries another consumer left unacknowledged for <see cref="RedisIngestionOptions.ClaimIdleSeconds"/>
/// are claimed. Failures (Redis unreachable, a write that could not be made durable) leave entries unacknowledged
/// and are retried with backoff; health reports the job meanwhile.
/// </summary>
public sealed class RedisStreamIngestion(IOptions<RedisIngestionOptions> options, ProfileIngestion ingestion, ServiceHealth health, ILogger<RedisStreamIngestion> logger)
    : SupervisedBackgroundService(health, logger)
{
    private readonly RedisIngestionOptions _options = options.Value;

    protected override string Job => "Redis stream ingestion";

    protected override async Task RunAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        var configuration = ConfigurationOptions.Parse(_options.Configuration);
        configuration.AbortOnConnectFail = true; // a failed connection is a failed attempt: retried with backoff, reported in health
        await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        var db = redis.GetDatabase();
        await EnsureGroupAsync(db);
        logger.LogInformation("Consuming Redis stream {Stream} as {Consumer} of group {Group}; rejected entries go to {DeadLetter}", _options.Stream, _options.Consumer, _options.Group, _options.DeadLetter);

        // First the entries this consumer read before a restart and never acknowledged, then new ones; entries other
        // consumers left unacknowledged are claimed on a timer.
        var position = StreamPosition.Beginning;
        var claimEvery = TimeSpan.FromSeconds(Math.Clamp(_options.ClaimIdleSeconds / 2.0, 1, 30));
        var lastClaim = DateTime.UtcNow;
        while (!stoppingToken.IsCancellationRequested)
        {
            if (DateTime.UtcNow - lastClaim > claimEvery)
            {
                lastClaim = DateTime.UtcNow;
                await ClaimIdleAsync(db, stoppingToken);
            }

            var entries = await db.StreamReadGroupAsync(_options.Stream, _options.Group, _options.Consumer, position, _options.BatchSize);
            if (entries.Length == 0 && position == StreamPosition.Beginning)
            {
                position = StreamPosition.NewMessages;
                continue;
            }

            if (entries.Length == 0)
            {
                Succeeded();
                await Task.Delay(_options.PollMilliseconds, stoppingToken);
                continue;
            }

            await ApplyAsync(db, entries);
            Succeeded();
        }
    }

    /// <inheritdoc />
    protected override bool NeededToServe => false; // decisions never wait for Redis

    /// <inheritdoc />
    /// <remarks>
    /// Every failure of the consumer is retried with backoff and reported in health, never a reason to stop the service
    /// that serves decisions: Redis unreachable or timing out, or a write that could not be made durable. (An entry the
    /// write path fails on for any other reason is found and dead-lettered by itself, see ApplyAsync.)
    /// </remarks>
    protected override bool IsTransient(Exception exception) => true;

    // Takes over entries other consumers read but left unacknowledged for ClaimIdleSeconds (this node under an earlier name), following
    // XAUTOCLAIM's cursor through the whole pending list; they are applied like new entries.
    private async Task ClaimIdleAsync(IDatabase db, CancellationToken stoppingToken)
    {
        RedisValue cursor = "0-0";
        do
        {
            var claimed = await db.StreamAutoClaimAsync(_options.Stream, _options.Group, _options.Consumer, _options.ClaimIdleSeconds * 1000L, cursor, _options.BatchSize);
            if (claimed.ClaimedEntries.Length > 0)
            {
                await ApplyAsync(db, claimed.ClaimedEntries);
            }

            cursor = claimed.NextStartId;
        }
        while (cursor != "0-0" && !stoppingToken.IsCancellationRequested);
    }

    private async Task EnsureGroupAsync(IDatabase db)
    {
        try
        {
            await db.StreamCreateConsumerGroupAsync(_options.Stream, _options.Group, StreamPosition.Beginning, createStream: true);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // The group exists: consumption continues where the group is.
        }
    }

    /// <summary>
    /// Applies a batch durably, dead-letters what cannot be applied, then acknowledges the whole batch. An entry without
    /// an id is skipped: Redis before 7.0 answers XAUTOCLAIM so for a pending entry deleted meanwhile (a producer's
    /// trim), which has nothing to apply, and whose missing id would fail the batch's acknowledgement.
    /// </summary>
    public async Task ApplyAsync(IDatabase db, StreamEntry[] entries)
    {
        if (Array.Exists(entries, static e => e.IsNull))
        {
            entries = Array.FindAll(entries, static e => !e.IsNull);
            if (entries.Length == 0)
            {
                return;
            }
        }

        var events = new List<Core.Events.BehaviourEvent>(entries.Length);
        var entryOfEvent = new List<int>(entries.Length);
        var deadLetters = new List<(StreamEntry Entry, string Reason, bool KeepPayload)>();
        for (var i = 0; i < entries.Length; i++)
        {
            var payload = entries[i]["event"];
            if (payload.IsNullOrEmpty)
            {
                deadLetters.Add((entries[i], "the entry has no 'event' field (a segmentation.v1.Event in JSON)", true));
                continue;
            }

            if (payload.Length() > _options.MaxEntryBytes)
            {
                deadLetters.Add((entries[i], $"the event is {payload.Length():N0} bytes; at most {_options.MaxEntryBytes:N0}", true));
                continue;
            }

            try
            {
                events.Add(ProfileMapper.ToDomain(JsonParser.Default.Parse<Event>((string)payload!)));
                entryOfEvent.Add(i);
            }
            catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidJsonException or FormatException or ArgumentException or OverflowException or Core.Validation.ValidationException)
            {
                deadLetters.Add((entries[i], "not a segmentation.v1.Event in JSON: " + Bounded(ex.Message), true));
            }
        }

        // Durable on return: TrackMany answers once the batch's change-log records are fsynced. A failure to make them
        // durable (storage) propagates: nothing is acknowledged, the batch is read again after the backoff, and nothing is
        // dead-lettered for it. Any other failure is an entry the write path cannot take: the batch is applied again one
        // entry at a time (events already applied come back as duplicates) and only the entry that fails is dead-lettered.
        // A write path already closed (a shutdown that outlasted the host's timeout) is no entry's fault either: nothing
        // is acknowledged, and the entries are read again after the restart.
        int applied = 0, duplicates = 0;
        IReadOnlyList<Core.Application.Profiles.EventResult> results;
        try
        {
            results = events.Count == 0 ? [] : [.. ingestion.TrackMany(events)];
        }
        catch (Exception ex) when (!IsStorageFailure(ex) && ex is not (OperationCanceledException or ObjectDisposedException))
        {
            logger.LogWarning(ex, "A batch of {Count} Redis stream entries failed ({ExceptionType}); applying them one at a time to find the entry at fault", events.Count, ex.GetType().Name);
            var one = new List<Core.Application.Profiles.EventResult>(events.Count);
            for (var k = 0; k < events.Count; k++)
            {
                try
                {
                    var result = ingestion.TrackMany([events[k]]).Single();
                    one.Add(result with { Index = k });
                }
                catch (Exception single) when (!IsStorageFailure(single) && single is not (OperationCanceledException or ObjectDisposedException))
                {
                    deadLetters.Add((entries[entryOfEvent[k]], Bounded($"the write path failed on this entry: {single.GetType().Name}: {single.Message}"), true));
                }
            }

            results = one;
        }

        foreach (var result in results)
        {
            switch (result.Status)
            {
                case Core.Application.Profiles.EventStatus.Accepted:
                    applied++;
                    break;
                case Core.Application.Profiles.EventStatus.Duplicate:
                    duplicates++;
                    break;
                default:
                    // An event past its retention is not kept here either: the dead letter says why, not what it held.
                    deadLetters.Add((entries[entryOfEvent[result.Index]], Bounded(string.Join("; ", result.Violations.Select(v => $"{EntryField(v.Field)}: {v.Description}"))), !result.PastRetention));
                    break;
            }
        }

        foreach (var (entry, reason, keepPayload) in deadLetters)
        {
            await DeadLetterAsync(db, entry, reason, keepPayload);
        }

        await db.StreamAcknowledgeAsync(_options.Stream, _options.Group, [.. entries.Select(e => e.Id)]);
        SegmentationTelemetry.StreamEntries.Add(applied, new KeyValuePair<string, object?>("result", "applied"));
        SegmentationTelemetry.StreamEntries.Add(duplicates, new KeyValuePair<string, object?>("result", "duplicate"));
        SegmentationTelemetry.StreamEntries.Add(deadLetters.Count, new KeyValuePair<string, object?>("result", "dead_lettered"));
        if (deadLetters.Count > 0)
        {
            logger.LogWarning("{Count} Redis stream entries dead-lettered to {DeadLetter}, e.g. {Entry}: {Reason}", deadLetters.Count, _options.DeadLetter, deadLetters[0].Entry.Id, deadLetters[0].Reason);
        }
    }

    // A violation's field as the entry's event names it: "events[17].user_id" is the 17th event of the read batch,
    // a position that means nothing to whoever reads the dead letter (its entry id is given beside it).
    private static string EntryField(string field)
    {
        if (!field.StartsWith("events[", StringComparison.Ordinal) || field.IndexOf(']', StringComparison.Ordinal) is not (> 0 and var end))
        {
            return field;
        }

        return end + 1 < field.Length && field[end + 1] == '.' ? field[(end + 2)..] : "event" + field[(end + 1)..];
    }

    // The entry's id, stream, reason and time, its payload when it is within DeadLetterPayloadBytes and may be kept (else
    // only its size), and the names of its fields (bounded): the stream, trimmed by count, stays within what that bounds.
    private async Task DeadLetterAsync(IDatabase db, StreamEntry entry, string reason, bool keepPayload)
    {
        var payload = entry.Values is null || entry.IsNull ? RedisValue.Null : entry["event"];
        var size = payload.IsNull ? 0 : payload.Length();
        await db.StreamAddAsync(
            _options.DeadLetter,
            [
                new NameValueEntry("entry_id", entry.Id),
                new NameValueEntry("stream", _options.Stream),
                new NameValueEntry("reason", reason),
                new NameValueEntry("event", payload.IsNull || size > RedisIngestionOptions.DeadLetterPayloadBytes || !keepPayload ? RedisValue.EmptyString : payload),
                new NameValueEntry("event_bytes", size),
                new NameValueEntry("fields", Bounded(string.Join(",", (entry.Values ?? []).Take(20).Select(v => (string?)v.Name)))),
                new NameValueEntry("at", DateTimeOffset.UtcNow.ToString("O")),
            ],
            maxLength: _options.DeadLetterMaxLength,
            useApproximateMaxLength: true);
    }

    private static string Bounded(string text) => Segmentation.Core.Validation.InputLimits.Bounded(text, 500);
}
