using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.OnlineRetail;

namespace Segmentation.Cli;

/// <summary>
/// <c>segctl import</c>: reads the UCI Online Retail CSV, builds one <c>purchase</c> event per invoice and one
/// <c>refund</c> per cancellation invoice, streams them through <c>ProfileService.StreamEvents</c> in time order,
/// and reports what was read, rejected, accepted and the resulting RFM distribution (read back with GetProfile).
/// </summary>
internal static class ImportCommand
{
    private const string Source = "uci-online-retail";
    private const int MaxViolationSamples = 5;
    private const int ProfileConcurrency = 16;
    private const int SampleSize = 64;

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static async Task<int> RunAsync(ServiceTarget address, FileInfo csv, MappedCsv? mapping, bool shiftToNow, TimeSpan rfmWait, bool json, CancellationToken ct)
    {
        if (!csv.Exists)
        {
            throw new FileNotFoundException($"no such file: {csv.FullName}");
        }

        var total = Stopwatch.StartNew();
        var report = new ImportReport { File = csv.Name, Address = address.Address, Mapped = mapping is not null };
        using var grpc = Cli.OpenChannel(address);
        var profiles = new ProfileService.ProfileServiceClient(grpc);

        // A wrong address, key or scope fails here, before a large file is read.
        await CheckKeyAsync(profiles, ct);
        var send = Stopwatch.StartNew();
        if (mapping is null)
        {
            var events = ReadEvents(csv, shiftToNow ? DateTimeOffset.UtcNow : null, report);
            send.Restart();
            await Terminal.ProgressAsync("import", events.Count, "events", async progress =>
            {
                await StreamAsync(profiles, events, report, () => progress(report.EventsSent), address.CallTimeout, ct);
                return true;
            });
            Sent(report, send);
            if (rfmWait > TimeSpan.Zero && events.Count > 0)
            {
                try
                {
                    await RfmAsync(profiles, events, report, rfmWait, ct);
                }
                catch (RpcException ex) when (ex.StatusCode == StatusCode.PermissionDenied)
                {
                    // An ingest-only key (a tracker's) imports but cannot read profiles: the import stands, with its report.
                    report.Rfm = new RfmReport { Note = "not read: the key may import but not read profiles (that needs the decide scope); --rfm-wait 0 skips this summary" };
                }
                catch (RpcException ex) when (ex.StatusCode != StatusCode.Cancelled || Cli.IsTimeout(ex))
                {
                    // The summary is read after the import is done: its failure (a rate limit, a restart) leaves the import standing.
                    report.Rfm = new RfmReport { Note = $"not read: {Cli.StatusName(ex.StatusCode)} ({ex.Status.Detail}); the events above were imported; --rfm-wait 0 skips this summary" };
                }
            }
        }
        else
        {
            // Read as it is sent: the file's size does not matter (the progress is the share of its bytes read).
            using var file = new FileStream(csv.FullName, FileMode.Open, FileAccess.Read, FileShare.Read);
            var length = file.CanSeek ? file.Length : 0;
            await Terminal.ProgressAsync("import", length, "bytes", async progress =>
            {
                await StreamAsync(profiles, mapping.Read(file, csv.Name, report), report, () => progress(length > 0 ? file.Position : 0), address.CallTimeout, ct);
                return true;
            });
            Sent(report, send);
        }

        report.TotalSeconds = Math.Round(total.Elapsed.TotalSeconds, 3);
        Console.Write(json ? JsonSerializer.Serialize(report, JsonOptions) + Environment.NewLine : Format(report));

        // A file that cannot be read on from some row: what the service took before it stays (rejected events did not).
        if (report.Unreadable is { } unreadable)
        {
            await Console.Error.WriteLineAsync($"error: {unreadable}; {CsvReading.Consequence(report.Accepted + report.Duplicates)}");
        }

        // A stream the service ended as done without answering every event: whether those were stored is not known.
        if (report.MissingResults > 0)
        {
            await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"error: the service ended the stream without answering {report.MissingResults:N0} of the {report.EventsSent:N0} events sent, so whether they were stored is not known; run the same import again (every event has an id: those stored already come back as duplicates)"));
            return Cli.RpcFailure;
        }

        if (report.Unreadable is not null)
        {
            return Cli.Rejected;
        }

        // Nothing taken (neither applied nor already there) while rows or events were refused: the input was rejected.
        var refused = report.RowsRejected.Values.Sum() + report.RejectedByServer;
        return report.Accepted + report.Duplicates == 0 && refused > 0 ? Cli.Rejected : 0;
    }

    /// <summary>
    /// Asks the service to take an empty batch of events: it refuses the batch as invalid once the key and its
    /// ingest scope are accepted, and refuses the key or scope first otherwise (which is reported and ends the import).
    /// </summary>
    private static async Task CheckKeyAsync(ProfileService.ProfileServiceClient client, CancellationToken ct)
    {
        try
        {
            await client.TrackEventsAsync(new TrackEventsRequest(), cancellationToken: ct);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument)
        {
            // The key was accepted: only the empty batch was refused.
        }
    }

    private static void Sent(ImportReport report, Stopwatch send)
    {
        report.StreamSeconds = Math.Round(send.Elapsed.TotalSeconds, 3);
        report.EventsPerSecond = send.Elapsed.TotalSeconds > 0 ? Math.Round(report.EventsSent / send.Elapsed.TotalSeconds) : 0;
    }

    /// <summary>Reads the CSV (<see cref="OnlineRetailCsv"/>) and builds events in time order (ties by event id), filling the read side of the report.</summary>
    internal static List<Event> ReadEvents(FileInfo csv, DateTimeOffset? endsAt, ImportReport report)
    {
        OnlineRetailRead read;
        using (var text = new StreamReader(csv.FullName, CsvText.StrictUtf8, detectEncodingFromByteOrderMarks: true))
        {
            try
            {
                read = OnlineRetailCsv.Read(text, endsAt);
            }
            catch (InvalidDataException ex)
            {
                throw new InvalidDataException($"{csv.Name}: {ex.Message}", ex);
            }
            catch (DecoderFallbackException ex)
            {
                throw CsvText.NotUtf8(csv.Name, "the file", ex); // read whole before anything is sent: nothing was imported
            }
        }

        report.RowsRead = read.RowsRead;
        foreach (var (reason, count) in read.RejectedRows)
        {
            report.RowsRejected[reason] = count;
        }

        report.ShiftDays = (int)read.Shift.TotalDays;
        var events = new List<Event>(read.Invoices.Count);
        foreach (var invoice in read.Invoices)
        {
            var e = new Event
            {
                EventId = "uci-" + invoice.Number,
                Type = invoice.IsCancellation ? "refund" : "purchase",
                UserId = invoice.Customer,
                Timestamp = Timestamp.FromDateTime(invoice.At),
                Context = new EventContext
                {
                    Source = Source,
                    Device = "unknown",
                    SessionId = invoice.Number,
                    PageType = "checkout",
                    Country = invoice.Country,
                },
                Currency = "GBP",
                OrderId = invoice.Number,
                Value = invoice.Value,
            };
            e.Lines.Add(invoice.Lines.Select(l => new OrderLine { ProductId = l.StockCode, Name = l.Description, Quantity = l.Quantity, UnitPrice = l.UnitPrice }));
            events.Add(e);
            if (invoice.IsCancellation)
            {
                report.RefundEvents++;
            }
            else
            {
                report.PurchaseEvents++;
            }
        }

        report.Invoices = events.Count;
        report.Customers = events.Select(e => e.UserId).Distinct(StringComparer.Ordinal).Count();
        report.CustomersWithPurchase = events.Where(e => e.Type == "purchase").Select(e => e.UserId).Distinct(StringComparer.Ordinal).Count();
        if (events.Count > 0)
        {
            report.FirstEventAt = Cli.Time(events[0].Timestamp);
            report.LastEventAt = Cli.Time(events[^1].Timestamp);
        }

        return events;
    }

    // Events per StreamEvents message: the import has them all ready, so it sends batches (far cheaper per event for
    // both sides than one message each).
    private const int EventsPerMessage = 100;

    // Rate-limit waits in a row, each without a result received since the last, before the import gives up.
    private const int MaxWaitsWithoutProgress = 10;

    /// <summary>
    /// Writes every event in StreamEvents calls, in batches, while a second task reads the results (one per event, in
    /// order). When the service ends a call for its ingestion rate limit (RESOURCE_EXHAUSTED with a retry delay), the
    /// import waits that long and goes on in a new call from the first event without a result: an event applied whose
    /// result was lost comes back as a duplicate, never counted twice. Events are taken from <paramref name="events"/>
    /// as they are sent; only those sent and not yet answered are kept. A call with events sent and no result for
    /// <paramref name="idleLimit"/> is given up (<c>DEADLINE_EXCEEDED</c>): a service that keeps the connection alive and
    /// never answers does not hold the import for ever, while a source slow to give events is waited for.
    /// </summary>
    private static async Task StreamAsync(ProfileService.ProfileServiceClient client, IEnumerable<Event> events, ImportReport report, Action progress, TimeSpan idleLimit, CancellationToken ct)
    {
        using var source = new EventSource(events);
        var unanswered = new ConcurrentQueue<Event>(); // sent (or being sent), no result yet: oldest first
        var waits = 0;
        while (true)
        {
            var from = report.Results;
            List<Event> again = [.. unanswered]; // what the last call sent without an answer, sent first in the next
            unanswered.Clear();
            try
            {
                await StreamCallAsync(client, again, source, unanswered, report, progress, idleLimit, ct);
                break;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted && ex.GetRpcStatus()?.GetDetail<RetryInfo>()?.RetryDelay is { } delay)
            {
                waits = report.Results > from ? 1 : waits + 1;
                if (waits > MaxWaitsWithoutProgress)
                {
                    throw;
                }

                report.RateLimitWaits++;
                await Task.Delay(delay.ToTimeSpan(), ct);
            }
        }

        if (report.Results != report.EventsSent)
        {
            report.MissingResults = report.EventsSent - report.Results;
        }

        // A file that cannot be read on from some row: reported once what was sent before it is answered, whatever
        // number of calls that took (a rate limit may end the call in which the row was reached), with the report.
        report.Unreadable = source.Unreadable?.Message;
    }

    // The events to send, taken one at a time; a row the file cannot be read on from ends them, and is kept to be
    // reported (an iterator that threw is over: it is never asked again).
    private sealed class EventSource(IEnumerable<Event> events) : IDisposable
    {
        private readonly IEnumerator<Event> _events = events.GetEnumerator();

        public InvalidDataException? Unreadable { get; private set; }

        public bool TryNext(out Event next)
        {
            next = null!;
            if (Unreadable is not null)
            {
                return false;
            }

            try
            {
                if (!_events.MoveNext())
                {
                    return false;
                }

                next = _events.Current;
                return true;
            }
            catch (InvalidDataException ex)
            {
                Unreadable = ex;
                return false;
            }
        }

        public void Dispose() => _events.Dispose();
    }

    // One StreamEvents call (SendAndReadAsync), given up when events it sent wait idleLimit for their results.
    private static async Task StreamCallAsync(ProfileService.ProfileServiceClient client, List<Event> again, EventSource source, ConcurrentQueue<Event> unanswered, ImportReport report, Action progress, TimeSpan idleLimit, CancellationToken ct)
    {
        // Given up when events wait for their results longer than idleLimit since the last result (or since they were
        // sent, after a time with none waiting).
        using var gaveUp = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var lastHeard = Stopwatch.GetTimestamp();
        using var watchdog = new Timer(
            _ =>
            {
                var now = Stopwatch.GetTimestamp();
                if (unanswered.IsEmpty)
                {
                    Volatile.Write(ref lastHeard, now);
                }
                else if (Stopwatch.GetElapsedTime(Volatile.Read(ref lastHeard), now) > idleLimit)
                {
                    gaveUp.Cancel();
                }
            },
            null,
            WatchEvery,
            WatchEvery);
        try
        {
            await SendAndReadAsync(client, again, source, unanswered, report, progress, () => Volatile.Write(ref lastHeard, Stopwatch.GetTimestamp()), gaveUp.Token);
        }
        catch (Exception ex) when (ex is RpcException or OperationCanceledException && gaveUp.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw new RpcException(new Grpc.Core.Status(StatusCode.DeadlineExceeded, string.Create(CultureInfo.InvariantCulture, $"no result within {idleLimit.TotalSeconds:0} s for the {unanswered.Count:N0} events sent and not answered")));
        }
    }

    // How often a call's wait for results is checked.
    private static readonly TimeSpan WatchEvery = TimeSpan.FromMilliseconds(250);

    // Sends the events of again, then the source's next ones; the results it reads are counted in the report as they
    // come, each taking its event off unanswered (and calling heard).
    private static async Task SendAndReadAsync(ProfileService.ProfileServiceClient client, List<Event> again, EventSource source, ConcurrentQueue<Event> unanswered, ImportReport report, Action progress, Action heard, CancellationToken ct)
    {
        // All of again is unanswered from the start, in order ahead of anything new: a call that ends before its last
        // one is written leaves them for the next (only those written were kept, and the rest were never sent).
        foreach (var e in again)
        {
            unanswered.Enqueue(e);
        }

        using var call = client.StreamEvents(cancellationToken: ct);
        var reader = Task.Run(
            async () =>
            {
                var expected = 0; // the call's own index (it counts from 0 in each call)
                await foreach (var response in call.ResponseStream.ReadAllAsync(ct))
                {
                    if (response.Result is { } single)
                    {
                        Count(single, ref expected);
                    }

                    foreach (var r in response.Results)
                    {
                        Count(r, ref expected);
                    }
                }
            },
            ct);

        RpcException? writeFailed = null;
        try
        {
            var resent = 0;
            while (true)
            {
                var message = new StreamEventsRequest();
                var fresh = 0;
                for (; resent < again.Count && message.Events.Count < EventsPerMessage; resent++)
                {
                    message.Events.Add(again[resent]);
                }

                // Past a row the file cannot be read on from, the source gives nothing more: the events read into this
                // message before it are sent, and the error is reported once every call has ended (StreamAsync).
                while (message.Events.Count < EventsPerMessage && source.TryNext(out var next))
                {
                    message.Events.Add(next);
                    fresh++;
                }

                if (message.Events.Count == 0)
                {
                    break;
                }

                foreach (var e in message.Events.Skip(message.Events.Count - fresh))
                {
                    unanswered.Enqueue(e); // before the write: a result may come back before it returns
                }

                // Counted as sent before the write: if the write fails they are sent again (not counted again) in the next call.
                var before = report.EventsSent;
                report.EventsSent += fresh;
                await call.RequestStream.WriteAsync(message, ct);
                if (report.EventsSent / 500 != before / 500)
                {
                    progress();
                }
            }

            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException ex)
        {
            writeFailed = ex; // the server ended the call: the reader's exception (awaited below) says why
        }

        // Always awaited before the call is left: the next call's retry reads what this one's reader left in unanswered.
        await reader;
        if (writeFailed is not null)
        {
            ExceptionDispatchInfo.Throw(writeFailed);
        }

        void Count(EventResult r, ref int expected)
        {
            heard();
            if (!unanswered.TryDequeue(out var sent) || r.Index != expected || r.EventId != sent.EventId)
            {
                report.OutOfOrderResults++;
            }

            expected++;
            report.Results++;
            switch (r.Status)
            {
                case EventStatus.Accepted:
                    report.Accepted++;
                    break;
                case EventStatus.Duplicate:
                    report.Duplicates++;
                    break;
                default:
                    report.RejectedByServer++;
                    var reasons = r.Violations.Count == 0 ? ["(no violation given)"] : r.Violations.Select(v => $"{StripIndexes(v.Field)}: {v.Description}");
                    foreach (var reason in reasons.Distinct(StringComparer.Ordinal))
                    {
                        report.ServerRejections[reason] = report.ServerRejections.GetValueOrDefault(reason) + 1;
                    }

                    if (report.ViolationSamples.Count < MaxViolationSamples)
                    {
                        report.ViolationSamples.Add($"{r.EventId}: " + string.Join("; ", r.Violations.Select(v => $"{v.Field}: {v.Description}")));
                    }

                    break;
            }
        }
    }

    /// <summary>
    /// Waits until the server's RFM model covers the import (the most recent purchaser has a recency score), then reads
    /// every imported customer's profile, 16 at a time, and counts the R, F, M scores and RFM segment names.
    /// </summary>
    private static async Task RfmAsync(ProfileService.ProfileServiceClient client, List<Event> events, ImportReport report, TimeSpan wait, CancellationToken ct)
    {
        var rfm = new RfmReport();
        report.Rfm = rfm;
        var probe = events.LastOrDefault(e => e.Type == "purchase")?.UserId;
        if (probe is null)
        {
            rfm.Note = "no purchases imported";
            return;
        }

        rfm.ProbeCustomer = probe;

        // A score > 0 alone does not prove the model covers this import: the server may have recomputed while the
        // stream was running (over part of the population) and not yet since. The public API has no RFM model
        // version, so: snapshot the scores of a sample spread over the import's purchasers right after the stream;
        // when this import changed anything (accepted > 0), wait until the probe is scored AND the sample's scores
        // differ from that snapshot (a recompute after the stream ended, which necessarily covers all of it).
        var purchasers = events.Where(e => e.Type == "purchase").Select(e => e.UserId).Reverse().Distinct(StringComparer.Ordinal).Reverse().ToList();
        var sample = Enumerable.Range(0, Math.Min(SampleSize, purchasers.Count))
            .Select(i => purchasers[(int)((long)i * (purchasers.Count - 1) / Math.Max(1, Math.Min(SampleSize, purchasers.Count) - 1))])
            .Append(probe)
            .Distinct(StringComparer.Ordinal)
            .ToList();
        var needsRecompute = report.Accepted > 0;
        var before = await ScoresAsync(client, sample, ct);
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var now = await ScoresAsync(client, sample, ct);
            var probeScored = now.TryGetValue(probe, out var ps) && ps.R > 0;
            var changed = !now.OrderBy(kv => kv.Key, StringComparer.Ordinal).SequenceEqual(before.OrderBy(kv => kv.Key, StringComparer.Ordinal));
            if (probeScored && (!needsRecompute || changed))
            {
                rfm.Covered = true;
                break;
            }

            if (waited.Elapsed >= wait)
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
        }

        rfm.WaitedSeconds = Math.Round(waited.Elapsed.TotalSeconds, 1);
        if (!rfm.Covered)
        {
            rfm.Note = $"no RFM recomputation covering this import was seen within {wait.TotalSeconds:0} s (the server recomputes at most every Segmentation:RfmRecomputeSeconds); the scores below may come from an older model";
        }

        var customers = events.Select(e => e.UserId).Distinct(StringComparer.Ordinal).ToList();
        var gate = new object();
        var read = Stopwatch.StartNew();
        await Parallel.ForEachAsync(
            customers,
            new ParallelOptions { MaxDegreeOfParallelism = ProfileConcurrency, CancellationToken = ct },
            async (id, token) =>
            {
                GetProfileResponse response;
                try
                {
                    response = await client.GetProfileAsync(new GetProfileRequest { UserId = id }, cancellationToken: token);
                }
                catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
                {
                    lock (gate)
                    {
                        rfm.NotFound++;
                    }

                    return;
                }

                var a = response.Profile?.Aggregates ?? new ProfileAggregates();
                var segment = response.Profile?.Derived?.RfmSegment is { Length: > 0 } s ? s : "(none)";
                lock (gate)
                {
                    rfm.ProfilesRead++;
                    Count(rfm.Recency, a.RfmRecency);
                    Count(rfm.Frequency, a.RfmFrequency);
                    Count(rfm.Monetary, a.RfmMonetary);
                    rfm.Segments[segment] = rfm.Segments.GetValueOrDefault(segment) + 1;
                }
            });
        rfm.ReadSeconds = Math.Round(read.Elapsed.TotalSeconds, 2);

        static void Count(SortedDictionary<int, int> counts, int score) => counts[score] = counts.GetValueOrDefault(score) + 1;
    }

    /// <summary>Reads the (R, F, M) scores of a few customers, 16 at a time; a missing profile reads as (0, 0, 0).</summary>
    private static async Task<Dictionary<string, (int R, int F, int M)>> ScoresAsync(ProfileService.ProfileServiceClient client, List<string> ids, CancellationToken ct)
    {
        var scores = new Dictionary<string, (int R, int F, int M)>(StringComparer.Ordinal);
        var gate = new object();
        await Parallel.ForEachAsync(
            ids,
            new ParallelOptions { MaxDegreeOfParallelism = ProfileConcurrency, CancellationToken = ct },
            async (id, token) =>
            {
                var score = (0, 0, 0);
                try
                {
                    var a = (await client.GetProfileAsync(new GetProfileRequest { UserId = id }, cancellationToken: token)).Profile?.Aggregates;
                    if (a is not null)
                    {
                        score = (a.RfmRecency, a.RfmFrequency, a.RfmMonetary);
                    }
                }
                catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
                {
                }

                lock (gate)
                {
                    scores[id] = score;
                }
            });
        return scores;
    }

    private static string StripIndexes(string field)
    {
        var sb = new StringBuilder(field.Length);
        var inBracket = false;
        foreach (var ch in field)
        {
            if (ch == '[')
            {
                inBracket = true;
                sb.Append("[]");
            }
            else if (ch == ']')
            {
                inBracket = false;
            }
            else if (!inBracket)
            {
                sb.Append(ch);
            }
        }

        return sb.ToString();
    }

    internal static string Format(ImportReport r)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"Import of {r.File} into {r.Address}");
        sb.AppendLine(inv, $"  rows read                  {r.RowsRead,9:N0}");
        sb.AppendLine(inv, $"  rows rejected              {r.RowsRejected.Values.Sum(),9:N0}");
        foreach (var (reason, n) in r.RowsRejected)
        {
            sb.AppendLine(inv, $"    {reason,-36} {n,7:N0}");
        }

        if (r.Mapped)
        {
            sb.AppendLine(inv, $"  rows → events              {r.RowsRead - r.RowsRejected.Values.Sum(),9:N0}   (events {r.FirstEventAt} .. {r.LastEventAt})");
            sb.AppendLine(inv, $"  distinct users             {r.Customers,9:N0}");
        }
        else
        {
            sb.AppendLine(inv, $"  invoices → events          {r.Invoices,9:N0}   ({r.PurchaseEvents:N0} purchase, {r.RefundEvents:N0} refund)");
            sb.AppendLine(inv, $"  distinct customers         {r.Customers,9:N0}   ({r.CustomersWithPurchase:N0} with at least one purchase)");
            sb.AppendLine(inv, $"  timestamps shifted by      {r.ShiftDays,9:N0} days   (events {r.FirstEventAt} .. {r.LastEventAt})");
        }

        sb.AppendLine(inv, $"  events sent                {r.EventsSent,9:N0}   (results received {r.Results:N0})");
        sb.AppendLine(inv, $"    accepted                 {r.Accepted,9:N0}");
        sb.AppendLine(inv, $"    duplicates               {r.Duplicates,9:N0}");
        sb.AppendLine(inv, $"    rejected by server       {r.RejectedByServer,9:N0}");
        foreach (var (reason, n) in r.ServerRejections.OrderByDescending(kv => kv.Value))
        {
            sb.AppendLine(inv, $"      {n,7:N0}  {reason}");
        }

        foreach (var sample in r.ViolationSamples)
        {
            sb.AppendLine(inv, $"      e.g. {sample}");
        }

        if (r.OutOfOrderResults > 0 || r.MissingResults > 0)
        {
            sb.AppendLine(inv, $"  WARNING: {r.OutOfOrderResults} results out of order, {r.MissingResults} results missing");
        }

        if (r.RateLimitWaits > 0)
        {
            sb.AppendLine(inv, $"  rate limit waits           {r.RateLimitWaits,9:N0}   (the service's ingestion limit; each call went on after its delay)");
        }

        sb.AppendLine(inv, $"  stream elapsed             {r.StreamSeconds,9:0.000} s   ({r.EventsPerSecond:N0} events/s)");
        if (r.Rfm is { } rfm)
        {
            sb.AppendLine(inv, $"RFM distribution ({rfm.ProfilesRead:N0} profiles read in {rfm.ReadSeconds:0.00} s; model {(rfm.Covered ? "covers the import" : "NOT confirmed")} after {rfm.WaitedSeconds:0.0} s, probe customer {rfm.ProbeCustomer})");
            if (rfm.Note is not null)
            {
                sb.AppendLine(inv, $"  note: {rfm.Note}");
            }

            if (rfm.NotFound > 0)
            {
                sb.AppendLine(inv, $"  profiles not found: {rfm.NotFound:N0}");
            }

            sb.AppendLine(inv, $"  score        {"0",6} {"1",6} {"2",6} {"3",6} {"4",6} {"5",6}   (0 = no purchase)");
            AppendScores(sb, "recency", rfm.Recency);
            AppendScores(sb, "frequency", rfm.Frequency);
            AppendScores(sb, "monetary", rfm.Monetary);
            sb.AppendLine("  RFM segments:");
            foreach (var (name, n) in rfm.Segments.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal))
            {
                sb.AppendLine(inv, $"    {name,-24} {n,7:N0}");
            }
        }

        sb.AppendLine(inv, $"total elapsed                {r.TotalSeconds,9:0.000} s");
        return sb.ToString();

        static void AppendScores(StringBuilder sb, string label, SortedDictionary<int, int> counts)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  {label,-12}");
            for (var score = 0; score <= 5; score++)
            {
                sb.Append(CultureInfo.InvariantCulture, $" {counts.GetValueOrDefault(score),6:N0}");
            }

            sb.AppendLine();
        }
    }

}

