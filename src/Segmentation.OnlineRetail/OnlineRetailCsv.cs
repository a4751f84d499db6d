using System.Globalization;
using Sylvan.Data.Csv;

namespace Segmentation.OnlineRetail;

/// <summary>One line of an invoice.</summary>
/// <param name="StockCode">The product's stock code.</param>
/// <param name="Description">The product's description.</param>
/// <param name="Quantity">Units (positive, also on a cancellation).</param>
/// <param name="UnitPrice">Price per unit in GBP.</param>
public sealed record InvoiceLine(string StockCode, string Description, int Quantity, double UnitPrice);

/// <summary>
/// One invoice of the dataset: a sale, or a cancellation (invoice number starting with "C") of the units
/// on its lines.
/// </summary>
/// <param name="Number">The invoice number.</param>
/// <param name="Customer">The customer id (the dataset's float form "12923.0" read as "12923").</param>
/// <param name="Country">The customer's country.</param>
/// <param name="At">The invoice time (UTC; the dataset's times are the retailer's, in London), shifted when the read asked for it.</param>
/// <param name="Lines">Its lines.</param>
public sealed record Invoice(string Number, string Customer, string Country, DateTime At, IReadOnlyList<InvoiceLine> Lines)
{
    /// <summary>True for a cancellation invoice.</summary>
    public bool IsCancellation => Number.StartsWith('C');

    /// <summary>The invoice's value: units times price over its lines, rounded to pence.</summary>
    public double Value => Math.Round(Lines.Sum(l => l.Quantity * l.UnitPrice), 2);
}

/// <summary>What a read of the CSV produced and rejected.</summary>
/// <param name="Invoices">Invoices in time order (ties by number).</param>
/// <param name="RowsRead">Data rows read (header excluded).</param>
/// <param name="RejectedRows">Rows rejected, by reason.</param>
/// <param name="Shift">Whole days added to every timestamp.</param>
public sealed record OnlineRetailRead(IReadOnlyList<Invoice> Invoices, int RowsRead, IReadOnlyDictionary<string, int> RejectedRows, TimeSpan Shift);

/// <summary>
/// Reads the UCI Online Retail dataset (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
/// CustomerID, Country) with Sylvan.Data.Csv and groups its rows into invoices. A row is rejected, and counted by
/// reason, when it has too few columns, no customer id, no invoice number or stock code, an
/// unparseable quantity, unit price or date, a date after the end a shift moves the file to, a price that is not a positive finite number, a quantity beyond a million units, a non-positive quantity
/// on a sale or a non-negative one on a cancellation. A malformed quoted field stops the read with an error naming
/// its row (where the next row starts is then unknown), and nothing of the file is used. Rows starting with
/// <c>#</c> are rows like any other. Dates are read as <c>yyyy-MM-dd HH:mm:ss</c>,
/// <c>yyyy-MM-dd HH:mm</c> or <c>M/d/yyyy H:mm</c> (the dataset's published forms; a file whose dates are written day
/// first is refused), as the UK retailer's local
/// time (London: GMT in winter, BST in summer) and converted to UTC; a byte order mark before the header is ignored.
/// A shift moves the local dates by whole days and keeps the local times, so a purchase made at 14:00 stays at 14:00 in
/// London on whichever side of a clock change it lands.
/// </summary>
public static class OnlineRetailCsv
{
    /// <summary>The header the file must start with.</summary>
    public const string Header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country";

    private static readonly string[] Columns = Header.Split(',');

    private static readonly string[] DateFormats = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm", "M/d/yyyy H:mm"];

