using System.Reflection;
using System.Runtime.CompilerServices;

namespace Segmentation.ScaleTest;

/// <summary>
/// Bytes per profile by type of object reachable from the store and the membership index: a heap dump of
/// just the profile data, counting each object once (pooled strings and shared arrays count once, not per
/// profile). Sizes come from the runtime (object data plus the 16-byte header, rounded to 8 bytes).
/// </summary>
internal static class HeapWalk
{
    private static readonly MethodInfo? RawSize =
        typeof(RuntimeHelpers).GetMethod("GetRawObjectDataSize", BindingFlags.NonPublic | BindingFlags.Static);

    /// <summary>
    /// Prints the <paramref name="top"/> types by bytes per profile of the objects reachable from <paramref name="root"/>,
    /// leaving out those also reachable from <paramref name="excluding"/> (to count what one snapshot adds to another).
    /// </summary>
    public static void Report(object root, int profiles, int top, object? excluding = null, string what = "store and membership index")
    {
        if (RawSize is null)
        {
            Console.WriteLine("heap breakdown: this runtime does not expose object sizes");
            return;
        }

        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var fields = new Dictionary<Type, FieldInfo[]>();
        if (excluding is not null)
        {
            Walk(excluding, seen, fields, totals: null);
        }

        var totals = new Dictionary<Type, (long Bytes, long Count)>();
        Walk(root, seen, fields, totals);
        Console.WriteLine(FormattableString.Invariant($"heap breakdown ({what}, {totals.Values.Sum(v => v.Bytes) / (double)profiles:N0} B/profile):"));
        foreach (var (type, (bytes, count)) in totals.OrderByDescending(kv => kv.Value.Bytes).Take(top))
        {
            Console.WriteLine(FormattableString.Invariant($"  {bytes / (double)profiles,8:N1} B/profile  {count / (double)profiles,6:N2} objects/profile  {Name(type)}"));
        }
    }

    // Every object reachable from root and not yet seen, counted by type into totals (when given).
    private static void Walk(object root, HashSet<object> seen, Dictionary<Type, FieldInfo[]> fields, Dictionary<Type, (long Bytes, long Count)>? totals)
    {
        if (!seen.Add(root))
        {
            return;
        }

        var stack = new Stack<object>([root]);
        while (stack.TryPop(out var o))
        {
            var type = o.GetType();
            if (totals is not null)
            {
                var size = ((long)(nuint)RawSize!.Invoke(null, [o])! + 16 + 7) & ~7L;
                totals[type] = totals.TryGetValue(type, out var t) ? (t.Bytes + size, t.Count + 1) : (size, 1);
            }

            if (o is Array array)
            {
                var element = type.GetElementType()!;
                foreach (var item in array)
                {
                    if (item is not null)
                    {
                        Visit(item, element, seen, stack, fields);
                    }
                }
            }
            else if (o is not string)
            {
                VisitFields(o, type, seen, stack, fields);
            }
        }
    }

    private static void Visit(object value, Type declared, HashSet<object> seen, Stack<object> stack, Dictionary<Type, FieldInfo[]> fields)
    {
        if (declared.IsValueType)
        {
            if (!declared.IsPrimitive && !declared.IsEnum)
            {
                VisitFields(value, declared, seen, stack, fields); // a struct inline in its container
            }
        }
        else if (value is not (Delegate or MemberInfo or Thread) && seen.Add(value))
        {
            stack.Push(value);
        }
    }

    private static void VisitFields(object o, Type type, HashSet<object> seen, Stack<object> stack, Dictionary<Type, FieldInfo[]> cache)
    {
        if (!cache.TryGetValue(type, out var fields))
        {
            var list = new List<FieldInfo>();
            for (var t = type; t is not null; t = t.BaseType)
            {
                list.AddRange(t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                    .Where(f => !f.FieldType.IsPointer && !f.FieldType.IsPrimitive && !f.FieldType.IsEnum));
            }

            cache[type] = fields = [.. list];
        }

        foreach (var f in fields)
        {
            if (f.GetValue(o) is { } value)
            {
                Visit(value, f.FieldType, seen, stack, cache);
            }
        }
    }

    private static string Name(Type t) =>
        t.IsArray ? Name(t.GetElementType()!) + "[]" :
        t.IsGenericType ? $"{t.Name.Split('`')[0]}<{string.Join(", ", t.GetGenericArguments().Select(Name))}>" :
        t.Name;
}
