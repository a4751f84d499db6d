using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using Segmentation.Contracts.V1;
using Segmentation.OnlineRetail;
using Sylvan.Data.Csv;

namespace Segmentation.Cli;

/// <summary>
/// A CSV of events in any layout, read through a column mapping: which column holds the user id, the event type,
/// the time, and so on. Each row is one event. The mapping comes from <c>--map field=Column</c> options or a
/// small file of <c>field=Column</c> lines; unknown fields and columns the file does not have are errors before
/// any row is read. Rows without a user id, type or a valid time are counted as rejected by reason, not sent.
/// </summary>
internal sealed class MappedCsv
{
    /// <summary>The event fields a column can be mapped to.</summary>
    public static readonly IReadOnlyList<string> Fields =
    [
        "event_id", "user_id", "anonymous_id", "type", "timestamp", "value", "currency", "order_id", "product_id", "category",
        "campaign_id", "search_query", "device", "page_type", "page_path", "country", "session_id",
    ];

    private readonly Dictionary<string, string> _columns;
    private readonly string? _constantType;

    // The timestamp column's exact format (a day-first export's dd/MM/yyyy HH:mm), or null for RFC 3339 and the invariant
    // culture's forms (which read 01/03/2024 as 3 January).
    private readonly string? _timeFormat;

    private MappedCsv(Dictionary<string, string> columns, string? constantType, string? timeFormat)
    {
        _columns = columns;
        _constantType = constantType;
        _timeFormat = timeFormat;
    }

    /// <summary>
    /// The mapping from <paramref name="assignments"/> (field=Column) and the lines of <paramref name="file"/>, if any
    /// (later ones win); <paramref name="constantType"/> is the event type of every row when no column holds it;
    /// <paramref name="timeFormat"/>, the timestamp column's exact format (null: RFC 3339 or the invariant culture's forms).
    /// </summary>
    public static MappedCsv Create(IEnumerable<string> assignments, FileInfo? file, string? constantType, string? timeFormat = null)
    {
        if (timeFormat is { } format && !IsFormat(format))
        {
            throw new ArgumentException($"--time-format '{format}' is not a .NET date and time format (for example dd/MM/yyyy HH:mm)");
        }

        var lines = new List<(string Text, string Where)>();
        if (file is not null)
        {
            if (!file.Exists)
            {
                throw new FileNotFoundException($"no such mapping file: {file.FullName}");
            }

            var n = 0;
            foreach (var line in File.ReadLines(file.FullName))
            {
                n++;
                if (line.Trim() is { Length: > 0 } text && !text.StartsWith('#'))
                {
                    lines.Add((text, $"{file.Name}:{n}"));
                }
            }
        }

        lines.AddRange(assignments.Select(a => (a, "--map")));
        var columns = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (text, where) in lines)
        {
            var eq = text.IndexOfAny(['=', ':']);
            var field = eq > 0 ? text[..eq].Trim() : "";
            var column = eq > 0 ? text[(eq + 1)..].Trim() : "";
            if (field.Length == 0 || column.Length == 0)
            {
                throw new ArgumentException($"{where}: '{text}' is not field=Column (e.g. user_id=CustomerID)");
            }

            if (!Fields.Contains(field))
            {
                var close = Fields.OrderBy(f => Distance(f, field)).First();
                throw new ArgumentException($"{where}: unknown event field '{field}'{(Distance(close, field) <= Math.Max(1, field.Length / 3) ? $"; did you mean '{close}'?" : "")} (fields: {string.Join(", ", Fields)})");
            }

            columns[field] = column;
        }

        if (!columns.ContainsKey("user_id") && !columns.ContainsKey("anonymous_id"))
        {
            throw new ArgumentException("the mapping needs user_id=<column> (or anonymous_id=<column>)");
        }

        if (!columns.ContainsKey("type") && string.IsNullOrEmpty(constantType))
        {
            throw new ArgumentException("the mapping needs type=<column>, or --type for one event type for every row");
        }

        if (!columns.ContainsKey("timestamp"))
        {
            throw new ArgumentException("the mapping needs timestamp=<column>: when each event happened (RFC 3339, or any format .NET reads in the invariant culture; no zone means UTC)");
        }

