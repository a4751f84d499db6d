using System.Collections.Frozen;

namespace Segmentation.Core.Events;

/// <summary>The event types the service understands.</summary>
public static class EventTypes
{
    /// <summary>The <c>page_view</c> event type.</summary>
    public const string PageView = "page_view";
    /// <summary>The <c>product_view</c> event type.</summary>
    public const string ProductView = "product_view";
    /// <summary>The <c>search</c> event type.</summary>
    public const string Search = "search";
    /// <summary>The <c>add_to_cart</c> event type.</summary>
    public const string AddToCart = "add_to_cart";
    /// <summary>The <c>remove_from_cart</c> event type.</summary>
    public const string RemoveFromCart = "remove_from_cart";
    /// <summary>The <c>checkout_start</c> event type.</summary>
    public const string CheckoutStart = "checkout_start";
    /// <summary>The <c>purchase</c> event type.</summary>
    public const string Purchase = "purchase";
    /// <summary>The <c>refund</c> event type.</summary>
    public const string Refund = "refund";
    /// <summary>The <c>email_send</c> event type.</summary>
    public const string EmailSend = "email_send";
    /// <summary>The <c>email_open</c> event type.</summary>
    public const string EmailOpen = "email_open";
    /// <summary>The <c>email_click</c> event type.</summary>
    public const string EmailClick = "email_click";
    /// <summary>The <c>email_unsubscribe</c> event type.</summary>
    public const string EmailUnsubscribe = "email_unsubscribe";
    /// <summary>The <c>return_visit</c> event type.</summary>
    public const string ReturnVisit = "return_visit";
    /// <summary>The <c>form_submit</c> event type.</summary>
    public const string FormSubmit = "form_submit";

    /// <summary>The <c>impression</c> outcome: a decision's variant was shown.</summary>
    public const string Impression = "impression";
    /// <summary>The <c>click</c> outcome: a decision's variant was clicked.</summary>
    public const string Click = "click";
    /// <summary>The <c>conversion</c> outcome: a purchase credited to a decision.</summary>
    public const string Conversion = "conversion";
    /// <summary>The <c>dismiss</c> outcome: a decision's variant was closed or rejected.</summary>
    public const string Dismiss = "dismiss";

    /// <summary>
    /// Types recorded from outcomes of decisions (OutcomeService): they need no session, since a click in an
    /// email or a conversion reported by an order system has none, and they are not counted as sessions.
    /// </summary>
    public static readonly FrozenSet<string> Outcomes = new[] { Impression, Click, Conversion, Dismiss }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Prefix that custom event types must carry, e.g. <c>custom.quiz_completed</c>.</summary>
    public const string CustomPrefix = "custom.";

    /// <summary>Every built-in type.</summary>
    public static readonly FrozenSet<string> BuiltIn = new[]
    {
        PageView, ProductView, Search, AddToCart, RemoveFromCart, CheckoutStart, Purchase, Refund,
        EmailSend, EmailOpen, EmailClick, EmailUnsubscribe, ReturnVisit, FormSubmit,
        Impression, Click, Conversion, Dismiss,
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>True for a built-in type or a well-formed custom type.</summary>
    public static bool IsKnown(string type) =>
        BuiltIn.Contains(type) || (type.StartsWith(CustomPrefix, StringComparison.Ordinal) && IsIdentifier(type.AsSpan(CustomPrefix.Length)));

    internal static bool IsIdentifier(ReadOnlySpan<char> s)
    {
        if (s.IsEmpty || s.Length > 64 || !char.IsAsciiLetterLower(s[0]))
        {
            return false;
        }

        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
            {
                return false;
            }
        }

        return true;
    }
}
