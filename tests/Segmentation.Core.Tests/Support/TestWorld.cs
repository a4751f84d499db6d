using Microsoft.Extensions.DependencyInjection;
using Segmentation.Core.Application.Catalogs;
using Segmentation.Core.Application.ChangeStream;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Composition;
using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Import;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Catalog;
using Segmentation.Core.Decisions;
using Segmentation.Core.Events;
using Segmentation.Core.Privacy;
using Segmentation.Core.Profiles;
using Segmentation.Core.Rendering;
using Segmentation.Core.Requests;

namespace Segmentation.Core.Tests.Support;

/// <summary>A clock that stands still until moved.</summary>
public sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>The whole domain wired together, as the server wires it, over an in-memory catalog or the default one.</summary>
public sealed class TestWorld : IDisposable
{
    public TestWorld(ICatalogSource? catalog = null, DateTimeOffset? now = null, IChangeLog? changeLog = null, ConsentPolicy? consent = null, RetentionPolicy? retention = null, IStoreCompaction? compaction = null, InMemoryProfileStore? store = null, int? eventLimit = null, Core.Application.Measurement.MeasurementOptions? measurement = null, IChangeFeedJournal? journal = null, Core.Rendering.RenderLimits? rendering = null, int? feedCapacity = null)
    {
        Clock = new ManualClock(now ?? new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(Clock);
        services.AddSingleton(catalog ?? new EmbeddedCatalogSource());
        AddIf(services, store);
        AddIf(services, changeLog);
        AddIf(services, consent);
        AddIf(services, retention);
        AddIf(services, compaction);
        AddIf(services, journal);
        services.AddSegmentationCore(o =>
        {
            o.EventLimit = eventLimit ?? o.EventLimit;
            o.Measurement = measurement ?? new Core.Application.Measurement.MeasurementOptions { RememberedDecisions = 1 << 16 };
            o.ChangeStream = feedCapacity is { } capacity ? new Core.Application.Membership.ChangeFeedOptions { Capacity = capacity } : o.ChangeStream;
            o.Rendering = rendering ?? o.Rendering;
        });
        _services = services.BuildServiceProvider();

        Catalogs = _services.GetRequiredService<CatalogStartup>().Load();
        Store = _services.GetRequiredService<InMemoryProfileStore>();
        Rfm = _services.GetRequiredService<RfmModelProvider>();
        Memberships = _services.GetRequiredService<MembershipIndex>();
        Cache = _services.GetRequiredService<DecisionCache>();
        Renderer = _services.GetRequiredService<TemplateRenderer>();
        Engine = _services.GetRequiredService<DecisionEngine>();
        Ingestion = _services.GetRequiredService<ProfileIngestion>();
        Rights = _services.GetRequiredService<DataSubjectRights>();
        Governance = _services.GetRequiredService<CatalogGovernance>();
        Measurement = _services.GetRequiredService<Core.Application.Measurement.DecisionMeasurement>();
        Outcomes = _services.GetRequiredService<Core.Application.Measurement.OutcomeRecorder>();
    }

    /// <summary>A service of the world (as the host would resolve it).</summary>
    public T Get<T>()
        where T : notnull => _services.GetRequiredService<T>();

    /// <summary>The ledger of served decisions and the KPIs.</summary>
    public Core.Application.Measurement.DecisionMeasurement Measurement { get; }

    /// <summary>Records outcomes of decisions.</summary>
    public Core.Application.Measurement.OutcomeRecorder Outcomes { get; }

    private readonly ServiceProvider _services;

    private static void AddIf<T>(ServiceCollection services, T? instance)
        where T : class
    {
        if (instance is not null)
        {
            services.AddSingleton(instance);
        }
    }

    public CatalogGovernance Governance { get; }

    public DataSubjectRights Rights { get; }

    public ManualClock Clock { get; }

    public CatalogProvider Catalogs { get; }

    public InMemoryProfileStore Store { get; }

    public RfmModelProvider Rfm { get; }

    public MembershipIndex Memberships { get; }

    /// <summary>Every change-stream entry after <paramref name="offset"/>, oldest first.</summary>
    public List<FeedEntry> FeedAfter(long offset)
    {
        var entries = new List<FeedEntry>();
        while (Memberships.Feed.ReadAfter(offset, entries, 1000) > 0)
        {
            offset = entries[^1].Offset;
        }

        return entries;
    }

    public DecisionCache Cache { get; }

    public TemplateRenderer Renderer { get; }

    public DecisionEngine Engine { get; }

    public ProfileIngestion Ingestion { get; }

    public static string DemoCsvPath => Path.Combine(AppContext.BaseDirectory, "DemoData", "online-retail-sample.csv");

    /// <summary>Imports the UCI sample unshifted and sets the clock to the day after its last invoice.</summary>
    public ImportReport ImportDemo()
    {
        using var reader = File.OpenText(DemoCsvPath);
        var events = OnlineRetailImport.ReadEvents(reader, endsAt: null, out var report);
        Clock.Now = events[^1].Timestamp.AddDays(1);
        foreach (var e in events)
        {
            Ingestion.Track(e);
        }

        Rfm.Recompute(Store);
        return report;
    }

    public Decision Decide(string user, RequestContext? context = null, bool explain = false) =>
        Engine.Decide(new DecisionRequest(user, "", context ?? RequestContext.Empty, null, explain));

    private int _seq;

    public TrackResult Track(string user, string type, DateTimeOffset? at = null, double value = 0, string? campaign = null, string? category = null, string? orderId = null, int quantity = 0, string? product = null)
    {
        var id = Interlocked.Increment(ref _seq);
        return Ingestion.Track(new BehaviourEvent
        {
            EventId = $"t-{id}",
            Type = type,
            UserId = user,
            Timestamp = at ?? Clock.Now,
            Context = new EventContext("web", "desktop", $"s-{user}-{id / 5}", "product"),
            Value = value,
            CampaignId = campaign,
            Category = category,
            OrderId = orderId ?? (type is EventTypes.Purchase or EventTypes.Refund ? $"o-{id}" : null),
            ProductId = product,
            Lines = quantity > 0 ? [new OrderLine(product ?? "sku-1", null, category, quantity, value / quantity)] : [],
        });
    }

    public void Dispose() => _services.Dispose();
}
