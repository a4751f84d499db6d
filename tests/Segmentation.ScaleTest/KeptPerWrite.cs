using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Segmentation.Core.Application.Composition;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;

namespace Segmentation.ScaleTest;

/// <summary>
/// What one write keeps alive, the bytes the collector copies when a user's snapshot outlives a gen0 collection (as under
/// the load generator's stream-ingest, which goes round 100,000 users): the default catalog, storefront page views (with
/// a country) a few seconds apart, <c>rounds</c> per user, then one more per user with every previous snapshot held. The
/// heap after a full collection with and without those snapshots differs by what the newest writes keep on their own.
/// </summary>
internal static class KeptPerWrite
{
    public static void Run(int users, int rounds, int breakdown)
    {
        var services = new ServiceCollection();
        services.AddSingleton(TimeProvider.System);
        services.AddSegmentationCore();
        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<CatalogStartup>().Load();
        var ingestion = provider.GetRequiredService<ProfileIngestion>();
        var store = provider.GetRequiredService<InMemoryProfileStore>();
        var ids = Enumerable.Range(0, users).Select(i => "kept-" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
        long n = 0;
        for (var round = 0; round < rounds; round++)
        {
            Write(ingestion, ids, ref n);
        }

        var held = new Held();
        held.Hold(store, ids); // the snapshots are referenced from the heap only, never from this frame (unoptimized code keeps temporaries alive)
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        Write(ingestion, ids, ref n);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        if (breakdown > 0)
        {
            HeapWalk.Report(ids.Select(id => store.Get(id)!).ToArray(), users, breakdown, excluding: held.Snapshots, what: "what the newest snapshots hold that the previous ones do not");
        }

        var withPrevious = GC.GetTotalMemory(forceFullCollection: true);
        held.Snapshots = null;
        var withoutPrevious = GC.GetTotalMemory(forceFullCollection: true);
        Console.WriteLine(FormattableString.Invariant(
            $"kept per write: {(double)(withPrevious - withoutPrevious) / users:F0} B (a storefront page view to a profile of {rounds} events, {users:N0} users, default catalog); allocated per write {(double)allocated / users:F0} B"));
    }

    private sealed class Held
    {
        public Profile[]? Snapshots;

        [MethodImpl(MethodImplOptions.NoInlining)]
        public void Hold(InMemoryProfileStore store, string[] ids) => Snapshots = [.. ids.Select(id => store.Get(id)!)];
    }

    private static void Write(ProfileIngestion ingestion, string[] ids, ref long n)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var id in ids)
        {
            ingestion.Track(new BehaviourEvent
            {
                EventId = "kept-e" + (n++).ToString(CultureInfo.InvariantCulture),
                Type = EventTypes.PageView,
                UserId = id,
                Timestamp = now,
                Context = new EventContext("web", "desktop", id + "-visit", "product", "/gifts/christmas", "GB"),
            });
        }
    }
}
