using System.Security.Cryptography;
using System.Text;
using Segmentation.Core.Application.Changes;
using Segmentation.Core.Application.Privacy;
using Segmentation.Core.Events;
using Segmentation.Core.Profiles;
using Segmentation.Core.Tests.Support;
using Segmentation.Storage;

namespace Segmentation.Core.Tests.Storage;

public sealed class SnapshotTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-snap-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static BehaviourEvent Event(string id, string user, string type, DateTimeOffset at, double value = 0, string anonymous = "") => TestEvents.Make(id, user, type, at, value, anonymous);

    private static void Write(TestWorld world, int from, int count, int users)
    {
        var types = new[] { EventTypes.PageView, EventTypes.ProductView, EventTypes.AddToCart, EventTypes.Purchase, EventTypes.Search };
        for (var i = from; i < from + count; i++)
        {
            var type = types[i % types.Length];
            world.Ingestion.Track(Event($"e{i}", $"u{i % users}", type, Now.AddHours(-(i * 7 % 500)), value: type == EventTypes.Purchase ? 10 + i : 0));
        }
    }

    private static void AssertSame(TestWorld expected, TestWorld actual)
    {
        var users = expected.Store.Snapshot().Select(p => p.UserId).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(users, actual.Store.Snapshot().Select(p => p.UserId).Order(StringComparer.Ordinal));
        foreach (var user in users)
        {
            var a = expected.Store.Get(user)!;
            var b = actual.Store.Get(user)!;
            Assert.Equal(a.Events.Count, b.Events.Count);
            for (var i = 0; i < a.Events.Count; i++)
            {
                Assert.Equal(a.Events[i], b.Events[i]);
            }

            Assert.Equal(a.EventIds.Order(StringComparer.Ordinal), b.EventIds.Order(StringComparer.Ordinal));
            Assert.Equal(
                (a.TotalEvents, a.Orders, a.Revenue, a.CartItems, a.FirstSeenTicks, a.LastSeenTicks, a.FirstPurchaseTicks, a.LastPurchaseTicks, a.Sessions),
                (b.TotalEvents, b.Orders, b.Revenue, b.CartItems, b.FirstSeenTicks, b.LastSeenTicks, b.FirstPurchaseTicks, b.LastPurchaseTicks, b.Sessions));
            Assert.Equal(
                a.Attributes.Values.Select(x => (x.Name, Value: x.Value.ToString(), x.Layer, x.Source, x.UpdatedAt)).OrderBy(x => x.Name, StringComparer.Ordinal),
                b.Attributes.Values.Select(x => (x.Name, Value: x.Value.ToString(), x.Layer, x.Source, x.UpdatedAt)).OrderBy(x => x.Name, StringComparer.Ordinal));
            Assert.Equal(a.CurrentSegment, b.CurrentSegment);
            Assert.Equal(a.SegmentHistory.ToArray(), b.SegmentHistory.ToArray());
            Assert.Equal(a.ConsentTrail, b.ConsentTrail);
            Assert.Equal(expected.Store.LinkedIds(user), actual.Store.LinkedIds(user));
        }
    }

    // A store of 200 events over 10 users, compacted: the path of its snapshot.
    private async Task<string> SnapshotOf200Events()
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            Write(first.World, 0, 200, users: 10);
            await first.Compactor.CompactAsync();
            first.Log.Dispose();
        }

        return ProfileSnapshotFile.Find(_dir).Single().Path;
    }

    private bool DataDirectoryContains(string text) => WhereInDataDirectory(text) is not null;

    // The first file holding text (as UTF-8), with the offset and the bytes around it, or null.
    private string? WhereInDataDirectory(string text)
    {
        var needle = Encoding.UTF8.GetBytes(text);
        foreach (var file in Directory.EnumerateFiles(_dir).Where(f => Path.GetFileName(f) != DataDirectory.LockName)) // empty, and locked by the open store
        {
            var bytes = File.ReadAllBytes(file);
            var at = bytes.AsSpan().IndexOf(needle);
            if (at >= 0)
            {
                var from = Math.Max(0, at - 16);
                return $"{Path.GetFileName(file)} at {at}: {Convert.ToHexString(bytes, from, Math.Min(bytes.Length, at + needle.Length + 16) - from)}";
            }
        }

        return null;
    }

    [Fact]
    public async Task A_snapshot_plus_the_log_written_after_it_restores_identical_profiles_and_replaces_the_old_segments()
    {
        using var first = new Durable(_dir, Key);
        first.Restore();
        Write(first.World, 0, 300, users: 20);
        first.World.Ingestion.Track(Event("anon-1", "", EventTypes.PageView, Now, anonymous: "visitor-1"));
        first.World.Ingestion.Identify("visitor-1", "u1");
        first.World.Ingestion.SetTraits("u2", new Dictionary<string, object?> { ["preferred_category"] = "toys", ["vip"] = true }, "crm", AttributeLayer.ZeroParty, Now.AddDays(-1));
        first.World.Ingestion.RecordConsent("u4", ConsentPurpose.EmailMarketing, granted: true, "signup-form", Now.AddDays(-2));
        await first.Compactor.CompactAsync();
        Assert.Equal(2, first.Log.Segment);
        Assert.False(File.Exists(FileChangeLog.SegmentPath(_dir, 1)));
        Assert.True(File.Exists(ProfileSnapshotFile.PathFor(_dir, 2)));

        // The tail: more events for existing users, a new merge and traits after the snapshot.
        Write(first.World, 300, 100, users: 25);
        first.World.Ingestion.Track(Event("anon-2", "", EventTypes.PageView, Now, anonymous: "visitor-2"));
        first.World.Ingestion.Identify("visitor-2", "u3");
        first.World.Ingestion.SetTraits("u5", new Dictionary<string, object?> { ["preferred_category"] = "garden" }, "quiz", AttributeLayer.ZeroParty, Now);
        first.World.Ingestion.RecordConsent("u4", ConsentPurpose.Personalization, granted: false, "preference-center", Now.AddMinutes(-1));
        first.Log.Dispose();

        using var second = new Durable(_dir, Key);
        var (snapshot, tail) = second.Restore();
        Assert.Equal(20, snapshot!.Profiles);
        Assert.Equal(100 + 1 + 1 + 1 + 1, tail.Records);
        Assert.Equal(2, second.World.Store.Get("u4")!.ConsentTrail.Count);
        AssertSame(first.World, second.World);
        Assert.Equal("u1", second.World.Store.Resolve("visitor-1"));
        Assert.True(second.World.Ingestion.Track(Event("e10", "u10", EventTypes.PageView, Now)).Duplicate);
        Assert.True(second.World.Store.Get("u24")!.Version < second.World.Ingestion.Track(Event("fresh", "u24", EventTypes.PageView, Now)).Profile.Version);
    }

    [Fact]
    public void A_chunk_is_cut_by_its_bytes_as_well_as_its_profile_count()
    {
        // Regression: chunks were cut every 1,024 profiles only, so a run of profiles with very long histories made a
        // chunk past the 2 GB a buffer holds, and every compaction failed as if the disk did.
        using var w = new TestWorld(TestCatalogs.Source());
        Write(w, 0, 900, users: 3);
        var path = Path.Combine(_dir, "cut.snap");

        ProfileSnapshotFile.Write(path, 1, w.Store.Snapshot().Select(p => new SnapshotEntry(p, [])), null, null, chunkBytes: 4_000);

        var bytes = File.ReadAllBytes(path);
        var chunks = 0;
        for (var at = 8; at < bytes.Length; at += 8 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at)))
        {
            chunks += bytes[at + 8] == 2 ? 1 : 0; // a chunk's kind
        }

        Assert.Equal(3, chunks); // each profile's 300 events pass the 4,000 bytes alone
        var read = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        ProfileSnapshotFile.Read(path, null, e => read[e.Profile.UserId] = e.Profile.Events.Count, parallelism: 2);
        Assert.Equal(w.Store.Snapshot().ToDictionary(p => p.UserId, p => p.Events.Count), read.ToDictionary());
    }

    [Fact]
    public async Task Compaction_while_writers_and_merges_run_loses_and_doubles_nothing()
    {
        using var first = new Durable(_dir, Key);
        first.Restore();
        const int Writers = 4, PerWriter = 1500;
        var compactions = Task.Run(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                await first.Compactor.CompactAsync();
                await Task.Delay(5);
            }
        });
        Parallel.For(0, Writers, w =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                var id = $"w{w}-{i}";
                if (i % 100 == 50)
                {
                    first.World.Ingestion.Track(Event(id, "", EventTypes.PageView, Now.AddMinutes(-i), anonymous: $"anon-{id}"));
                    first.World.Ingestion.Identify($"anon-{id}", $"u{w}-{i % 30}");
                }
                else
                {
                    first.World.Ingestion.Track(Event(id, $"u{w}-{i % 30}", EventTypes.ProductView, Now.AddMinutes(-i)));
                }
            }
        });
        await compactions;
        first.Log.Dispose();

        using var second = new Durable(_dir, Key);
        var (snapshot, _) = second.Restore();
        Assert.NotNull(snapshot);
        Assert.Single(ProfileSnapshotFile.Find(_dir));
        AssertSame(first.World, second.World);
        Assert.Equal(Writers * PerWriter, second.World.Store.Snapshot().Sum(p => p.TotalEvents));
        Assert.Equal(Writers * 30, second.World.Store.Count); // merged visitors are not profiles of their own
        Assert.Equal($"u1-{50 % 30}", second.World.Store.Resolve("anon-w1-50"));
    }

    [Theory]
    [InlineData(true)]   // the walk reaches the merged visitor's key after the merge (it resolves to the user)
    [InlineData(false)]  // the key left the store before the walk reached it
    public async Task A_merge_into_a_user_the_compaction_already_captured_loses_nothing(bool walkSeesMergedKey)
    {
        // The compaction captures one profile at a time. Here it captures the user, then the visitor is merged into the
        // user (the merge is logged after the rotation, so it is replayed on restore, where the visitor no longer exists),
        // then the walk goes on: the user's merged profile must still reach the snapshot.
        using var first = new Durable(_dir, Key);
        first.Restore();
        first.World.Ingestion.Track(Event("e-user", "u1", EventTypes.PageView, Now.AddMinutes(-2)));
        first.World.Ingestion.Track(Event("e-visitor", "", EventTypes.ProductView, Now.AddMinutes(-1), anonymous: "anon-1"));
        using var second = await CompactWalkingThenRestart(first, "u1", () => first.World.Ingestion.Identify("anon-1", "u1"), rest => walkSeesMergedKey ? rest.Append("anon-1") : rest);
        Assert.Equal(2, second.World.Store.Get("u1")!.TotalEvents);
        Assert.Equal("u1", second.World.Store.Resolve("anon-1"));
    }

    [Fact]
    public async Task A_merge_into_a_user_created_behind_the_compaction_walk_loses_nothing()
    {
        // Browse, then sign up while a compaction runs: the visitor's key leaves the store before the walk reaches it and
        // the new user's key lands where the walk has already been, so the walk reads neither.
        using var first = new Durable(_dir, Key);
        first.Restore();
        first.World.Ingestion.Track(Event("e-other", "other", EventTypes.PageView, Now.AddMinutes(-3)));
        first.World.Ingestion.Track(Event("e-visitor", "", EventTypes.ProductView, Now.AddMinutes(-1), anonymous: "anon-1"));
        using var second = await CompactWalkingThenRestart(first, "other", () => first.World.Ingestion.Identify("anon-1", "new-user"), rest => rest.Where(k => k != "new-user"));
        Assert.Equal(1, second.World.Store.Get("new-user")!.TotalEvents);
        Assert.Equal("new-user", second.World.Store.Resolve("anon-1"));
    }

    [Fact]
    public async Task A_chain_of_merges_during_the_compaction_walk_loses_nothing_and_links_follow_the_last_merge()
    {
        // Two visitors were merged into u1, one before the compaction and one during it, after the walk read u1; then u1
        // is merged into a new account u2, behind the walk. The snapshot then holds u1 linked to the first visitor and
        // u2 linked to both and to u1: links must be restored in the order of the merges, whatever order the parallel
        // read gives (else the first visitor points at an empty u1 again).
        using var first = new Durable(_dir, Key);
        first.Restore();
        first.World.Ingestion.Track(Event("e-u1", "u1", EventTypes.PageView, Now.AddMinutes(-3)));
        first.World.Ingestion.Track(Event("e-visitor-0", "", EventTypes.ProductView, Now.AddMinutes(-2), anonymous: "anon-0"));
        first.World.Ingestion.Track(Event("e-visitor", "", EventTypes.ProductView, Now.AddMinutes(-1), anonymous: "anon-1"));
        first.World.Ingestion.Identify("anon-0", "u1");
        using var second = await CompactWalkingThenRestart(
            first,
            "u1",
            () =>
            {
                first.World.Ingestion.Identify("anon-1", "u1");
                first.World.Ingestion.Identify("u1", "u2");
            },
            rest => rest.Where(k => k != "u2"));
        Assert.Equal(3, second.World.Store.Get("u2")!.TotalEvents);
        Assert.Equal(("u2", "u2", "u2"), (second.World.Store.Resolve("anon-0"), second.World.Store.Resolve("anon-1"), second.World.Store.Resolve("u1")));
        Assert.Equal(["u2"], second.World.Store.Snapshot().Select(p => p.UserId)); // no empty u1 again
    }

    [Fact]
    public async Task An_erased_visitor_merged_again_during_the_compaction_walk_does_not_take_the_user_with_it_on_restart()
    {
        // During the walk a visitor is erased, comes back and signs in as a user the walk has read. The snapshot holds the
        // user with the visitor linked (and the visitor's new page view); the erasure, logged after the rotation, is
        // replayed on restart and must not remove the user the id now resolves to.
        using var first = new Durable(_dir, Key);
        first.Restore();
        first.World.Ingestion.Track(Event("e-user", "t-user", EventTypes.PageView, Now.AddMinutes(-5)));
        first.World.Ingestion.Track(Event("e-before", "", EventTypes.ProductView, Now.AddMinutes(-4), anonymous: "anon-y"));
        using var second = await CompactWalkingThenRestart(
            first,
            "t-user",
            () =>
            {
                first.World.Ingestion.Forget("anon-y");
                first.World.Ingestion.Track(Event("e-after", "", EventTypes.PageView, Now.AddMinutes(-1), anonymous: "anon-y"));
                first.World.Ingestion.Identify("anon-y", "t-user");
            },
            rest => rest);
        Assert.Equal(["e-after", "e-user"], second.World.Store.Get("t-user")!.EventIds.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(true, true)]   // the visitor then signs in as another user the walk has read
    [InlineData(true, false)]  // the visitor only comes back
    [InlineData(false, false)] // the visitor had no history when it signed in (a link alone)
    public async Task A_merge_undone_by_an_erasure_during_the_compaction_walk_is_not_replayed_onto_what_came_after(bool visitorKnown, bool signsInAgain)
    {
        // During the walk a visitor signs in as u, u is erased (with the visitor's link), the visitor comes back and (or
        // not) signs in as v. On restart the first merge is replayed after a snapshot that may hold what came later: it
        // must not take v (or the visitor's new history) into u, to be erased with it, nor bring the erased u back.
        using var first = new Durable(_dir, Key);
        first.Restore();
        first.World.Ingestion.Track(Event("e-v", "v", EventTypes.PageView, Now.AddMinutes(-6)));
        if (visitorKnown)
        {
            first.World.Ingestion.Track(Event("e-anon", "", EventTypes.ProductView, Now.AddMinutes(-5), anonymous: "anon-z"));
        }

        using var second = await CompactWalkingThenRestart(
            first,
            "v",
            () =>
            {
                first.World.Ingestion.Identify("anon-z", "u");
                first.World.Ingestion.Forget("u");
                first.World.Ingestion.Track(Event("e-after", "", EventTypes.PageView, Now.AddMinutes(-1), anonymous: "anon-z"));
                if (signsInAgain)
                {
                    first.World.Ingestion.Identify("anon-z", "v");
                }
            },
            rest => rest);
        Assert.Null(second.World.Store.Get("u"));
        Assert.Equal(signsInAgain ? ["e-after", "e-v"] : ["e-v"], second.World.Store.Get("v")!.EventIds.Order(StringComparer.Ordinal));
        Assert.Equal(signsInAgain ? "v" : "anon-z", second.World.Store.Resolve("anon-z"));
    }

    [Fact]
    public async Task A_user_erased_during_the_compaction_walk_does_not_take_their_former_linked_id_reused_since_with_them_on_restart()
    {
        // Regression (found in review): the walk reads c linked to b; then c is erased (which drops the link) and a visitor
        // signs in as b, which now holds the visitor's history. The snapshot holds both; restoring c's links removed b's
        // profile as "captured before its merge", and the replayed erasure and merge then left b empty: the visitor's
        // history was lost, for good at the next compaction.
        using var first = new Durable(_dir, Key);
        first.Restore();
        first.World.Ingestion.Track(Event("e-c", "c", EventTypes.PageView, Now.AddMinutes(-6)));
        first.World.Ingestion.Track(Event("e-b", "", EventTypes.ProductView, Now.AddMinutes(-5), anonymous: "b"));
        first.World.Ingestion.Identify("b", "c");
        first.World.Ingestion.Track(Event("e-anon", "", EventTypes.ProductView, Now.AddMinutes(-4), anonymous: "anon-a"));
        using var second = await CompactWalkingThenRestart(
            first,
            "c",
            () =>
            {
                first.World.Ingestion.Forget("c");
                first.World.Ingestion.Identify("anon-a", "b");
            },
            rest => rest);
        Assert.Null(second.World.Store.Get("c"));
        Assert.Equal(["e-anon"], second.World.Store.Get("b")!.EventIds);
        Assert.Equal("b", second.World.Store.Resolve("anon-a"));
    }

    // Compacts first's store through a walk that reads firstKey, runs between, then the keys rest chooses; then restarts from
    // the directory and checks that the restored store equals the live one.
    private async Task<Durable> CompactWalkingThenRestart(Durable first, string firstKey, Action between, Func<IEnumerable<string>, IEnumerable<string>> rest)
    {
        using (var compactor = new StoreCompactor(new InterleavingStore(first.World.Store, firstKey, between, rest), first.Log, first.Pii))
        {
            await compactor.CompactAsync();
        }

        first.Log.Dispose();
        var second = new Durable(_dir, Key);
        second.Restore();
        AssertSame(first.World, second.World);
        return second;
    }

    // The store as a compaction walks it: the first key, then an action (merges), then the keys left as rest chooses.
    private sealed class InterleavingStore(IProfileStore inner, string firstKey, Action between, Func<IEnumerable<string>, IEnumerable<string>> rest) : DelegatingProfileStore(inner)
    {
        public override IEnumerable<string> Keys()
        {
            yield return firstKey;
            between();
            foreach (var key in rest(Inner.Keys().Where(k => k != firstKey)))
            {
                yield return key;
            }
        }
    }

    [Fact]
    public async Task A_trait_sealed_once_stays_sealed_after_a_catalog_without_its_declaration_and_across_a_restart()
    {
        // Regression (review): sealing followed the serving catalog alone. A rollback to (or a publish of) a catalog
        // without `pii: true` on a trait wrote every stored value of it in clear at the next compaction, and every
        // new value in clear in the log.
        var without = TestCatalogs.Schema.Replace("    first_name: { type: string, pii: true }", "    first_name: { type: string }", StringComparison.Ordinal);
        Assert.NotEqual(TestCatalogs.Schema, without);
        var plain = new Core.Catalog.InMemoryCatalogSource([new("catalog.yaml", without), new("fallback.yaml", TestCatalogs.Fallback)]);
        using (var first = new Durable(_dir, Key, catalog: new Core.Catalog.InMemoryCatalogSource([new("catalog.yaml", TestCatalogs.Schema), new("fallback.yaml", TestCatalogs.Fallback)])))
        {
            first.Restore();
            first.World.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["first_name"] = "Zeldarine" }, "checkout", AttributeLayer.ZeroParty, Now);
            first.World.Governance.Publish(plain.ReadFiles(), "pii dropped");
            first.World.Ingestion.SetTraits("u2", new Dictionary<string, object?> { ["first_name"] = "Ophelinda" }, "checkout", AttributeLayer.ZeroParty, Now);
            await first.Compactor.CompactAsync();
            first.Log.Dispose();
        }

        Assert.False(DataDirectoryContains("Zeldarine"));
        Assert.False(DataDirectoryContains("Ophelinda"));

        using (var second = new Durable(_dir, Key, catalog: plain))
        {
            second.Restore();
            Assert.Equal("Zeldarine", second.World.Store.Get("u1")!.Trait("first_name"));
            second.World.Ingestion.SetTraits("u3", new Dictionary<string, object?> { ["first_name"] = "Ismeralda" }, "checkout", AttributeLayer.ZeroParty, Now);
            await second.Compactor.CompactAsync();
            second.Log.Dispose();
        }

        Assert.False(DataDirectoryContains("Zeldarine"));
        Assert.False(DataDirectoryContains("Ismeralda"));
    }

    [Fact]
    public async Task PII_values_are_encrypted_in_the_log_and_in_snapshots_and_read_back_with_the_key()
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            first.World.Ingestion.Track(Event("e1", "u1", EventTypes.PageView, Now));
            first.World.Ingestion.SetTraits("u1", new Dictionary<string, object?> { ["email"] = "alice.liddell@example.org", ["first_name"] = "Alicetta", ["preferred_category"] = "toys" }, "checkout", AttributeLayer.ZeroParty, Now);
            first.Log.Dispose();
            Assert.False(DataDirectoryContains("alice.liddell@example.org"));
            Assert.False(DataDirectoryContains("Alicetta"));
            Assert.True(DataDirectoryContains("toys")); // not PII: stored as it is

            using var second = new Durable(_dir, Key);
            second.Restore();
            Assert.Equal("alice.liddell@example.org", second.World.Store.Get("u1")!.Trait("email"));
            await second.Compactor.CompactAsync();
            second.Log.Dispose();
            Assert.False(DataDirectoryContains("alice.liddell@example.org"));
            Assert.False(DataDirectoryContains("Alicetta"));
        }

        using (var third = new Durable(_dir, Key))
        {
            third.Restore();
            Assert.Equal("Alicetta", third.World.Store.Get("u1")!.Trait("first_name"));
        }

        // A wrong key is refused when the directory is opened (its key check value differs), before any read.
        var ex = Assert.Throws<StoreDamagedException>(() => new Durable(_dir, RandomNumberGenerator.GetBytes(32)));
        Assert.Contains("encryption key does not match", ex.Message);
    }

    [Fact]
    public async Task A_damaged_snapshot_stops_restore_instead_of_losing_profiles()
    {
        var path = await SnapshotOf200Events();
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(path, bytes);

        using var second = new Durable(_dir, Key);
        var ex = Assert.Throws<InvalidDataException>(() => second.Compactor.Restore());
        Assert.Contains("checksum", ex.Message);
        Assert.Equal(bytes, File.ReadAllBytes(path)); // nothing was deleted or rewritten
    }

    [Fact]
    public async Task A_chunk_whose_records_end_early_is_reported_as_damaged_even_with_a_valid_checksum()
    {
        // Frames after the 8-byte magic: [u32 length][u32 CRC-32][payload]; the second is the first chunk.
        // Cut that chunk's payload short and give it a matching checksum, as a buggy writer would.
        var path = await SnapshotOf200Events();
        var bytes = File.ReadAllBytes(path);
        var header = 8 + 8 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8));
        var length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(header));
        var cut = bytes.AsSpan(header + 8, length / 2).ToArray();
        using var damaged = new MemoryStream();
        damaged.Write(bytes.AsSpan(0, header));
        damaged.Write(BitConverter.GetBytes((uint)cut.Length));
        damaged.Write(BitConverter.GetBytes(System.IO.Hashing.Crc32.HashToUInt32(cut)));
        damaged.Write(cut);
        damaged.Write(bytes.AsSpan(header + 8 + length));
        File.WriteAllBytes(path, damaged.ToArray());

        using var second = new Durable(_dir, Key);
        var ex = Assert.Throws<InvalidDataException>(() => second.Compactor.Restore());
        Assert.Contains("ends inside a record", ex.Message);
        Assert.True(File.Exists(path)); // kept for inspection
    }

    [Fact]
    public async Task Memberships_rebuilt_after_a_restore_equal_those_recorded_on_write()
    {
        using var first = new Durable(_dir, Key);
        first.Restore();
        Write(first.World, 0, 4000, users: 1500); // more users than the index starts sized for
        await first.Compactor.CompactAsync();
        first.Log.Dispose();

        using var second = new Durable(_dir, Key);
        second.World.Ingestion.Restore(second.Files); // the restore without the membership rebuild
        Assert.Equal(0, second.World.Memberships.Users);
        Assert.Equal(1500, second.World.Ingestion.EvaluateNewMemberships());

        foreach (var user in first.World.Store.Snapshot().Select(p => p.UserId))
        {
            Assert.Equal(first.World.Memberships.SegmentsOf(user), second.World.Memberships.SegmentsOf(user));
        }

        Assert.Equal(first.World.Memberships.Users, second.World.Memberships.Users);
        Assert.Equal(0, second.World.Ingestion.EvaluateNewMemberships()); // all known now
    }

    [Fact]
    public async Task A_rebuild_that_fails_leaves_the_index_incomplete_until_one_succeeds()
    {
        using var first = new Durable(_dir, Key);
        first.Restore();
        Write(first.World, 0, 400, users: 150);
        await first.Compactor.CompactAsync();
        first.Log.Dispose();

        using var second = new Durable(_dir, Key);
        second.World.Ingestion.Restore(second.Files);
        using var stopped = new CancellationTokenSource();
        await stopped.CancelAsync(); // the rebuild ends before it evaluated anyone, as on any failure

        Assert.ThrowsAny<OperationCanceledException>(() => second.World.Ingestion.EvaluateNewMemberships(stopped.Token));
        Assert.False(second.World.Memberships.IsComplete); // its readers are refused instead of served a partial index
        Assert.Throws<Core.Validation.NotReadyException>(() => second.World.Memberships.ThrowIfIncomplete());

        Assert.Equal(150, second.World.Ingestion.EvaluateNewMemberships()); // the retry
        Assert.True(second.World.Memberships.IsComplete);
        Assert.Equal(first.World.Memberships.Users, second.World.Memberships.Users);
    }

    [Fact]
    public void Reserving_room_sizes_only_an_empty_index_and_never_drops_a_recorded_user()
    {
        var index = new Core.Application.Membership.MembershipIndex();
        index.Reserve(5000);
        index.Set("u1", ["a"], 1, long.MaxValue, Now, "test");
        index.Reserve(100_000); // not empty: kept as it is
        Assert.Equal(["a"], index.SegmentsOf("u1"));
        Assert.Equal(1, index.Users);
        Assert.Equal(1, index.Count("a"));
    }

    [Fact]
    public async Task Leftovers_of_an_interrupted_compaction_are_ignored_and_removed()
    {
        using (var first = new Durable(_dir, Key))
        {
            first.Restore();
            Write(first.World, 0, 100, users: 10);
            await first.Compactor.CompactAsync();
            Write(first.World, 100, 50, users: 10);
            first.Log.Dispose();
        }

        // A crash while writing the next snapshot leaves a temporary file behind.
        File.WriteAllText(ProfileSnapshotFile.PathFor(_dir, 3) + ".tmp", "half a snapshot");
        using var second = new Durable(_dir, Key);
        var (snapshot, tail) = second.Restore();
        Assert.NotNull(snapshot);
        Assert.Equal(2, second.Files.Data.Plan.SnapshotSegment);
        Assert.Equal(50, tail.Records);
        Assert.Equal(150, second.World.Store.Snapshot().Sum(p => p.TotalEvents));
        Assert.Empty(Directory.EnumerateFiles(_dir, "*.tmp"));
    }

    [Fact]
    public async Task A_compaction_removes_its_own_leftover_temporary_files_but_not_another_components_being_written()
    {
        using var store = new Durable(_dir, Key);
        store.Restore();
        Write(store.World, 0, 20, users: 5);

        // The measurements' checkpoint and the audit trail write through temporary files of their own, on their own
        // schedules: one may be half written while a compaction runs.
        var stale = ProfileSnapshotFile.PathFor(_dir, 9) + ".tmp";
        File.WriteAllText(stale, "half a snapshot");
        var measurements = Path.Combine(_dir, MeasurementCheckpointFile.FileName + ".tmp");
        var audit = Path.Combine(_dir, AuditJournalFile.FileName + ".tmp");
        File.WriteAllText(measurements, "being written");
        File.WriteAllText(audit, "being written");

        await store.Compactor.CompactAsync();

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(measurements));
        Assert.True(File.Exists(audit));
    }

    [Fact]
    public async Task ForgetUser_leaves_no_byte_of_the_user_in_the_data_directory()
    {
        const string User = "forget-me-zq4711", Visitor = "visitor-zq4711-anon", Email = "mirabel.forget@example.org";
        using var first = new Durable(_dir, Key);
        first.Restore();
        Write(first.World, 0, 200, users: 10); // other users, who must be kept
        first.World.Ingestion.Track(Event("evt-zq4711-a", User, EventTypes.Purchase, Now.AddDays(-3), value: 42));
        first.World.Ingestion.Track(Event("evt-zq4711-b", "", EventTypes.PageView, Now.AddDays(-1), anonymous: Visitor));
        first.World.Ingestion.Identify(Visitor, User);
        first.World.Ingestion.SetTraits(User, new Dictionary<string, object?> { ["email"] = Email, ["first_name"] = "Mirabel", ["preferred_category"] = "gardening-zq4711" }, "checkout", AttributeLayer.ZeroParty, Now);
        first.World.Ingestion.RecordConsent(User, ConsentPurpose.EmailMarketing, granted: true, "signup-zq4711", Now);
        await first.Compactor.CompactAsync(); // the user is in a snapshot now...
        first.World.Ingestion.Track(Event("evt-zq4711-c", User, EventTypes.PageView, Now)); // ...and in the log after it
        Assert.True(DataDirectoryContains(User));
        Assert.True(DataDirectoryContains("gardening-zq4711"));

        var rights = new DataSubjectRights(first.World.Ingestion, first.World.Store, first.World.Catalogs, first.World.Rfm, first.World.Memberships, first.World.Cache, first.World.Clock, first.Compactor);
        var result = await rights.ForgetAsync(Visitor); // erasing through a stitched id erases the person
        Assert.Equal(User, result.UserId);
        Assert.Equal([Visitor], result.LinkedIds);
        Assert.Null(first.World.Store.Get(User));
        Assert.Null(first.World.Store.Get(Visitor));
        first.Log.Dispose();

        foreach (var needle in new[] { User, Visitor, "zq4711", Email, "Mirabel", "gardening-zq4711", "evt-zq4711", "signup-zq4711" })
        {
            Assert.True(WhereInDataDirectory(needle) is null, $"'{needle}' is still on disk: {WhereInDataDirectory(needle)}");
        }

        // With the key: nothing left that decrypts to the user either, and everyone else is intact.
        using var second = new Durable(_dir, Key);
        second.Restore();
        Assert.Null(second.World.Store.Get(User));
        Assert.Equal(User, second.World.Store.Resolve(User)); // no link survives
        Assert.Equal(10, second.World.Store.Count);
        Assert.Equal(200, second.World.Store.Snapshot().Sum(p => p.TotalEvents));
    }

    [Fact]
    public async Task A_first_write_logged_before_the_rotation_but_applied_after_it_is_in_the_snapshot()
    {
        // The user's first event is on disk in the old segment, but its profile does not exist yet when the
        // compaction lists the store: the snapshot must still hold it, since the old segment is deleted.
        var dir = Directory.CreateTempSubdirectory("seg-race-").FullName;
        try
        {
            var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            var pii = new PiiProtector(key, _ => false);
            using (var log = new FileChangeLog(dir, pii: pii))
            using (var held = new HoldAfterAppend(log))
            using (var world = new TestWorld(now: Now, changeLog: held))
            using (var compactor = new StoreCompactor(world.Store, log, pii))
            {
                log.Recover(_ => { });
                var writer = Task.Run(() => world.Ingestion.Track(Event("first", "first-timer", EventTypes.PageView, Now)));
                Assert.True(held.Appended.Wait(TimeSpan.FromSeconds(10)));

                var compaction = compactor.CompactAsync();
                await Task.Delay(300); // the compaction has rotated and is listing the store meanwhile
                held.Release.Set();
                Assert.False((await writer).Duplicate);
                await compaction;
            }

            using var restored = new Durable(dir, key);
            restored.Restore();
            Assert.Equal(1, restored.World.Store.Get("first-timer")?.TotalEvents);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Appends to the real log, then holds the writer (inside its user's lock) until released.
    private sealed class HoldAfterAppend(IChangeLog inner) : IChangeLog, IDisposable
    {
        public ManualResetEventSlim Appended { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public void Append(ChangeRecord record)
        {
            inner.Append(record);
            Appended.Set();
            Release.Wait(TimeSpan.FromSeconds(30));
        }

        public void Dispose()
        {
            Appended.Dispose();
            Release.Dispose();
        }
    }
}