/// <summary>What the import read, built, sent and what the server did with it.</summary>
internal sealed class ImportReport
{
    public string File { get; set; } = "";
    public string Address { get; set; } = "";
    public bool Mapped { get; set; }
    public int RowsRead { get; set; }
    public SortedDictionary<string, int> RowsRejected { get; } = new(StringComparer.Ordinal);
    public int Invoices { get; set; }
    public int PurchaseEvents { get; set; }
    public int RefundEvents { get; set; }
    public int Customers { get; set; }
    public int CustomersWithPurchase { get; set; }
    public int ShiftDays { get; set; }
    public string FirstEventAt { get; set; } = "";
    public string LastEventAt { get; set; } = "";
    public int EventsSent { get; set; }

    /// <summary>Why the file could not be read on from some row (the rows before it were sent), or null when it was read to its end.</summary>
    public string? Unreadable { get; set; }
    public int Results { get; set; }
    public int Accepted { get; set; }
    public int Duplicates { get; set; }
    public int RejectedByServer { get; set; }
    public SortedDictionary<string, int> ServerRejections { get; } = new(StringComparer.Ordinal);
    public List<string> ViolationSamples { get; } = [];
    public int OutOfOrderResults { get; set; }
    public int MissingResults { get; set; }

    /// <summary>Times the service's ingestion rate limit ended a call and the import waited its delay to go on.</summary>
    public int RateLimitWaits { get; set; }
    public double StreamSeconds { get; set; }
    public double EventsPerSecond { get; set; }
    public RfmReport? Rfm { get; set; }
    public double TotalSeconds { get; set; }

    public void Reject(string reason) => RowsRejected[reason] = RowsRejected.GetValueOrDefault(reason) + 1;
}

/// <summary>RFM scores and segment names read back from the server after the import.</summary>
internal sealed class RfmReport
{
    public string ProbeCustomer { get; set; } = "";
    public bool Covered { get; set; }
    public double WaitedSeconds { get; set; }
    public string? Note { get; set; }
    public int ProfilesRead { get; set; }
    public int NotFound { get; set; }
    public double ReadSeconds { get; set; }
    public SortedDictionary<int, int> Recency { get; } = [];
    public SortedDictionary<int, int> Frequency { get; } = [];
    public SortedDictionary<int, int> Monetary { get; } = [];
    public SortedDictionary<string, int> Segments { get; } = new(StringComparer.Ordinal);
}
