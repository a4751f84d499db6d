using Segmentation.Core.Events;
using Segmentation.Core.Rendering;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Outcomes;

/// <summary>What happened to a decision.</summary>
public enum OutcomeType
{
    /// <summary>The variant was shown.</summary>
    Impression,

    /// <summary>The variant was clicked.</summary>
    Click,

    /// <summary>A purchase credited to the decision.</summary>
    Conversion,

    /// <summary>The variant was closed or rejected.</summary>
    Dismiss,

    /// <summary>An email rendered from the decision was sent.</summary>
    EmailSend,

    /// <summary>The email was opened.</summary>
    EmailOpen,

    /// <summary>A link in the email was clicked.</summary>
    EmailClick,

    /// <summary>The user unsubscribed from the email.</summary>
    EmailUnsubscribe,
}

/// <summary>
/// An outcome of a decision as reported by the storefront, the email platform or an order system. Validate
/// with <see cref="ThrowIfInvalid"/>.
/// </summary>
/// <param name="EventId">Client-generated id; re-sending it is not counted twice.</param>
/// <param name="Type">What happened.</param>
/// <param name="DecisionId">The decision it concerns; empty for a conversion credited to the last impression.</param>
/// <param name="UserId">The user, or empty.</param>
/// <param name="AnonymousId">The anonymous id, when there is no user id.</param>
/// <param name="Variant">The variant it concerns, if one.</param>
/// <param name="Timestamp">When it happened.</param>
/// <param name="OrderId">For conversions: the order.</param>
/// <param name="Value">For conversions: the order value.</param>
/// <param name="Currency">For conversions: ISO 4217 code.</param>
public sealed record Outcome(
    string EventId,
    OutcomeType Type,
    string DecisionId,
    string UserId,
    string AnonymousId,
    VariantKind? Variant,
    DateTimeOffset Timestamp,
    string? OrderId = null,
    double Value = 0,
    string? Currency = null)
{
    /// <summary>Longest decision id accepted (a decision id is a 36-character UUID).</summary>
    public const int MaxDecisionIdLength = 64;

    /// <summary>The profile the outcome belongs to: the user id, else the anonymous id.</summary>
    public string SubjectId => UserId.Length > 0 ? UserId : AnonymousId;

    /// <summary>The profile event type an outcome is recorded as.</summary>
    public static string EventType(OutcomeType type) => type switch
    {
        OutcomeType.Impression => EventTypes.Impression,
        OutcomeType.Click => EventTypes.Click,
        OutcomeType.Conversion => EventTypes.Conversion,
        OutcomeType.Dismiss => EventTypes.Dismiss,
        OutcomeType.EmailSend => EventTypes.EmailSend,
        OutcomeType.EmailOpen => EventTypes.EmailOpen,
        OutcomeType.EmailClick => EventTypes.EmailClick,
        OutcomeType.EmailUnsubscribe => EventTypes.EmailUnsubscribe,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown outcome type"),
    };

    /// <summary>
    /// Throws <see cref="ValidationException"/> naming every invalid field (prefixed with <paramref name="prefix"/>):
    /// an event id, a user or anonymous id and a time are required; a decision id is required except for
    /// conversions; a conversion needs an order id and a value from 0 to 1e12.
    /// </summary>
    public void ThrowIfInvalid(DateTimeOffset now, string prefix = "outcome")
    {
        var v = new ViolationList(prefix);
        v.Required("event_id", EventId, 128);
        if (!Enum.IsDefined(Type))
        {
            v.Add("type", "is required (impression, click, conversion, dismiss or an email outcome)");
        }

        if (SubjectId.Length == 0)
        {
            v.Add("user_id", "user_id or anonymous_id is required");
        }

        v.OptionalId("user_id", UserId);
        v.OptionalId("anonymous_id", AnonymousId);
        if (DecisionId.Length == 0 && Type != OutcomeType.Conversion)
        {
            v.Add("decision_id", "is required (only a conversion may omit it, to be credited to the last impression)");
        }

        v.MaxLength("decision_id", DecisionId, MaxDecisionIdLength);
        if (Variant is { } variant && !Enum.IsDefined(variant))
        {
            v.Add("variant", "unknown variant kind; use content, offer, cta, journey or messaging, or leave it unset for the whole decision");
        }

        if (Timestamp == default)
        {
            v.Add("timestamp", "is required");
        }
        else if (Timestamp > now + EventValidator.MaxFutureSkew)
        {
            v.Add("timestamp", $"is {(Timestamp - now).TotalMinutes:0} minutes in the future; at most {EventValidator.MaxFutureSkew.TotalMinutes:0} minutes are allowed");
        }
        else if (Timestamp.Year < 2000)
        {
            v.Add("timestamp", "must be after 2000-01-01");
        }

        if (Type == OutcomeType.Conversion)
        {
            v.Required("conversion.order_id", OrderId, 128);
            if (!double.IsFinite(Value) || Value < 0 || Value > EventValidator.MaxAmount)
            {
                v.Add("conversion.value", $"must be a finite amount from 0 to {EventValidator.MaxAmount:0e0}");
            }

            v.MaxLength("conversion.currency", Currency, 8);
        }

        v.ThrowIfAny();
    }
}

/// <summary>How an outcome was attributed.</summary>
public enum Attribution
{
    /// <summary>Credited to the decision it named.</summary>
    Decision,

    /// <summary>A conversion without a decision id, credited to the user's last impression in the window (last touch).</summary>
    LastImpression,

    /// <summary>Accepted and counted, credited to no decision (unknown, expired, another user's, or no impression to credit).</summary>
    Unattributed,

    /// <summary>Already recorded (same event id), or a second conversion of one order for one decision: not counted again.</summary>
    Duplicate,

    /// <summary>Invalid: nothing recorded.</summary>
    Rejected,
}
