namespace Segmentation.Core.Profiles;

/// <summary>
/// Where an attribute's value came from: declared by the user, observed by us or inferred by us.
/// The numeric order is the reliability order: a value from a lower layer never replaces a value
/// from a higher one.
/// </summary>
public enum AttributeLayer
{
    /// <summary>Inferred by us: scores, classes, affinities.</summary>
    Derived = 1,

    /// <summary>Observed by us: behaviour, device, orders.</summary>
    FirstParty = 2,

    /// <summary>Declared by the user: preferences, quiz answers, account data.</summary>
    ZeroParty = 3,
}
