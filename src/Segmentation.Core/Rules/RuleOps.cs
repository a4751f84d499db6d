using System.Buffers;
using System.Collections.Frozen;
using System.Linq.Expressions;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace Segmentation.Core.Rules;

/// <summary>
/// The tests of text, list and time conditions, written once: a condition's delegate calls one of these,
/// and whole-catalog compilation calls the same method with the same constant operand, so both give the
/// same result by construction. A missing value (null or empty) never matches.
/// </summary>
internal static class RuleOps
{
    public static bool TextEquals(string? v, string x) => v is { Length: > 0 } && string.Equals(v, x, StringComparison.OrdinalIgnoreCase);

    public static bool TextNotEquals(string? v, string x) => v is { Length: > 0 } && !string.Equals(v, x, StringComparison.OrdinalIgnoreCase);

    public static bool TextContains(string? v, string x) => v is { Length: > 0 } && v.Contains(x, StringComparison.OrdinalIgnoreCase);

    public static bool TextStartsWith(string? v, string x) => v is { Length: > 0 } && v.StartsWith(x, StringComparison.OrdinalIgnoreCase);

    public static bool TextIn(string? v, FrozenSet<string> set) => v is { Length: > 0 } && set.Contains(v);

    public static bool TextNotIn(string? v, FrozenSet<string> set) => v is { Length: > 0 } && !set.Contains(v);

    public static bool TextMatches(string? v, Regex regex) => v is { Length: > 0 } && regex.IsMatch(v);

    /// <summary>
    /// A pattern of plain words joined by '|' matches exactly when the value contains one of them
    /// (case-insensitively): a vectorized substring search. Decided that way only for ASCII values, where
    /// ordinal and the regex's invariant case folding agree; any other value goes to the regex.
    /// </summary>
    public static bool TextContainsAnyWord(string? v, SearchValues<string> words, Regex regex) =>
        v is { Length: > 0 } && (v.AsSpan().ContainsAny(words) || (!Ascii.IsValid(v) && regex.IsMatch(v)));

    public static bool ListContains(IReadOnlyList<string>? list, string x)
    {
        if (list is null)
        {
            return false;
        }

        // Index loops rather than LINQ: no enumerator allocation on the hot path.
        for (var i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i], x, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    public static bool ListAnyIn(IReadOnlyList<string>? list, FrozenSet<string> set)
    {
        if (list is null)
        {
            return false;
        }

        for (var i = 0; i < list.Count; i++)
        {
            if (set.Contains(list[i]))
            {
                return true;
            }
        }

        return false;
    }

    public static bool ListNoneIn(IReadOnlyList<string>? list, FrozenSet<string> set) => list is { Count: > 0 } && !ListAnyIn(list, set);

    /// <summary>
    /// True while t ≤ now &lt; t + span (t in the last span; a time still ahead is not, until it comes): it flips at t and
    /// at t + span, which bound the result's validity.
    /// </summary>
    public static bool Within(EvalContext c, long t, long span)
    {
        if (t == long.MinValue)
        {
            return false;
        }

        if (t > c.NowTicks)
        {
            c.Until(t);
            return false;
        }

        c.Until(t + span);
        return c.NowTicks < t + span;
    }

    /// <summary>True once now ≥ t + span; it flips to true at t + span, which bounds the result's validity.</summary>
    public static bool OlderThan(EvalContext c, long t, long span)
    {
        if (t == long.MinValue)
        {
            return false;
        }

        c.Until(t + span);
        return c.NowTicks >= t + span;
    }

    /// <summary>The method named <paramref name="name"/> of this class, for compiled expressions.</summary>
    public static MethodInfo Method(string name) => typeof(RuleOps).GetMethod(name, BindingFlags.Public | BindingFlags.Static)!;

    /// <summary>A call of <paramref name="name"/>(value, operands...) as an expression.</summary>
    public static Expression Call(string name, Expression value, params object[] operands) =>
        Expression.Call(Method(name), [value, .. operands.Select(o => (Expression)Expression.Constant(o))]);
}
