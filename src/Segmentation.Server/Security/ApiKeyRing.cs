using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Segmentation.Server.Security;

/// <summary>An authenticated caller: the key's configured name and scopes (never the key).</summary>
public sealed record ApiCaller(string Name, ApiScope Scopes)
{
    /// <summary>Unary calls per second this key may make; 0 takes <see cref="Hosting.LimitsOptions.UnaryRequestsPerSecond"/>.</summary>
    public int UnaryPerSecond { get; init; }

    /// <summary>True when the key may do what <paramref name="required"/> names (every scope in it, with what <c>admin</c> implies).</summary>
    public bool Has(ApiScope required) => (ApiScopes.Effective(Scopes) & required) == required;

    /// <summary>The caller of every call when authentication is disabled.</summary>
    public static readonly ApiCaller Anonymous = new("anonymous", ApiScope.All);
}

/// <summary>
/// The configured keys, held as SHA-256 hashes. A presented key is hashed and compared with every
/// configured hash in constant time, so neither the match nor its position leaks through timing.
/// </summary>
public sealed class ApiKeyRing
{
    /// <summary>Longest key accepted, in characters; longer values are rejected without hashing.</summary>
    public const int MaxKeyLength = 512;

    private readonly (byte[] Hash, ApiCaller Caller)[] _keys;

    /// <summary>Builds the ring from validated options.</summary>
    public ApiKeyRing(IOptions<SecurityOptions> options)
    {
        _keys = options.Value.ApiKeys
            .Select(k => (Convert.FromHexString(k.Sha256.Trim()), new ApiCaller(k.Name, ParseScopes(k.Scopes)) { UnaryPerSecond = k.RequestsPerSecond }))
            .ToArray();
    }

    /// <summary>What configuration holds for <paramref name="key"/>: the SHA-256 of its UTF-8 bytes, as lower-case hex.</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>Names of configured keys whose hash is the documented development key's.</summary>
    public IEnumerable<string> DevelopmentKeyNames
    {
        get
        {
            var dev = SHA256.HashData(Encoding.UTF8.GetBytes(SecurityOptions.DevelopmentKey));
            return _keys.Where(k => CryptographicOperations.FixedTimeEquals(k.Hash, dev)).Select(k => k.Caller.Name);
        }
    }

    /// <summary>The caller whose key is <paramref name="key"/>, or null when it is unknown.</summary>
    public ApiCaller? Authenticate(ReadOnlySpan<char> key)
    {
        if (key.IsEmpty || key.Length > MaxKeyLength)
        {
            return null;
        }

        Span<byte> utf8 = stackalloc byte[MaxKeyLength * 3];
        var length = Encoding.UTF8.GetBytes(key, utf8);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8[..length], hash);

        ApiCaller? match = null;
        foreach (var (candidate, caller) in _keys)
        {
            // No early exit: every configured hash is compared.
            if (CryptographicOperations.FixedTimeEquals(candidate, hash))
            {
                match = caller;
            }
        }

        return match;
    }

    /// <summary>Parses configured scope names (validated at start-up).</summary>
    public static ApiScope ParseScopes(IEnumerable<string> names)
    {
        var scopes = ApiScope.None;
        foreach (var name in names)
        {
            if (ApiScopes.TryParse(name, out var scope))
            {
                scopes |= scope;
            }
        }

        return scopes;
    }
}
