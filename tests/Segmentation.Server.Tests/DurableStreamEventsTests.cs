using System.Diagnostics.Metrics;
using Grpc.Core;
using Segmentation.Contracts.V1;
using Segmentation.Server.Tests.Support;

namespace Segmentation.Server.Tests;

/// <summary>
/// StreamEvents with durability on: the messages that have arrived are recorded together, so their events share
/// change-log commits, and every message still gets its own answer, in order, with its own rejections.
/// </summary>
[Collection(Alone.Name)] // counts the process-wide change-log fsyncs: no other host may write beside it
public sealed class DurableStreamEventsTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
    private readonly string _dir = Directory.CreateTempSubdirectory("seg-durable-stream-").FullName;

    public void Dispose()
    {
        GrpcTestFixture.WaitUntilUnlocked(_dir);
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Messages_sent_ahead_share_commits_and_each_is_answered_in_order_with_its_own_results()
    {
        const int Before = 200, After = 20;
        using (var server = GrpcTestFixture.DurableServer(_dir, Key))
        {
            using var channel = GrpcTestFixture.CreateChannel(server);
            var profiles = new ProfileService.ProfileServiceClient(channel);
            await profiles.TrackEventAsync(new TrackEventRequest { Event = ProtoEvents.Make("warm", "warm-0", "page_view") }); // the server is up

            var fsyncs = 0L;
            using var listener = new MeterListener
            {
                InstrumentPublished = (instrument, l) =>
                {
                    if (instrument.Meter.Name == "Segmentation" && instrument.Name == "segmentation.changelog.fsync.duration")
                    {
                        l.EnableMeasurementEvents(instrument);
                    }
                },
            };
            listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref fsyncs));
            listener.Start();

            using var call = profiles.StreamEvents(deadline: DateTime.UtcNow.AddSeconds(60));
            for (var i = 0; i < Before; i++)
            {
                await call.RequestStream.WriteAsync(new StreamEventsRequest { Event = ProtoEvents.Make($"s{i % 50}", $"one-{i}", "page_view") });
            }

            var batch = new StreamEventsRequest();
            batch.Events.Add(ProtoEvents.Make("s1", "batch-0", "page_view"));
            batch.Events.Add(ProtoEvents.Make("s2", "batch-1", "")); // no type: rejected by itself
            batch.Events.Add(ProtoEvents.Make("s1", "one-1", "page_view")); // sent before on this stream: a duplicate
            await call.RequestStream.WriteAsync(batch);
            for (var i = 0; i < After; i++)
            {
                await call.RequestStream.WriteAsync(new StreamEventsRequest { Event = ProtoEvents.Make($"t{i}", $"two-{i}", "page_view") });
            }

            await call.RequestStream.CompleteAsync();
            var answers = await call.ResponseStream.ReadAllAsync().ToListAsync();
            listener.Dispose();

            Assert.Equal(Before + 1 + After, answers.Count);
            var results = answers.SelectMany(a => a.Results.Count > 0 ? a.Results : [a.Result]).ToList();
            Assert.Equal(Enumerable.Range(0, Before + 3 + After), results.Select(r => r.Index));
            Assert.Equal(
                [.. Enumerable.Range(0, Before).Select(i => $"one-{i}"), "batch-0", "batch-1", "one-1", .. Enumerable.Range(0, After).Select(i => $"two-{i}")],
                results.Select(r => r.EventId));
            var inBatch = answers[Before].Results;
            Assert.Equal([EventStatus.Accepted, EventStatus.Rejected, EventStatus.Duplicate], inBatch.Select(r => r.Status));
            Assert.Equal("events[1].type", Assert.Single(inBatch[1].Violations).Field);
            Assert.All(results.Where(r => r.Index is < Before or >= Before + 3), r => Assert.Equal(EventStatus.Accepted, r.Status));

            // One stream alone paid a commit per event before: nothing else was waiting to share its fsync.
            Assert.InRange(Interlocked.Read(ref fsyncs), 1, (Before + After) / 2);
        }

        using (var restarted = GrpcTestFixture.DurableServer(_dir, Key))
        {
            using var channel = GrpcTestFixture.CreateChannel(restarted);
            var profiles = new ProfileService.ProfileServiceClient(channel);
            var s1 = await profiles.GetProfileAsync(new GetProfileRequest { UserId = "s1" });
            Assert.Equal(5, s1.Profile.EventCounts["page_view"]); // one-1, -51, -101, -151 and batch-0
        }
    }
}