        return new MappedCsv(columns, constantType, timeFormat);
    }

    /// <summary>
    /// Reads <paramref name="csv"/> (<paramref name="file"/> names it in errors; a header row first) into events in file order, one row at a time as they are
    /// enumerated: a file of any size is imported in the memory of its distinct users (the report's count) and about
    /// 24 bytes per row without an event id (how many identical rows came before it). The header is checked against
    /// the mapping at the first <c>MoveNext</c>, before any row is read. The report's rows, rejections, users and first
    /// and last times grow as rows are read.
    /// </summary>
    /// <exception cref="InvalidDataException">A mapped column is missing, or the file is not valid CSV from some row on: thrown by the <c>MoveNext</c> that reaches it (<see cref="CsvReading.Describe"/>).</exception>
    public IEnumerable<Event> Read(Stream csv, string file, ImportReport report)
    {
        using var text = new StreamReader(csv, CsvText.StrictUtf8, detectEncodingFromByteOrderMarks: true, leaveOpen: true);
        using var reader = Csv(() => CsvDataReader.Create(text, CsvReading.Options(hasHeaders: true)), file, report);
        var ordinal = Ordinals(reader, file);

        // Rows without an event id get one from the row's own values (and how many identical rows came before it in
        // this file): importing the same rows again — the same file, a re-sorted or a grown export — is deduplicated
        // by the service instead of counted twice. The rows seen are kept by a 64-bit hash of their values, not by
        // the values themselves.
        var seen = new Dictionary<ulong, int>();
        var users = new HashSet<string>(StringComparer.Ordinal);
        var (first, last) = (DateTimeOffset.MaxValue, DateTimeOffset.MinValue);
        while (Csv(reader.Read, file, report))
        {
            report.RowsRead++;
            if (CsvReading.IsBlank(reader) || Row(reader, ordinal, seen, report) is not { } e)
            {
                continue;
            }

            var at = e.Timestamp.ToDateTimeOffset();
            if (at < first)
            {
                first = at;
                report.FirstEventAt = Cli.Time(e.Timestamp);
            }

            if (at > last)
            {
                last = at;
                report.LastEventAt = Cli.Time(e.Timestamp);
            }

            if (users.Add(e.UserId.Length > 0 ? e.UserId : e.AnonymousId))
            {
                report.Customers = users.Count;
            }

            yield return e;
        }
    }

    // A step of the CSV reader; a file it cannot go on with is an InvalidDataException naming the file and the row.
    private static T Csv<T>(Func<T> step, string file, ImportReport report)
    {
        try
        {
            return step();
        }
        catch (CsvFormatException ex)
        {
            throw new InvalidDataException($"{file}: {CsvReading.Describe(ex, report.RowsRead)}", ex); // what became of the rows before it is said once they are answered
        }
        catch (DecoderFallbackException ex)
        {
            throw CsvText.NotUtf8(file, $"row {report.RowsRead + 1} after the header (or one of the next few)", ex);
        }
    }

    // Each mapped field's column index in the file's header.
    private Dictionary<string, int> Ordinals(CsvDataReader reader, string file)
    {
        var header = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
        var ordinal = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (field, column) in _columns)
        {
            var index = header.FindIndex(h => string.Equals(h.Trim(), column, StringComparison.OrdinalIgnoreCase));
            if (index < 0)
            {
                throw new InvalidDataException($"{file} has no column '{column}' (mapped to {field}); its columns: {string.Join(", ", header)}");
            }

            ordinal[field] = index;
        }

        return ordinal;
    }

    // The event of the reader's current row, or null when the row is rejected (counted in the report by reason).
    private Event? Row(CsvDataReader reader, Dictionary<string, int> ordinal, Dictionary<ulong, int> seen, ImportReport report)
    {
        string Get(string field) => ordinal.TryGetValue(field, out var i) && i < reader.RowFieldCount ? reader.GetString(i).Trim() : "";

        var user = Get("user_id");
        var anonymous = Get("anonymous_id");
        var type = ordinal.ContainsKey("type") ? Get("type") : _constantType!;
        if (user.Length == 0 && anonymous.Length == 0)
        {
            report.Reject("no user id");
            return null;
        }

        if (type.Length == 0)
        {
            report.Reject("no event type");
            return null;
        }

        if (!(_timeFormat is null
            ? DateTimeOffset.TryParse(Get("timestamp"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            : DateTimeOffset.TryParseExact(Get("timestamp"), _timeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out at)))
        {
            report.Reject("time not readable");
            return null;
        }

        double? amount = null;
        if (Get("value") is { Length: > 0 } value)
        {
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed))
            {
                report.Reject("value not a number");
                return null;
            }

            amount = parsed;
        }

        var e = new Event
        {
            EventId = Get("event_id") is { Length: > 0 } id ? id : RowId(string.Join('\u001f', ordinal.Keys.Order(StringComparer.Ordinal).Select(f => f + "=" + Get(f))), seen),
            Type = type,
            UserId = user,
            AnonymousId = anonymous,
            Timestamp = Timestamp.FromDateTimeOffset(at),
            Currency = Get("currency"),
            OrderId = Get("order_id"),
            ProductId = Get("product_id"),
            Category = Get("category"),
            CampaignId = Get("campaign_id"),
            SearchQuery = Get("search_query"),
            Context = new EventContext
            {
                // A back-office export seldom has the web context the service asks of every event: unmapped, the
                // device and page type are "unknown" and the session is the user's day.
                Source = "segctl-import",
                Device = Get("device") is { Length: > 0 } device ? device : "unknown",
                PageType = Get("page_type") is { Length: > 0 } page ? page : "unknown",
                PagePath = Get("page_path"),
                Country = Get("country"),
                SessionId = Get("session_id") is { Length: > 0 } session ? session : $"{(user.Length > 0 ? user : anonymous)}-{at.UtcDateTime:yyyyMMdd}",
            },
        };
        if (amount is { } v)
        {
            e.Value = v;
        }

        return e;
    }

    // "csv-" and 24 hex digits of the SHA-256 of the row's mapped values and its occurrence among identical rows.
    private static string RowId(string values, Dictionary<ulong, int> seen)
    {
        var bytes = Encoding.UTF8.GetBytes(values);
        var key = BitConverter.ToUInt64(SHA256.HashData(bytes));
        var occurrence = seen[key] = seen.GetValueOrDefault(key) + 1;
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(values + "\u001e" + occurrence.ToString(CultureInfo.InvariantCulture)));
        return "csv-" + Convert.ToHexStringLower(hash)[..24];
    }

    // A format string .NET can write a date with (a typo such as "dd/MM/yyyy HH:mm:" still is; "%" alone is not).
    private static bool IsFormat(string format)
    {
        try
        {
            _ = new DateTimeOffset(2024, 3, 1, 10, 0, 0, TimeSpan.Zero).ToString(format, CultureInfo.InvariantCulture);
            return format.Length > 0;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static int Distance(string a, string b) => Quickenshtein.Levenshtein.GetDistance(a, b);
}
