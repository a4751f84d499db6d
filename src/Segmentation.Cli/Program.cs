using System.CommandLine;
using Segmentation.Cli;

var address = new Option<string>("--address")
{
    Description = "Service address (env SEGCTL_ADDRESS; default " + Cli.DefaultAddress + ")",
    Recursive = true,
    DefaultValueFactory = _ => Cli.AddressFromEnvironment(),
};
var json = new Option<bool>("--json") { Description = "Print JSON instead of plain text", Recursive = true };

var root = new RootCommand("segctl: command-line client of the Segmentation gRPC service");
root.Options.Add(address);
root.Options.Add(json);

// import
var csv = new Argument<FileInfo>("csv") { Description = "UCI Online Retail CSV (InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country)" };
var shift = new Option<bool>("--shift-to-now")
{
    Description = "Shift timestamps by whole days so the last invoice falls on yesterday (UTC); on by default",
    DefaultValueFactory = _ => true,
};
var noShift = new Option<bool>("--no-shift") { Description = "Keep the dataset's original timestamps" };
var rfmWait = new Option<int>("--rfm-wait")
{
    Description = "Seconds to wait for the server's RFM model to cover the imported customers (0 skips the RFM report)",
    DefaultValueFactory = _ => 30,
};
var import = new Command("import", "Import the UCI Online Retail CSV through ProfileService.StreamEvents and print a report") { csv, shift, noShift, rfmWait };
import.SetAction((parse, ct) => Cli.RunAsync(() => ImportCommand.RunAsync(
    parse.GetValue(address)!,
    parse.GetValue(csv)!,
    parse.GetValue(shift) && !parse.GetValue(noShift),
    TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(rfmWait))),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(import);

// decide
var decideUser = new Argument<string>("user_id") { Description = "User id (or anonymous id with --anonymous)" };
var explain = new Option<bool>("--explain") { Description = "Include the rule-by-rule trace" };
var anonymous = new Option<bool>("--anonymous") { Description = "Treat user_id as an anonymous visitor id" };
var device = new Option<string?>("--device") { Description = "Request context: device (desktop, mobile, tablet...)" };
var country = new Option<string?>("--country") { Description = "Request context: ISO country code" };
var pageType = new Option<string?>("--page-type") { Description = "Request context: page type (home, product, cart...)" };
var channel = new Option<string?>("--channel") { Description = "web (default), email, ads or app" };
var decide = new Command("decide", "Decide the winning segment and its variants for one user") { decideUser, explain, anonymous, device, country, pageType, channel };
decide.SetAction((parse, ct) => Cli.RunAsync(() => Commands.DecideAsync(
    parse.GetValue(address)!,
    parse.GetValue(decideUser)!,
    parse.GetValue(anonymous),
    parse.GetValue(explain),
    parse.GetValue(device),
    parse.GetValue(country),
    parse.GetValue(pageType),
    parse.GetValue(channel),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(decide);

// profile
var profileUser = new Argument<string>("user_id") { Description = "User id" };
var profile = new Command("profile", "Show a user's profile: aggregates, derived data, attributes with provenance, segment changes") { profileUser };
profile.SetAction((parse, ct) => Cli.RunAsync(() => Commands.ProfileAsync(parse.GetValue(address)!, parse.GetValue(profileUser)!, parse.GetValue(json), ct)));
root.Subcommands.Add(profile);

// catalog
var catalog = new Command("catalog", "Show the active catalog: version and segments in priority order");
catalog.SetAction((parse, ct) => Cli.RunAsync(() => Commands.CatalogAsync(parse.GetValue(address)!, parse.GetValue(json), ct)));
root.Subcommands.Add(catalog);

// track
var trackUser = new Argument<string>("user_id") { Description = "User id" };
var trackType = new Argument<string>("type") { Description = "Event type (page_view, product_view, add_to_cart, purchase, custom.<name>...)" };
var category = new Option<string?>("--category") { Description = "Product or content category" };
var value = new Option<double?>("--value") { Description = "Monetary value" };
var trackPageType = new Option<string>("--page-type") { Description = "Page type of the event context", DefaultValueFactory = _ => "home" };
var trackDevice = new Option<string>("--device") { Description = "Device of the event context", DefaultValueFactory = _ => "desktop" };
var product = new Option<string?>("--product") { Description = "Product id (product_view, add_to_cart, remove_from_cart)" };
var orderId = new Option<string?>("--order-id") { Description = "Order id (purchase, refund); generated when omitted" };
var track = new Command("track", "Send one event (TrackEvent) with a generated event id") { trackUser, trackType, category, value, trackPageType, trackDevice, product, orderId };
track.SetAction((parse, ct) => Cli.RunAsync(() => Commands.TrackAsync(
    parse.GetValue(address)!,
    new TrackOptions(
        parse.GetValue(trackUser)!,
        parse.GetValue(trackType)!,
        parse.GetValue(category),
        parse.GetValue(value),
        parse.GetValue(trackPageType)!,
        parse.GetValue(trackDevice)!,
        parse.GetValue(product),
        parse.GetValue(orderId)),
    parse.GetValue(json),
    ct)));
root.Subcommands.Add(track);

return await root.Parse(args).InvokeAsync();
