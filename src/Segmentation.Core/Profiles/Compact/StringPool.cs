using System.Collections.Concurrent;

namespace Segmentation.Core.Profiles.Compact;

/// <summary>
/// One shared instance, and a small integer id, per distinct value of the low-cardinality strings of
/// stored events (event types, sources, page types, categories, countries, campaign and product ids), so
/// a million profiles do not each hold their own copy of "product_view" or "GB": an <see cref="EventLog"/>
/// keeps the id. Never used for ids of users, sessions, events, orders or decisions: those stay with their
/// profile and are erased with it (outcomes carry decision ids as campaign ids: see <see cref="IsUniqueId"/>). Bounded and append-only: past <see cref="Capacity"/> distinct values (or for
/// empty values and values longer than <see cref="MaxLength"/> characters) strings get no id and are kept as they come.
/// </summary>
internal static class StringPool
{
    /// <summary>Most distinct values pooled.</summary>
    public const int Capacity = ChunkCount * ChunkSize;

    /// <summary>Longest value pooled, in characters.</summary>
    public const int MaxLength = 64;

    private const int ChunkBits = 12;
    private const int ChunkSize = 1 << ChunkBits;
    private const int ChunkCount = 256;

    private static readonly ConcurrentDictionary<string, int> Ids = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> IdsByChars = Ids.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly string[]?[] Chunks = new string[ChunkCount][];
    private static readonly Lock Gate = new();
    private static int s_count;

    /// <summary>The pooled instance equal to <paramref name="value"/>, or <paramref name="value"/> itself.</summary>
    public static string Share(string value)
    {
        var id = IdOf(value);
        return id < 0 ? value : ValueOf(id);
    }

    /// <summary>As <see cref="Share(string)"/>, null staying null.</summary>
    public static string? ShareOrNull(string? value) => value is null ? null : Share(value);

    /// <summary>
    /// True for a value in the 36-character GUID form: a unique id (outcomes carry decision ids in their campaign
    /// field), which is not pooled, so that a million outcomes never fill the pool; other campaign ids are.
    /// </summary>
    public static bool IsUniqueId(string value) => value.Length == 36 && value[8] == '-' && Guid.TryParseExact(value, "D", out _);

    /// <summary>A campaign id as kept: the pool's instance, except for a unique id (<see cref="IsUniqueId"/>), kept as it is.</summary>
    public static string? ShareCampaign(string? value) => value is null || IsUniqueId(value) ? value : Share(value);

    /// <summary>The id of <paramref name="value"/> when the pool holds it, else -1 (never adds).</summary>
    public static int Find(string value) => value.Length is 0 or > MaxLength || !Ids.TryGetValue(value, out var id) ? -1 : id;

    /// <summary>The id of <paramref name="value"/> (added to the pool if new), or -1 when it is not pooled.</summary>
    public static int IdOf(string value)
    {
        if (value.Length is 0 or > MaxLength)
        {
            return -1;
        }

        if (Ids.TryGetValue(value, out var id))
        {
            return id;
        }

        lock (Gate)
        {
            if (Ids.TryGetValue(value, out id))
            {
                return id;
            }

            if (s_count >= Capacity)
            {
                return -1;
            }

            id = s_count++;
            var chunk = Chunks[id >> ChunkBits] ??= new string[ChunkSize];
            chunk[id & (ChunkSize - 1)] = value; // written before the id is published below
            Ids[value] = id;
            return id;
        }
    }

    /// <summary>
    /// The string of the UTF-8 bytes <paramref name="utf8"/> (invalid sequences replaced, as
    /// <see cref="System.Text.Encoding.UTF8"/> decodes): the pooled instance when the pool holds that value,
    /// so decoding a known value allocates nothing, else a new string. Does not add to the pool.
    /// </summary>
    public static string Decode(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length is 0 or > MaxLength * 3) // UTF-8 takes at most three bytes per UTF-16 character
        {
            return System.Text.Encoding.UTF8.GetString(utf8);
        }

        Span<char> chars = stackalloc char[utf8.Length];
        var n = System.Text.Encoding.UTF8.GetChars(utf8, chars);
        return n <= MaxLength && IdsByChars.TryGetValue(chars[..n], out var pooled, out _) ? pooled : new string(chars[..n]);
    }

    /// <summary>The value of an id <see cref="IdOf"/> returned.</summary>
    public static string ValueOf(int id) => Chunks[id >> ChunkBits]![id & (ChunkSize - 1)];
}
