using Segmentation.Core.Application.Decisions;
using Segmentation.Core.Application.Profiles;
using Segmentation.Core.Events;
using Segmentation.Core.Requests;
using Segmentation.Core.Tests.Support;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Tests.Application.Decisions;

public class TrackAndDecideTests
{
    private static TestWorld World() => new(TestCatalogs.Source(
        TestCatalogs.Segment("shopper", "intent", "{ field: events.add_to_cart.count, window: 1d, gte: 1 }"),
        TestCatalogs.Segment("viewer", "behavioural", "{ field: events.product_view.count, window: 1d, gte: 2 }")));

    private static BehaviourEvent Event(TestWorld w, string id, string type, string user = "", string anonymous = "") =>
        TestEvents.Make(id, user, type, w.Clock.Now, anonymous: anonymous);

    private static DecisionRequest Request(string user, string anonymous = "") => new(user, anonymous, RequestContext.Empty);

    [Fact]
    public void Events_naming_no_user_are_recorded_for_the_request_s_user_and_the_decision_sees_them()
    {
        using var w = World();
        var trackAndDecide = w.Get<TrackAndDecide>();
        w.Track("u1", EventTypes.ProductView);
        Assert.Equal("viewer", trackAndDecide.Decide(Request("u1"), [Event(w, "e1", EventTypes.ProductView)]).Decision.Winner.Id);

        var tracked = trackAndDecide.Decide(Request("u1"), [Event(w, "e2", EventTypes.AddToCart)]);

        Assert.Equal("shopper", tracked.Decision.Winner.Id); // the add to cart, recorded before the decision
        var result = Assert.Single(tracked.Events);
        Assert.Equal(EventStatus.Accepted, result.Status);
        Assert.Equal("u1", result.Profile!.UserId);
        Assert.Equal(w.Store.Get("u1")!.Version, result.Profile.Version);
        Assert.Equal(3, w.Store.Get("u1")!.TotalEvents);
    }

    [Fact]
    public void An_anonymous_visitor_s_events_are_recorded_under_the_anonymous_id()
    {
        using var w = World();

        var tracked = w.Get<TrackAndDecide>().Decide(Request("", "anon-7"), [Event(w, "e1", EventTypes.AddToCart)]);

        Assert.Equal("shopper", tracked.Decision.Winner.Id);
        Assert.Equal(1, w.Store.Get("anon-7")!.TotalEvents);
        Assert.Equal(EventStatus.Accepted, Assert.Single(tracked.Events).Status);
    }

    [Fact]
    public void An_event_naming_another_user_is_rejected_and_the_others_are_recorded_and_decided_on()
    {
        using var w = World();

        var tracked = w.Get<TrackAndDecide>().Decide(Request("u1"),
        [
            Event(w, "e1", EventTypes.AddToCart, user: "u2"),
            Event(w, "e2", EventTypes.ProductView, user: "u1"), // naming the request's user is fine
            Event(w, "e3", EventTypes.ProductView, anonymous: "someone-else"),
            Event(w, "e4", EventTypes.ProductView),
        ]);

        Assert.Equal([EventStatus.Rejected, EventStatus.Accepted, EventStatus.Rejected, EventStatus.Accepted], tracked.Events.Select(e => e.Status));
        Assert.Equal("events[0].user_id", Assert.Single(tracked.Events[0].Violations).Field);
        Assert.Equal("events[2].anonymous_id", Assert.Single(tracked.Events[2].Violations).Field);
        Assert.Null(w.Store.Get("u2"));
        Assert.Null(w.Store.Get("someone-else"));
        Assert.Equal(2, w.Store.Get("u1")!.TotalEvents);
        Assert.Equal("viewer", tracked.Decision.Winner.Id); // not shopper: the other user's add to cart was not recorded
        Assert.Equal(2, w.Ingestion.Events.Quality.Read().Rejected);
    }

