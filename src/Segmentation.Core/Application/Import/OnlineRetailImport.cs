using Segmentation.Core.Events;
using Segmentation.OnlineRetail;

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

}

/// <summary>
/// Turns the UCI Online Retail dataset, as <see cref="OnlineRetailCsv"/> reads it, into events: each invoice
/// becomes one <c>purchase</c> with its lines; each cancellation invoice (InvoiceNo starting with "C") becomes
/// one <c>refund</c> of the cancelled amount. Rejected rows are counted by reason in the report.
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

    /// <summary>Reads the CSV (<see cref="OnlineRetailCsv"/>) and builds events in time order.</summary>
    /// <param name="csv">The CSV text, header first.</param>
    /// <param name="endsAt">When set, timestamps are shifted by whole days so the last invoice falls on the day before this instant.</param>
    /// <param name="report">What was read and rejected.</param>
    public static List<BehaviourEvent> ReadEvents(TextReader csv, DateTimeOffset? endsAt, out ImportReport report)
    {
        var read = OnlineRetailCsv.Read(csv, endsAt);
        report = new ImportReport { RowsRead = read.RowsRead, Shift = read.Shift };
        foreach (var (reason, count) in read.RejectedRows)
        {
            report.RejectedRows[reason] = count;
        }

        var events = new List<BehaviourEvent>(read.Invoices.Count);
        foreach (var invoice in read.Invoices)
        {
            events.Add(new BehaviourEvent
            {
                EventId = $"uci-{invoice.Number}",
                Type = invoice.IsCancellation ? EventTypes.Refund : EventTypes.Purchase,
                UserId = invoice.Customer,
                Timestamp = new DateTimeOffset(invoice.At, TimeSpan.Zero),
                Context = new EventContext(Source, "unknown", invoice.Number, "checkout", Country: invoice.Country),
                Value = invoice.Value,
                Currency = "GBP",
                OrderId = invoice.Number,
                Lines = [.. invoice.Lines.Select(l => new OrderLine(l.StockCode, l.Description, null, l.Quantity, l.UnitPrice))],
            });
            if (invoice.IsCancellation)
            {
                report.Refunds++;
            }
            else
            {
                report.Purchases++;
            }
        }

        report.Customers = events.Select(e => e.UserId).Distinct(StringComparer.Ordinal).Count();
        return events;
    }
}
