using System.Globalization;
using System.Text;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Scoring;

/// <summary>
/// Recomputes orders, revenue, last purchase and the 1–5 RFM scores for every customer of the UCI
/// sample with plain code (its own CSV reader, its own quintile scoring), and checks the service's
/// values are identical.
/// </summary>
public class RfmIndependentTests
{
    private sealed record Customer(string Id)
    {
        public HashSet<string> Orders { get; } = [];

        public decimal Revenue { get; set; }

        public DateTime Last { get; set; }
    }

    [Fact]
    public void Service_rfm_equals_an_independent_calculation_for_every_customer()
    {
        var customers = ReadCustomers();
        var buyers = customers.Values.Where(c => c.Orders.Count > 0).ToList();
        int Score<T>(IEnumerable<T> population, T value)
            where T : IComparable<T>
        {
            var all = population.ToList();
            var lower = all.Count(v => v.CompareTo(value) < 0);
            return Math.Min(5, 1 + (5 * lower / all.Count));
        }

        using var world = new TestWorld();
        world.ImportDemo();

        Assert.Equal(buyers.Count, world.Rfm.Current.Customers);
        foreach (var c in buyers)
        {
            var p = world.Store.Get(c.Id)!;
            Assert.Equal(c.Orders.Count, p.Orders);
            Assert.Equal((double)c.Revenue, p.Revenue, 6);
            Assert.Equal(c.Last, new DateTime(p.LastPurchaseTicks, DateTimeKind.Utc));
            var expected = (
                Score(buyers.Select(b => b.Last), c.Last),
                Score(buyers.Select(b => b.Orders.Count), c.Orders.Count),
                Score(buyers.Select(b => b.Revenue), c.Revenue));
            var actual = (world.Rfm.Current.Recency(p), world.Rfm.Current.Frequency(p), world.Rfm.Current.Monetary(p));
            Assert.True(expected == actual, $"customer {c.Id}: expected RFM {expected}, service {actual}");
        }
    }

    private static Dictionary<string, Customer> ReadCustomers()
    {
        var customers = new Dictionary<string, Customer>();
        var invoiceTimes = new Dictionary<string, DateTime>();
        var invoiceValues = new Dictionary<string, decimal>();
        var invoiceCustomer = new Dictionary<string, string>();
        var london = TimeZoneInfo.FindSystemTimeZoneById("Europe/London"); // the retailer's clock
        foreach (var line in File.ReadLines(TestWorld.DemoCsvPath).Skip(1))
        {
            var f = SplitCsv(line);
            var (invoice, quantity, date, price, id) = (f[0], int.Parse(f[3], CultureInfo.InvariantCulture), TimeZoneInfo.ConvertTimeToUtc(DateTime.Parse(f[4], CultureInfo.InvariantCulture), london), decimal.Parse(f[5], CultureInfo.InvariantCulture), f[6].Replace(".0", "", StringComparison.Ordinal));
            var cancel = invoice.StartsWith('C');
            if (id.Length == 0 || price <= 0 || (!cancel && quantity <= 0) || (cancel && quantity >= 0))
            {
                continue;
            }

            invoiceCustomer[invoice] = id;
            invoiceTimes[invoice] = invoiceTimes.TryGetValue(invoice, out var t) && t < date ? t : date;
            invoiceValues[invoice] = invoiceValues.GetValueOrDefault(invoice) + (Math.Abs(quantity) * price);
        }

        foreach (var (invoice, id) in invoiceCustomer)
        {
            if (!customers.TryGetValue(id, out var c))
            {
                customers[id] = c = new Customer(id);
            }

            var value = Math.Round(invoiceValues[invoice], 2);
            if (invoice.StartsWith('C'))
            {
                c.Revenue -= value;
            }
            else
            {
                c.Orders.Add(invoice);
                c.Revenue += value;
                c.Last = invoiceTimes[invoice] > c.Last ? invoiceTimes[invoice] : c.Last;
            }
        }

        return customers;
    }

    private static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var current = new StringBuilder();
        var quoted = false;
        foreach (var ch in line)
        {
            if (ch == '"')
            {
                quoted = !quoted;
            }
            else if (ch == ',' && !quoted)
            {
                fields.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(ch);
            }
        }

        fields.Add(current.ToString());
        return fields;
    }
}