    /// <summary>Reads <paramref name="csv"/> (header first) into invoices.</summary>
    /// <param name="csv">The CSV text.</param>
    /// <param name="endsAt">When set, timestamps are shifted by whole days so the last invoice falls on the day (UTC) before this instant.</param>
    /// <exception cref="InvalidDataException">The text does not start with the dataset's header (its eight names in order, in any case), or is not valid CSV (<see cref="CsvReading.Malformed"/>).</exception>
    public static OnlineRetailRead Read(TextReader csv, DateTimeOffset? endsAt = null)
    {
        ArgumentNullException.ThrowIfNull(csv);
        var rejected = new SortedDictionary<string, int>(StringComparer.Ordinal);
        void Reject(string reason) => rejected[reason] = rejected.GetValueOrDefault(reason) + 1;

        var rows = new List<Row>();
        var read = 0;
        (int Row, string Text)? dayFirst = null;
        try
        {
            using var reader = CsvDataReader.Create(csv, CsvReading.Options(hasHeaders: false));
            // Columns are read by position: every name is checked, so a re-export with its columns in another order is
            // refused rather than read as other fields (a country taken for the customer, a description for the product).
            if (!reader.Read() || reader.RowFieldCount < 8 || !Columns.Select((name, i) => i == 0 ? reader.GetString(i).TrimStart('\uFEFF') : reader.GetString(i))
                    .Select(c => c.Trim()).SequenceEqual(Columns, StringComparer.OrdinalIgnoreCase))
            {
                var found = reader.RowFieldCount > 0 ? string.Join(",", Enumerable.Range(0, Math.Min(reader.RowFieldCount, 16)).Select(i => reader.GetString(i).Trim())) : "";
                throw new InvalidDataException($"not an Online Retail CSV: expected the header {Header}, found {(found.Length > 200 ? found[..200] + "…" : found)}");
            }

            var fields = new string[8];
            while (reader.Read())
            {
                read++;
                if (CsvReading.IsBlank(reader))
                {
                    continue; // no row: neither taken nor rejected
                }

                if (reader.RowFieldCount < 8)
                {
                    Reject("too few columns");
                    continue;
                }

                for (var i = 0; i < fields.Length; i++)
                {
                    fields[i] = reader.GetString(i);
                }

                if (Parse(fields, out var reason) is { } row)
                {
                    if (endsAt is { } before && row.At > before.UtcDateTime.AddDays(1))
                    {
                        // A date past the end the import shifts to (a typo such as 2101): the shift would be taken from it
                        // and move every other invoice decades back.
                        Reject("dated after the import's end");
                        continue;
                    }

                    rows.Add(row);
                }
                else
                {
                    if (reason == UnparseableDate && dayFirst is null && DayFirst(fields[4].Trim()))
                    {
                        dayFirst = (read, fields[4].Trim());
                    }

                    Reject(reason);
                }
            }
        }
        catch (CsvFormatException ex)
        {
            // The reader cannot get past a malformed quoted field (nor tell where the next row starts).
            throw CsvReading.Malformed(ex, read);
        }

        if (dayFirst is var (at, text))
        {
            // Excel writes the dataset's dates day first under a UK date setting: read month first, every date up to the
            // 12th of its month would have its day and month swapped, and the invoices' ids would keep the wrong dates.
            throw new InvalidDataException(
                $"row {at} after the header: the date '{text}' is written day first; dates are read month first ({DateFormats[2]}, as the dataset is published) or as {DateFormats[0]}: " +
                "save the file with one of those (the day-first dates read month first would swap the day and month of every date up to the 12th)");
        }

        var shift = TimeSpan.Zero;
        if (endsAt is { } end && rows.Count > 0)
        {
            var last = rows.Max(r => r.At);
            shift = TimeSpan.FromDays(Math.Floor((end.UtcDateTime.Date.AddDays(-1) - last.Date).TotalDays));
        }

        var london = London;

        var invoices = rows
            .GroupBy(r => r.Invoice, StringComparer.Ordinal)
            .Select(g =>
            {
                var first = g.First();
                return new Invoice(
                    first.Invoice,
                    first.Customer,
                    first.Country,
                    LondonToUtc(g.Min(r => r.At) + shift, london),
                    [.. g.Select(r => new InvoiceLine(r.StockCode, r.Description, Math.Abs(r.Quantity), r.UnitPrice))]);
            })
            .OrderBy(i => i.At)
            .ThenBy(i => "uci-" + i.Number, StringComparer.Ordinal)
            .ToList();
        return new OnlineRetailRead(invoices, read, rejected, shift);
    }