    [Fact]
    public void An_event_naming_an_id_linked_to_the_user_decided_for_is_recorded_on_that_user()
    {
        // A browser sends its anonymous id on every event, also once the visitor has signed in and been identified.
        using var w = World();
        w.Ingestion.Identify("anon-1", "u1");
        var trackAndDecide = w.Get<TrackAndDecide>();

        var byAnonymous = trackAndDecide.Decide(Request("u1", "anon-1"), [Event(w, "e1", EventTypes.ProductView, anonymous: "anon-1")]);
        var byUser = trackAndDecide.Decide(Request("", "anon-1"), [Event(w, "e2", EventTypes.ProductView, user: "u1")]);

        Assert.Equal(EventStatus.Accepted, Assert.Single(byAnonymous.Events).Status);
        Assert.Equal(EventStatus.Accepted, Assert.Single(byUser.Events).Status);
        Assert.Equal(2, w.Store.Get("u1")!.TotalEvents);
        Assert.Equal("viewer", byUser.Decision.Winner.Id);
    }

    [Fact]
    public void An_invalid_or_repeated_event_is_reported_in_its_result_and_the_decision_is_still_made()
    {
        using var w = World();
        var trackAndDecide = w.Get<TrackAndDecide>();
        trackAndDecide.Decide(Request("u1"), [Event(w, "e1", EventTypes.AddToCart)]);

        var tracked = trackAndDecide.Decide(Request("u1"), [Event(w, "e1", EventTypes.AddToCart), Event(w, "e2", "")]);

        Assert.Equal(EventStatus.Duplicate, tracked.Events[0].Status);
        Assert.Equal(EventStatus.Rejected, tracked.Events[1].Status);
        Assert.Contains(tracked.Events[1].Violations, v => v.Field == "events[1].type");
        Assert.Equal("shopper", tracked.Decision.Winner.Id);
        Assert.Equal(1, w.Store.Get("u1")!.TotalEvents);
    }

    [Fact]
    public void Nothing_is_recorded_for_a_request_that_cannot_be_decided_or_carries_too_many_events()
    {
        using var w = World();
        var trackAndDecide = w.Get<TrackAndDecide>();

        var tooLongPath = new RequestContext(PagePath: "/" + new string('p', 3000)); // the user is fine, the request is not
        var invalid = Assert.Throws<ValidationException>(() => trackAndDecide.Decide(Request("u1") with { Context = tooLongPath }, [Event(w, "e1", EventTypes.AddToCart)]));
        var tooMany = Assert.Throws<ValidationException>(() => trackAndDecide.Decide(
            Request("u1"),
            Enumerable.Range(0, TrackAndDecide.MaxEvents + 1).Select(i => Event(w, $"e{i}", EventTypes.ProductView)).ToList()));

        Assert.Contains(invalid.Violations, v => v.Field == "context.page_path");
        Assert.Equal("events", Assert.Single(tooMany.Violations).Field);
        Assert.Null(w.Store.Get("u1"));
    }

    [Fact]
    public void A_deadline_that_passes_while_the_events_are_recorded_keeps_them_and_makes_no_decision_and_one_passed_before_records_nothing()
    {
        // Recorded events are not undone by a deadline; the decision the caller will never receive is not made (it would be
        // counted, and could expose the user to an experiment arm they never saw).
        using var w = World();
        var trackAndDecide = w.Get<TrackAndDecide>();
        using var passed = new CancellationTokenSource();
        passed.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => trackAndDecide.Decide(Request("u1"), [Event(w, "e0", EventTypes.AddToCart)], passed.Token));
        Assert.Null(w.Store.Get("u1"));

        using var deadline = new CancellationTokenSource();
        var accepted = w.Ingestion.Events.Accepted;
        w.Ingestion.Events.Accepted = (e, p) =>
        {
            accepted?.Invoke(e, p);
            deadline.Cancel(); // the deadline passes while the events are being recorded
        };
        var issued = w.Measurement.Ledger.Issued;

        Assert.ThrowsAny<OperationCanceledException>(() => trackAndDecide.Decide(Request("u1"), [Event(w, "e1", EventTypes.AddToCart)], deadline.Token));

        Assert.Equal("e1", Assert.Single(w.Store.Get("u1")!.Events).EventId);
        Assert.Equal(issued, w.Measurement.Ledger.Issued);
    }

    [Fact]
    public void Without_events_it_is_the_plain_decision()
    {
        using var w = World();
        w.Track("u1", EventTypes.AddToCart);

        var tracked = w.Get<TrackAndDecide>().Decide(Request("u1"), []);

        Assert.Empty(tracked.Events);
        Assert.Equal(w.Decide("u1").Winner.Id, tracked.Decision.Winner.Id);
    }
}
