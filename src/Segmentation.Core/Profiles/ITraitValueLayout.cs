namespace Segmentation.Core.Profiles;

/// <summary>
/// How one compiled catalog reads declared traits: each trait its rules test has a slot in a <c>long[]</c>
/// (a number as its bits, a flag, a time in ticks, a string or a list as the words of the catalog's rules it
/// equals or contains), built once per profile snapshot and catalog and read by index while deciding, instead
/// of looking the trait up by name and unboxing it in every condition.
/// </summary>
public interface ITraitValueLayout
{
    /// <summary>A number no other layout in the process has; kept in element 0 of every array this layout builds.</summary>
    long Id { get; }

    /// <summary>
    /// True when profiles should keep the array this layout builds for them (the catalogs that serve); false for
    /// a catalog evaluated once and thrown away (a preview), which must not displace the serving catalog's.
    /// </summary>
    bool KeepOnProfiles { get; }

    /// <summary>The array for <paramref name="attributes"/>: element 0 is <see cref="Id"/>, then one element per slot.</summary>
    long[] Build(AttributeDictionary attributes);
}
