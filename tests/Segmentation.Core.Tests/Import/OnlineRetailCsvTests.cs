using System.Globalization;
using Segmentation.OnlineRetail;

namespace Segmentation.Core.Tests.Import;

/// <summary>The one Online Retail reader both the demo import and segctl import use.</summary>
public sealed class OnlineRetailCsvTests
{
    private const string Header = OnlineRetailCsv.Header + "\n";

    private static OnlineRetailRead Read(string rows, DateTimeOffset? endsAt = null) => OnlineRetailCsv.Read(new StringReader(Header + rows), endsAt);

    [Fact]
    public void Rows_of_one_invoice_become_one_invoice_and_a_cancellation_counts_positive_units()
    {
        var read = Read("""
            536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            536365,71053,"WHITE METAL LANTERN, LARGE",6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
            C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom
            """);

        Assert.Equal(3, read.RowsRead);
        Assert.Empty(read.RejectedRows);
        var sale = read.Invoices[0];
        Assert.Equal(("536365", "17850", false, 2), (sale.Number, sale.Customer, sale.IsCancellation, sale.Lines.Count));
        Assert.Equal("WHITE METAL LANTERN, LARGE", sale.Lines[1].Description); // a quoted comma stays in the field
        Assert.Equal(Math.Round((6 * 2.55) + (6 * 3.39), 2), sale.Value);
        var refund = read.Invoices[1];
        Assert.True(refund.IsCancellation);
        Assert.Equal(1, refund.Lines[0].Quantity);
    }

    [Theory]
    [InlineData("2010-12-01 08:26:00")]
    [InlineData("2010-12-01 08:26")]
    [InlineData("12/1/2010 8:26")]
    public void Every_published_date_form_is_read_as_london_time_in_utc(string date)
    {
        var read = Read($"536365,85123A,HEART,6,{date},2.55,17850.0,United Kingdom\n");

        var invoice = Assert.Single(read.Invoices);
        Assert.Equal(new DateTime(2010, 12, 1, 8, 26, 0, DateTimeKind.Utc), invoice.At);
        Assert.Equal(DateTimeKind.Utc, invoice.At.Kind);
    }

    [Fact]
    public void A_byte_order_mark_before_the_header_is_ignored()
    {
        var read = OnlineRetailCsv.Read(new StringReader("\uFEFF" + Header + "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"));

        Assert.Single(read.Invoices);
    }

    [Fact]
    public void Bad_rows_are_rejected_by_reason_and_the_rest_is_read()
    {
        var read = Read("""
            536365,85123A,HEART,6,2010-12-01 08:26:00,NaN,17850.0,United Kingdom
            536366,,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            536367,85123A,HEART,6,2010-12-01 08:26:00,2.55,,United Kingdom
            536368,85123A,HEART,0,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            C536369,85123A,HEART,2,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            536370,85123A,HEART,6,yesterday,2.55,17850.0,United Kingdom
            536371,85123A
            536372,85123A,HEART,6,2010-12-01 08:26:00,-1,17850.0,United Kingdom
            536373,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            """);

        Assert.Equal(9, read.RowsRead);
        Assert.Equal(2, read.RejectedRows["non-positive unit price"]); // NaN and -1
        Assert.Equal(1, read.RejectedRows["missing invoice or stock code"]);
        Assert.Equal(1, read.RejectedRows["missing customer id"]);
        Assert.Equal(1, read.RejectedRows["non-positive quantity on a sale"]);
        Assert.Equal(1, read.RejectedRows["non-negative quantity on a cancellation"]);
        Assert.Equal(1, read.RejectedRows["unparseable date"]);
        Assert.Equal(1, read.RejectedRows["too few columns"]);
        Assert.Equal("536373", Assert.Single(read.Invoices).Number);
    }

