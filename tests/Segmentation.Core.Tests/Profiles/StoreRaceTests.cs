using Segmentation.Core.Profiles;

namespace Segmentation.Core.Tests.Profiles;

/// <summary>
/// Writes that resolved an id just before an erasure or a merge changed where it leads: the write follows the id's
/// link as it is when the write holds the profile's lock, so an erased profile never comes back under its own id and
/// no event lands in a profile no id leads to. The interleavings are forced with the store's test hook.
/// </summary>
public sealed class StoreRaceTests
{
    private static Profile Write(Profile p, long version) => p with { Version = version };

    private static InMemoryProfileStore LinkedStore()
    {
        var store = new InMemoryProfileStore();
        store.Update("anon", Write);
        store.Update("user", Write);
        store.Merge("anon", "user", (into, _, version) => into with { Version = version });
        return store;
    }

    [Fact]
    public void A_write_for_a_linked_id_that_resolved_before_the_erasure_does_not_bring_the_erased_profile_back()
    {
        var store = LinkedStore();
        store.AfterResolve = key =>
        {
            store.AfterResolve = null;
            store.Remove("user"); // erased between the write's resolving "anon" to "user" and its taking the entry
        };

        store.Update("anon", Write);

        Assert.Null(store.Get("user")); // the erased id holds nothing
        Assert.DoesNotContain("user", store.Keys());
        Assert.Equal("anon", store.Get("anon")!.UserId); // the new write made a profile of its own
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void A_reader_during_a_merge_finds_a_profile_under_the_source_and_its_aliases()
    {
        // Regression (review): the source's profile was cleared before its id (and the ids linked to it) led to the target,
        // so a read in between (which takes no lock) found no profile: NOT_FOUND, or an empty profile's decision.
        var store = new InMemoryProfileStore();
        store.Update("device", Write);
        store.Update("anon", Write);
        store.Merge("device", "anon", (into, _, version) => into with { Version = version }); // "device" leads to "anon"
        store.Update("user", Write);
        (Profile? Source, Profile? Alias)? seen = null;
        store.AfterMergedSourceCleared = _ => seen = (store.Get("anon"), store.Get("device"));

        store.Merge("anon", "user", (into, _, version) => into with { Version = version });

        Assert.Equal(("user", "user"), (seen?.Source?.UserId, seen?.Alias?.UserId));
    }

    [Fact]
    public void A_read_that_resolved_an_id_just_before_a_merge_linked_it_finds_the_merged_profile()
    {
        // Regression: a read resolved "anon" to itself, a merge then linked it to "user" and cleared its entry, and the
        // read found no profile under "anon" (NOT_FOUND, or an empty profile's decision, for a user who has one).
        var store = new InMemoryProfileStore();
        store.Update("anon", Write);
        store.Update("user", Write);
        store.AfterReadResolve = key =>
        {
            store.AfterReadResolve = null;
            store.Merge("anon", "user", (into, _, version) => into with { Version = version });
        };

        Assert.Equal("user", store.Get("anon")?.UserId);
    }

    [Fact]
    public void A_read_follows_the_link_through_a_second_merge_of_the_target()
    {
        var store = new InMemoryProfileStore();
        store.Update("anon", Write);
        store.Update("user", Write);
        store.Update("account", Write);
        store.AfterReadResolve = key =>
        {
            store.AfterReadResolve = null;
            store.Merge("anon", "user", (into, _, version) => into with { Version = version });
            store.Merge("user", "account", (into, _, version) => into with { Version = version });
        };

        Assert.Equal("account", store.Get("anon")?.UserId);
    }

    [Fact]
    public void A_capture_that_resolved_an_id_just_before_a_merge_linked_it_finds_the_merged_profile_and_its_ids()
    {
        var store = new InMemoryProfileStore();
        store.Update("anon", Write);
        store.Update("user", Write);
        store.AfterReadResolve = key =>
        {
            store.AfterReadResolve = null;
            store.Merge("anon", "user", (into, _, version) => into with { Version = version });
        };

        var (profile, linked) = store.Capture("anon");

        Assert.Equal("user", profile?.UserId);
        Assert.Equal(["anon"], linked);
    }

    [Fact]
    public void A_read_of_an_id_nothing_holds_finds_nothing()
    {
        var store = LinkedStore();
        Assert.Null(store.Get("stranger"));
        Assert.Equal("user", store.Get("anon")?.UserId);
    }

    [Fact]
    public void A_write_that_resolved_before_a_merge_lands_in_the_profile_the_id_leads_to()
    {
        var store = new InMemoryProfileStore();
        store.Update("anon", Write);
        store.Update("user", Write);
        store.AfterResolve = key =>
        {
            store.AfterResolve = null;
            store.Merge("anon", "user", (into, _, version) => into with { Version = version }); // identified meanwhile
        };

        var written = store.Update("anon", Write);

        Assert.Equal("user", written.After.UserId);
        Assert.Same(written.After, store.Get("anon")); // reachable through the link
        Assert.Equal(["user"], store.Keys()); // no entry left under "anon"
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void Two_sign_ins_on_one_device_at_once_link_it_to_one_user_and_refuse_the_other()
    {
        var store = new InMemoryProfileStore();
        store.Update("kiosk", Write);
        store.Update("b", Write);
        store.Update("c", Write);
        static Profile Merged(Profile into, Profile? from, long version) => into with { Version = version };
        store.AfterResolve = key =>
        {
            store.AfterResolve = null;
            store.Merge("kiosk", "b", Merged, onlyUnlinkedSource: true); // the other sign-in wins the race
        };

        Assert.Throws<Core.Validation.PreconditionFailedException>(() => store.Merge("kiosk", "c", Merged, onlyUnlinkedSource: true));

        Assert.Equal("b", store.Resolve("kiosk"));
        Assert.Equal(["kiosk"], store.LinkedIds("b"));
        Assert.Empty(store.LinkedIds("c"));
        Assert.DoesNotContain("kiosk", store.Keys()); // no entry left under the device's id
    }
}