    private static Row? Parse(string[] f, out string reason)
    {
        reason = "";
        var invoice = f[0].Trim();
        var customer = f[6].Trim();
        if (customer.Length == 0)
        {
            reason = "missing customer id";
            return null;
        }

        // CustomerID is written as a float ("12923.0").
        if (customer.EndsWith(".0", StringComparison.Ordinal))
        {
            customer = customer[..^2];
        }

        if (invoice.Length == 0 || f[1].Trim().Length == 0)
        {
            reason = "missing invoice or stock code";
            return null;
        }

        if (!int.TryParse(f[3].Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var quantity))
        {
            reason = "unparseable quantity";
            return null;
        }

        if (!double.TryParse(f[5].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var price))
        {
            reason = "unparseable unit price";
            return null;
        }

        if (!DateTime.TryParseExact(f[4].Trim(), DateFormats, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at))
        {
            reason = UnparseableDate;
            return null;
        }

        var cancellation = invoice.StartsWith('C');
        if (price <= 0 || !double.IsFinite(price))
        {
            reason = "non-positive unit price";
            return null;
        }

        if (quantity is < -MaxQuantity or > MaxQuantity)
        {
            reason = "quantity beyond a million units";
            return null;
        }

        if (!cancellation && quantity <= 0)
        {
            reason = "non-positive quantity on a sale";
            return null;
        }

        if (cancellation && quantity >= 0)
        {
            reason = "non-negative quantity on a cancellation";
            return null;
        }

        return new Row(invoice, f[1].Trim(), f[2].Trim(), quantity, at, price, customer, f[7].Trim());
    }

    private const string UnparseableDate = "unparseable date";

    // A date in the month-first form's layout whose first number can only be a day ("13/12/2010 09:00").
    private static bool DayFirst(string date) =>
        date.Split('/') is [var first, var second, _] && int.TryParse(first, CultureInfo.InvariantCulture, out var day) && day is > 12 and <= 31
        && int.TryParse(second, CultureInfo.InvariantCulture, out var month) && month is >= 1 and <= 12;

    // The most units one order line may hold (an event's line has the same limit); beyond it no line is made, and a
    // cancellation's count is never negated past what an int holds.
    private const int MaxQuantity = 1_000_000;

    // The retailer's clock: the system's Europe/London, or (on a machine without time zone data) the same rules since
    // 1996, the last Sundays of March and October at 01:00 UTC, which cover the dataset (2010-2011) and any shift of it.
    private static TimeZoneInfo London
    {
        get
        {
            try
            {
                return TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
            }
            catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException)
            {
                return LondonRules;
            }
        }
    }

    /// <summary>Europe/London's offsets since 1996, without the system's time zone data.</summary>
    internal static readonly TimeZoneInfo LondonRules = TimeZoneInfo.CreateCustomTimeZone(
        "Europe/London (built in)",
        TimeSpan.Zero,
        "London",
        "GMT",
        "BST",
        [
            TimeZoneInfo.AdjustmentRule.CreateAdjustmentRule(
                new DateTime(1996, 1, 1),
                DateTime.MaxValue.Date,
                TimeSpan.FromHours(1),
                TimeZoneInfo.TransitionTime.CreateFloatingDateRule(new DateTime(1, 1, 1, 1, 0, 0), 3, 5, DayOfWeek.Sunday),
                TimeZoneInfo.TransitionTime.CreateFloatingDateRule(new DateTime(1, 1, 1, 2, 0, 0), 10, 5, DayOfWeek.Sunday)),
        ]);

    // A London wall-clock time in UTC. A time the spring clock change skips (01:00-02:00 on its Sunday) is read an hour
    // later, as a clock that was not yet put forward would show it; one the autumn change repeats is read as GMT.
    internal static DateTime LondonToUtc(DateTime local, TimeZoneInfo london)
    {
        var wall = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        if (london.IsInvalidTime(wall))
        {
            wall = wall.AddHours(1);
        }

        return TimeZoneInfo.ConvertTimeToUtc(wall, london);
    }

    private sealed record Row(string Invoice, string StockCode, string Description, int Quantity, DateTime At, double UnitPrice, string Customer, string Country);
}
