using System.Collections;
using Scriban;
using Scriban.Parsing;
using Scriban.Runtime;

namespace Segmentation.Core.Rendering;

/// <summary>
/// A read-only script object whose members are computed when a template reads them, from the inputs it
/// is bound to: nothing is copied into dictionaries up front, and a template can neither change a member
/// nor add one. Enumerates as name/value pairs, as a <see cref="ScriptObject"/> does, so <c>for</c> loops,
/// <c>object.keys</c> and printing behave the same.
/// </summary>
public abstract class ComputedScriptObject : IScriptObject, IEnumerable<KeyValuePair<string, object?>>
{
    /// <inheritdoc />
    public int Count => GetMembers().Count();

    /// <inheritdoc />
    public bool IsReadOnly
    {
        get => true;
        set { } // always read-only
    }

    /// <inheritdoc />
    public abstract IEnumerable<string> GetMembers();

    /// <inheritdoc />
    public bool Contains(string member) => TryGet(member, out _);

    /// <inheritdoc />
    public bool TryGetValue(TemplateContext? context, SourceSpan span, string member, out object? value) => TryGet(member, out value);

    /// <summary>The value of <paramref name="member"/>, computed now; false when there is no such member.</summary>
    public abstract bool TryGet(string member, out object? value);

    /// <inheritdoc />
    public bool CanWrite(string member) => false;

    /// <inheritdoc />
    public bool TrySetValue(TemplateContext? context, SourceSpan span, string member, object? value, bool readOnly) => false;

    /// <inheritdoc />
    public bool Remove(string member) => false;

    /// <inheritdoc />
    public void SetReadOnly(string member, bool readOnly)
    {
        // every member is read-only already
    }

    /// <summary>A snapshot as a plain script object (what <c>object</c> functions that copy get).</summary>
    public IScriptObject Clone(bool deep)
    {
        var copy = new ScriptObject();
        foreach (var (name, value) in this)
        {
            copy[name] = deep && value is IScriptObject inner ? inner.Clone(deep) : value;
        }

        return copy;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        foreach (var name in GetMembers())
        {
            if (TryGet(name, out var value))
            {
                yield return new KeyValuePair<string, object?>(name, value);
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