    [Fact]
    public void A_file_with_dates_written_day_first_is_refused_before_anything_is_read_wrong()
    {
        // Regression (review): Excel under a UK date setting writes 01/12/2010; read month first it became 12 January, and
        // the invoice ids kept the wrong date for good (a corrected file's invoices were duplicates).
        var refused = Assert.Throws<InvalidDataException>(() => Read("""
            536365,85123A,HEART,6,01/12/2010 08:26,2.55,17850.0,United Kingdom
            536366,85123A,HEART,6,13/12/2010 09:00,2.55,17850.0,United Kingdom
            """));
        Assert.Contains("row 2 after the header: the date '13/12/2010 09:00' is written day first", refused.Message, StringComparison.Ordinal);

        var monthFirst = Read("""
            536365,85123A,HEART,6,12/1/2010 08:26,2.55,17850.0,United Kingdom
            536366,85123A,HEART,abc,12/13/2010 09:00,2.55,17850.0,United Kingdom
            536367,85123A,HEART,6,12/13/2010 09:00,x,17850.0,United Kingdom
            """);
        Assert.Equal(1, monthFirst.RejectedRows["unparseable quantity"]);
        Assert.Equal(1, monthFirst.RejectedRows["unparseable unit price"]);
    }

    [Fact]
    public void A_date_past_the_end_of_a_shift_is_rejected_and_does_not_move_the_rest()
    {
        // Regression (review): the shift was taken from the latest date, so a typo of 2101 moved every other invoice about
        // 90 years back (all refused by the server), and a year of 9999 threw out of the reader.
        foreach (var typo in new[] { "2101-12-09 12:50:00", "9999-12-09 12:50:00" })
        {
            var read = OnlineRetailCsv.Read(new StringReader(OnlineRetailCsv.Header + $"""

                581587,22613,PACK,12,2011-12-09 12:50:00,0.85,12680.0,France
                581588,22613,PACK,12,{typo},0.85,12680.0,France
                """), endsAt: new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero));

            Assert.Equal(1, read.RejectedRows["dated after the import's end"]);
            var invoice = Assert.Single(read.Invoices);
            Assert.Equal(new DateTime(2026, 5, 31, 11, 50, 0, DateTimeKind.Utc), invoice.At); // 12:50 BST
        }
    }

    [Fact]
    public void A_quantity_no_order_line_can_hold_is_a_rejected_row()
    {
        // Regression: -2147483648 on a cancellation passed every check and its line was made with Math.Abs of it,
        // which throws: the whole read (an import, a demo server's start) failed on one row.
        var read = Read("""
            C536379,D,Discount,-2147483648,2010-12-01 09:41:00,27.5,14527.0,United Kingdom
            536380,22961,JAM,2000000,2010-12-01 09:41:00,1.45,14527.0,United Kingdom
            536381,22961,JAM,12,2010-12-01 09:41:00,1.45,14527.0,United Kingdom

            """);

        Assert.Equal(2, read.RejectedRows["quantity beyond a million units"]);
        Assert.Single(read.Invoices);
    }

    [Fact]
    public void A_malformed_quoted_field_stops_the_read_with_an_error_naming_its_row()
    {
        // Regression: the reader cannot go on after a malformed quoted field; the next read threw an
        // InvalidOperationException no caller expected (segctl printed a stack trace, nothing was imported).
        var ex = Assert.Throws<InvalidDataException>(() => Read("""
            536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            536366,85123A,"HEART"X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            536367,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            """));

        Assert.StartsWith("row 2 after the header is not valid CSV", ex.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was imported", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_row_starting_with_a_hash_is_a_row_and_a_long_field_is_read()
    {
        // Regression: the CSV library's default took '#' for a comment and skipped such rows without counting them,
        // and refused a record past 16,384 characters.
        var description = new string('x', 20_000);
        var read = Read($"""
            #536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            536366,85123A,{description},6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
            """);

        Assert.Equal(2, read.RowsRead);
        Assert.Equal(["#536365", "536366"], read.Invoices.Select(i => i.Number));
        Assert.Equal(description, read.Invoices[1].Lines[0].Description);
    }

    [Fact]
    public void A_file_without_the_header_is_refused()
    {
        var ex = Assert.Throws<InvalidDataException>(() => OnlineRetailCsv.Read(new StringReader("a,b,c\n1,2,3\n")));

        Assert.Contains(OnlineRetailCsv.Header, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_header_with_the_columns_in_another_order_is_refused_and_its_case_does_not_matter()
    {
        // Regression (review): only the first name was checked and columns were read by position: a re-export with
        // Country before CustomerID imported every row for a customer named "United Kingdom".
        const string Row = "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,United Kingdom,17850.0\n";
        var ex = Assert.Throws<InvalidDataException>(() => OnlineRetailCsv.Read(new StringReader("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country,CustomerID\n" + Row)));
        Assert.Contains(OnlineRetailCsv.Header, ex.Message, StringComparison.Ordinal);
        Assert.Contains("found InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country,CustomerID", ex.Message, StringComparison.Ordinal);

        var read = OnlineRetailCsv.Read(new StringReader(" invoiceno , STOCKCODE,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"));
        Assert.Equal("17850", Assert.Single(read.Invoices).Customer);
    }

    [Fact]
    public void Blank_lines_are_no_rows_and_are_not_rejected()
    {
        // Regression (review): a blank line (a gap, or a newline too many at the end) was read as a record of one empty
        // field and reported as a row rejected for "too few columns".
        var read = Read("536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n\n536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n\n\n");

        Assert.Empty(read.RejectedRows);
        Assert.Equal(["536365", "536366"], read.Invoices.Select(i => i.Number));
    }

    [Fact]
    public void Shifting_moves_the_last_invoice_to_the_day_before_the_end_by_whole_days()
    {
        var end = new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

        var read = Read("536365,85123A,HEART,6,2011-12-09 12:50:00,2.55,17850.0,United Kingdom\n", end);

        // 12:50 in London in December (GMT) moves to 12:50 in London on 31 May (BST): 11:50 UTC.
        Assert.Equal(new DateTime(2026, 5, 31, 11, 50, 0, DateTimeKind.Utc), Assert.Single(read.Invoices).At);
        Assert.Equal(0, read.Shift.Ticks % TimeSpan.TicksPerDay);
    }

    [Theory]
    [InlineData("2011-06-15 14:00:00", "2011-06-15 13:00")] // British Summer Time
    [InlineData("2011-12-09 12:50:00", "2011-12-09 12:50")] // GMT
    [InlineData("2011-03-27 01:30:00", "2011-03-27 01:30")] // skipped by the spring change (01:00 GMT to 02:00 BST): read as 02:30 BST
    [InlineData("2011-10-30 01:30:00", "2011-10-30 01:30")] // shown twice by the autumn change: read as GMT
    public void A_london_time_is_converted_by_the_clock_in_force_then(string written, string utc)
    {
        var read = Read($"556000,85123A,HEART,6,{written},2.55,17850.0,United Kingdom\n");

        Assert.Equal(DateTime.Parse(utc + "Z", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal), Assert.Single(read.Invoices).At);
    }

    [Fact]
    public void A_shift_across_a_clock_change_keeps_the_london_time_of_day()
    {
        // A summer purchase at 14:00 BST shifted into December is still made at 14:00 in London, now GMT.
        var read = Read("556000,85123A,HEART,6,2011-06-15 14:00:00,2.55,17850.0,United Kingdom\n", new DateTimeOffset(2026, 12, 2, 9, 0, 0, TimeSpan.Zero));

        Assert.Equal(new DateTime(2026, 12, 1, 14, 0, 0, DateTimeKind.Utc), Assert.Single(read.Invoices).At);
    }

    [Fact]
    public void The_built_in_london_rules_agree_with_the_system_zone_from_2010_to_2030()
    {
        var system = TimeZoneInfo.FindSystemTimeZoneById("Europe/London");
        var disagreements = new List<DateTime>();
        for (var local = new DateTime(2010, 1, 1); local < new DateTime(2030, 1, 1); local = local.AddMinutes(30))
        {
            if (OnlineRetailCsv.LondonToUtc(local, OnlineRetailCsv.LondonRules) != OnlineRetailCsv.LondonToUtc(local, system))
            {
                disagreements.Add(local);
            }
        }

        Assert.Empty(disagreements);
    }
}
