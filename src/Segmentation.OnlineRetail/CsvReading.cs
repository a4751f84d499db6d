using Sylvan.Data.Csv;

namespace Segmentation.OnlineRetail;

/// <summary>
/// How our CSV readers (the Online Retail import and <c>segctl import</c>'s mapped files) read a file with Sylvan.Data.Csv:
/// strict RFC 4180 quoting, no comment lines (an order number such as <c>#1001</c> starts many exports' rows), and
/// records up to <see cref="MaxRecordChars"/> characters.
/// </summary>
public static class CsvReading
{
    /// <summary>The longest record read (a long page path or description fits; a quote never closed does not).</summary>
    public const int MaxRecordChars = 1 << 20;

    /// <summary>True for a blank line (read as a record of one empty field: a trailing newline too many, a gap between rows), which is no row.</summary>
    public static bool IsBlank(CsvDataReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.RowFieldCount <= 1 && string.IsNullOrWhiteSpace(reader.RowFieldCount == 0 ? "" : reader.GetString(0));
    }

    /// <summary>The reader's options.</summary>
    /// <param name="hasHeaders">Whether the first record names the columns.</param>
    public static CsvDataReaderOptions Options(bool hasHeaders) => new()
    {
        HasHeaders = hasHeaders,
        Comment = '\0', // the library's default ('#') would skip such rows without a word; no export writes a NUL
        BufferSize = 1 << 14,
        MaxBufferSize = MaxRecordChars,
    };

    /// <summary>
    /// The error for a file the reader cannot go on with (a quoted field not closed properly, a record past
    /// <see cref="MaxRecordChars"/>, no header): the reader cannot tell where the next row starts, so nothing of the file
    /// is used (by a reader that reads the whole file before sending any of it). <paramref name="rowsRead"/> counts the
    /// rows before it after the header.
    /// </summary>
    public static InvalidDataException Malformed(CsvFormatException ex, int rowsRead) =>
        new($"{Describe(ex, rowsRead)}; {Consequence(0)}", ex);

    /// <summary>What is wrong with the file at the row after <paramref name="rowsRead"/> rows (see <see cref="Malformed"/>).</summary>
    public static string Describe(CsvFormatException ex, int rowsRead)
    {
        ArgumentNullException.ThrowIfNull(ex);
        return ex switch
        {
            CsvMissingHeadersException => "the file is empty: expected a header row",
            CsvRecordTooLargeException => $"row {rowsRead + 1} after the header is longer than {MaxRecordChars:N0} characters (a quote never closed?)",
            _ => $"row {rowsRead + 1} after the header is not valid CSV ({ex.Message.TrimEnd('.')})",
        };
    }

    /// <summary>What became of the file's earlier rows when it stopped, <paramref name="taken"/> events of them taken by the service (applied, or there already).</summary>
    public static string Consequence(long taken) => taken == 0
        ? "nothing was imported: fix the file and import it again"
        : $"the {taken:N0} events before it that the service took stay imported: fix the file and import it again (they are not counted twice)";
}
