using System.Globalization;
using Microsoft.VisualBasic.FileIO;
using Segmentation.Core.Events;

namespace Segmentation.Core.Application.Import;

/// <summary>What an import read, produced and rejected.</summary>
public sealed class ImportReport
{
    /// <summary>Data rows read (header excluded).</summary>
    public int RowsRead { get; set; }

    /// <summary>Rows rejected, by reason.</summary>
    public SortedDictionary<string, int> RejectedRows { get; } = new(StringComparer.Ordinal);

    /// <summary>Purchase events built (one per invoice).</summary>
    public int Purchases { get; set; }

    /// <summary>Refund events built (one per cancellation invoice).</summary>
    public int Refunds { get; set; }

    /// <summary>Distinct customers with at least one event.</summary>
    public int Customers { get; set; }

    /// <summary>The shift applied to the dataset's timestamps.</summary>
    public TimeSpan Shift { get; set; }

    internal void Reject(string reason) => RejectedRows[reason] = RejectedRows.GetValueOrDefault(reason) + 1;
}

/// <summary>
/// Turns the UCI Online Retail dataset (InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
/// UnitPrice, CustomerID, Country) into events: each invoice becomes one <c>purchase</c> with its
/// lines; each cancellation invoice (InvoiceNo starting with "C") becomes one <c>refund</c> of the
/// cancelled amount. Rows without a customer id, with a non-positive price, or with a non-positive
/// quantity on a non-cancellation are rejected and counted by reason.
/// </summary>
/// <remarks>
/// The dataset has no device or session; events carry source <c>uci-online-retail</c>, device
/// <c>unknown</c>, the invoice number as session and page type <c>checkout</c>. Timestamps can be
/// shifted by whole days so that the data ends just before "now" (the dataset ends in December 2011).
/// </remarks>
public static class OnlineRetailImport
{
    /// <summary>Source name carried by imported events.</summary>
    public const string Source = "uci-online-retail";

    /// <summary>Reads the CSV and builds events in time order.</summary>
    /// <param name="csv">The CSV text, header first.</param>
    /// <param name="endsAt">When set, timestamps are shifted by whole days so the last invoice falls on the day before this instant.</param>
    /// <param name="report">What was read and rejected.</param>
    public static List<BehaviourEvent> ReadEvents(TextReader csv, DateTimeOffset? endsAt, out ImportReport report)
    {
        report = new ImportReport();
        var rows = new List<Row>();
        using (var parser = new TextFieldParser(csv) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true })
        {
            parser.SetDelimiters(",");
            var header = parser.ReadFields();
            if (header is null || header.Length < 8 || header[0] != "InvoiceNo")
            {
                throw new InvalidDataException("not an Online Retail CSV: expected the header InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country");
            }

            while (!parser.EndOfData)
            {
                string[]? f;
                try
                {
                    f = parser.ReadFields();
                }
                catch (MalformedLineException)
                {
                    report.RowsRead++;
                    report.Reject("malformed CSV line");
                    continue;
                }

                if (f is null)
                {
                    continue;
                }

                report.RowsRead++;
                if (f.Length < 8)
                {
                    report.Reject("too few columns");
                    continue;
                }

                var row = Parse(f, out var reason);
                if (row is null)
                {
                    report.Reject(reason!);
                    continue;
                }

                rows.Add(row);
            }
        }

        var shift = TimeSpan.Zero;
        if (endsAt is { } end && rows.Count > 0)
        {
            var last = rows.Max(r => r.At);
            shift = TimeSpan.FromDays(Math.Floor((end.UtcDateTime.Date.AddDays(-1) - last.Date).TotalDays));
        }

        report.Shift = shift;
        var events = new List<BehaviourEvent>();
        foreach (var invoice in rows.GroupBy(r => r.Invoice, StringComparer.Ordinal))
        {
            var first = invoice.First();
            var cancellation = first.Invoice.StartsWith('C');
            var lines = invoice
                .Select(r => new OrderLine(r.StockCode, r.Description, null, Math.Abs(r.Quantity), r.UnitPrice))
                .ToList();
            var value = Math.Round(lines.Sum(l => l.Quantity * l.UnitPrice), 2);
            events.Add(new BehaviourEvent
            {
                EventId = $"uci-{first.Invoice}",
                Type = cancellation ? EventTypes.Refund : EventTypes.Purchase,
                UserId = first.Customer,
                Timestamp = new DateTimeOffset(invoice.Min(r => r.At) + shift, TimeSpan.Zero),
                Context = new EventContext(Source, "unknown", first.Invoice, "checkout", Country: first.Country),
                Value = value,
                Currency = "GBP",
                OrderId = first.Invoice,
                Lines = lines,
            });
            if (cancellation)
            {
                report.Refunds++;
            }
            else
            {
                report.Purchases++;
            }
        }

        report.Customers = events.Select(e => e.UserId).Distinct(StringComparer.Ordinal).Count();
        events.Sort((a, b) => a.Timestamp.CompareTo(b.Timestamp) is var c && c != 0 ? c : string.CompareOrdinal(a.EventId, b.EventId));
        return events;
    }

    private static Row? Parse(string[] f, out string? reason)
    {
        reason = null;
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

        if (!int.TryParse(f[3], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var quantity) ||
            !double.TryParse(f[5], NumberStyles.Float, CultureInfo.InvariantCulture, out var price) ||
            !DateTime.TryParseExact(f[4].Trim(), ["yyyy-MM-dd HH:mm:ss", "M/d/yyyy H:mm"], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
        {
            reason = "unparseable quantity, price or date";
            return null;
        }

        var cancellation = invoice.StartsWith('C');
        if (price <= 0)
        {
            reason = "non-positive unit price";
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

    private sealed record Row(string Invoice, string StockCode, string Description, int Quantity, DateTime At, double UnitPrice, string Customer, string Country);
}
