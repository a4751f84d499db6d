using BenchmarkDotNet.Attributes;
using Segmentation.Core.Application.Products;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;

namespace Segmentation.Benchmarks.Products;

/// <summary>
/// What learning related products adds to an accepted event: a product view by a user who viewed four other products
/// in the hour, and a three-line order by a user with five earlier orders (the relations already hold their products).
/// </summary>
[MemoryDiagnoser]
public class ProductRelationsBenchmark
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly ProductRelations _relations = new();
    private BehaviourEvent _view = null!;
    private Profile _viewer = null!;
    private BehaviourEvent _order = null!;
    private Profile _buyer = null!;

    [GlobalSetup]
    public void Setup()
    {
        var context = new EventContext("web", "mobile", "s-1", "product");
        var version = 0L;
        _viewer = new Profile("viewer");
        for (var i = 0; i < 5; i++)
        {
            var view = new BehaviourEvent { EventId = $"v{i}", Type = EventTypes.ProductView, UserId = "viewer", Timestamp = Now.AddMinutes(-50 + (i * 10)), Context = context, ProductId = $"sku-{i}", Category = "gifts" };
            _viewer = _viewer.Apply(StoredEvent.From(view), ++version);
            _relations.Observe(view, _viewer);
            _view = view;
        }

        _buyer = new Profile("buyer");
        for (var o = 0; o < 6; o++)
        {
            var order = new BehaviourEvent
            {
                EventId = $"o{o}", Type = EventTypes.Purchase, UserId = "buyer", Timestamp = Now.AddDays(-30 + o), Context = context, OrderId = $"o{o}", Value = 30,
                Lines = [new OrderLine($"sku-{o}", null, "gifts", 1, 10), new OrderLine($"sku-{o + 10}", null, "gifts", 1, 10), new OrderLine($"sku-{o + 20}", null, "gifts", 1, 10)],
            };
            _buyer = _buyer.Apply(StoredEvent.From(order), ++version);
            _relations.Observe(order, _buyer);
            _order = order;
        }
    }

    /// <summary>A product view: related to the hour's other views.</summary>
    [Benchmark]
    public void ObserveProductView() => _relations.Observe(_view, _viewer);

    /// <summary>An order of three products: related together and to the five earlier orders' products.</summary>
    [Benchmark]
    public void ObservePurchase() => _relations.Observe(_order, _buyer);
}
