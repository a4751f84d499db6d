using Segmentation.Core.Application.ChangeStream;
using Segmentation.Core.Application.Membership;
using Segmentation.Core.Tests.Support;

namespace Segmentation.Core.Tests.Application.Membership;

/// <summary>The change stream's save at shutdown is written once, and a second stop of the host waits for it.</summary>
public sealed class ChangeStreamShutdownTests
{
    // A journal whose membership saves are counted and held until the test lets them finish.
    private sealed class HeldJournal : IChangeFeedJournal
    {
        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public int MembershipSaves => Volatile.Read(ref _membershipSaves);

        private int _membershipSaves;

        public (IReadOnlyList<FeedEntry> Entries, long LastOffset) Load(DateTimeOffset notBefore, int max) => ([], 0);

        public void Append(IReadOnlyList<FeedEntry> entries)
        {
        }

        public void Trim(long oldest)
        {
        }

        public TriggerCheckpoint? LoadTriggers() => null;

        public void SaveTriggers(TriggerCheckpoint checkpoint)
        {
        }

        public MembershipCheckpoint? LoadMemberships() => null;

        public void SaveMemberships(MembershipCheckpoint checkpoint)
        {
            Interlocked.Increment(ref _membershipSaves);
            Entered.Set();
            Release.Wait(TimeSpan.FromSeconds(30));
        }

        public void Redact(IReadOnlySet<string> userIds, long throughOffset)
        {
        }
    }

    [Fact]
    public async Task A_second_stop_waits_for_the_first_stops_save_and_does_not_write_it_again()
    {
        // The test host stops a host twice (its dispose and the application's run loop); the second stop used to write
        // the memberships again after the first had returned, into a directory its test was already deleting.
        var journal = new HeldJournal();
        using var w = new TestWorld(journal: journal);
        var service = new ChangeStreamService(w.Memberships.Feed, w.Get<TriggerScheduler>(), journal, w.Clock, reconciler: w.Get<ChangeStreamReconciler>(), memberships: w.Memberships);

        var first = Task.Run(() => service.StopAsync(CancellationToken.None));
        Assert.True(journal.Entered.Wait(TimeSpan.FromSeconds(10)));
        var second = Task.Run(() => service.StopAsync(CancellationToken.None));
        var finishedEarly = await Task.WhenAny(second, Task.Delay(300)) == second;

        journal.Release.Set();
        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));
        await service.StopAsync(CancellationToken.None); // a stop after both

        Assert.False(finishedEarly); // it waited for the save under way
        Assert.Equal(1, journal.MembershipSaves);
    }

    [Fact]
    public void A_stop_after_a_shutdown_save_that_failed_does_not_save_again()
    {
        // The later of two stops used to retry a save that threw, writing after the first stop had returned.
        var once = new Segmentation.Core.Application.ShutdownSave();
        var runs = 0;

        Assert.Throws<IOException>(() => once.Run(() =>
        {
            runs++;
            throw new IOException("disk full");
        }));
        var ranAgain = once.Run(() => runs++);

        Assert.False(ranAgain);
        Assert.Equal(1, runs);
    }
}
